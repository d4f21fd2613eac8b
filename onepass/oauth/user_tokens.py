"""Tokens issued to a client on behalf of a user: access, ID and refresh tokens.

A grant plans its tokens before its transaction (``plan_tokens``: the access token's
``jti`` and expiry, the next refresh token, and the signing keys, so that a missing key
refuses the request before anything is consumed), stores the refresh token inside it,
and signs after it commits (``sign_tokens``): the RSA signature of an ID token, the
costliest step of a grant, never holds a transaction open.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from onepass.clients import resources
from onepass.clients.registry import ClientRecord
from onepass.clients.resources import ResourceRecord
from onepass.clients.subjects import direct_subject_for
from onepass.crypto import KeyedHasher
from onepass.db.direct import Row, Transaction
from onepass.keys.jwt import JWTSigner
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.id_token import id_token_claims
from onepass.oauth.statements import INSERT_REFRESH_TOKEN
from onepass.oauth.tokens import bound, sign_access_token, token_type
from onepass.oauth_errors import InvalidGrantError


@dataclass(frozen=True)
class AuthInfo:
    """How and when the user authenticated, carried from the login to every token."""

    auth_time: datetime
    acr: str | None
    amr: list[str]
    sid: str | None

    @classmethod
    def of(cls, row: Row) -> AuthInfo:
        return cls(row["auth_time"], row["acr"], list(row["amr"] or []), row["sid"])


@dataclass(frozen=True)
class Grantee:
    """The user tokens are issued for."""

    id: int
    sub: str


NO_USER = "the user of this grant no longer exists"


def grantee(row: Row) -> Grantee:
    """The user of a redeemed code or rotated refresh token, from the grant statement's
    user columns (``oauth.statements``). It must still exist and be enabled; with
    ENFORCE_CANONICAL_RESOLUTION on, tokens are issued for its canonical user, read from
    ``identity_links`` by the same statement (the source of truth, no cache)."""
    if row["user_sub"] is None or row["user_disabled_at"] is not None:
        raise InvalidGrantError(NO_USER)
    if row["target_id"] is None:  # no link, enforcement off, or the link's target is gone
        return Grantee(row["user_id"], row["user_sub"])
    if row["target_disabled_at"] is not None:
        raise InvalidGrantError(NO_USER)
    return Grantee(row["target_id"], row["target_sub"])


@dataclass(frozen=True)
class RefreshPlan:
    """The next refresh token: in the grant's family, or in ``family_id`` (new) for a code."""

    token: str
    created_at: datetime
    sliding_expires_at: datetime
    family_id: str
    family_expires_at: datetime  # of a new family; a rotation keeps its family's


@dataclass(frozen=True)
class TokenPlan:
    """What a grant will issue, decided before its statement (the scope, for a code or a
    refresh, once the statement returns: ``for_scope``)."""

    now: int
    scope: list[str]
    access_signer: JWTSigner
    id_signer: JWTSigner | None
    access_token_jti: str
    access_token_expires_at: datetime
    refresh: RefreshPlan | None
    # DPoP (RFC 9449): the key the access token is bound to (``cnf.jkt``), and the one
    # the next refresh token is (a public client's, §5; a rotation keeps its token's).
    jkt: str | None = None
    refresh_jkt: str | None = None
    # RFC 8707: the resource server the access token is for (None: ONEPASS_AUDIENCE).
    resource: ResourceRecord | None = None

    @property
    def refresh_family(self) -> str | None:
        return self.refresh.family_id if self.refresh else None

    def for_scope(self, ctx: TokenContext, client: ClientRecord, scope: list[str]) -> TokenPlan:
        """This plan for ``scope``: the ID token with ``openid``, the refresh token with
        ``offline_access``."""
        id_signer = (
            ctx.keyring.signer(client.id_token_signed_response_alg) if "openid" in scope else None
        )
        refresh = self.refresh if "offline_access" in scope else None
        return replace(self, scope=scope, id_signer=id_signer, refresh=refresh)

    def for_resource(self, ctx: TokenContext, resource: ResourceRecord | None) -> TokenPlan:
        """This plan with its access token for ``resource`` (RFC 8707), signed with the
        resource's algorithm."""
        if resource is None:
            return self
        return replace(
            self, resource=resource, access_signer=ctx.keyring.signer(resource.signing_alg)
        )

    def statement_params(self, hasher: KeyedHasher) -> dict[str, Any]:
        """What the PostgreSQL grant statements insert (``oauth.statements``)."""
        refresh = self.refresh
        assert refresh is not None
        return {
            "refresh_hash": hasher.hash(refresh.token),
            "created_at": refresh.created_at,
            "sliding_expires_at": refresh.sliding_expires_at,
            "family_expires_at": refresh.family_expires_at,
            "access_token_jti": self.access_token_jti,
            "access_token_expires_at": self.access_token_expires_at,
            "jkt": self.jkt,
            "refresh_jkt": self.refresh_jkt,
        }


def plan_tokens(
    ctx: TokenContext, client: ClientRecord, scope: list[str], jkt: str | None = None
) -> TokenPlan:
    """The access token always, an ID token with ``openid``, and a refresh token with
    ``offline_access`` for a client allowed the refresh grant; bound to the DPoP key
    ``jkt`` when the request had a proof (the refresh token only for a public client).
    Raises ``NoActiveKey`` before anything is consumed."""
    settings = ctx.settings
    now = int(ctx.clock.timestamp())
    access_signer = ctx.keyring.signer(settings.access_token_alg)
    id_signer = (
        ctx.keyring.signer(client.id_token_signed_response_alg) if "openid" in scope else None
    )
    ttl = settings.access_token_ttl
    if client.allowed_resources:
        # The grant's resource (and its lifetime) may be known only once the statement
        # returns: what a replay must revoke is kept for the longest a token can live.
        ttl = max(ttl, resources.MAX_TTL)
    refresh = None
    if "offline_access" in scope and "refresh_token" in client.grant_types:
        issued_at = ctx.clock.now()
        refresh = RefreshPlan(
            token=secrets.token_urlsafe(32),
            created_at=issued_at,
            sliding_expires_at=issued_at + timedelta(seconds=settings.refresh_token_ttl),
            family_id=secrets.token_urlsafe(16),
            family_expires_at=issued_at + timedelta(seconds=settings.refresh_token_absolute_ttl),
        )
    return TokenPlan(
        now=now,
        scope=scope,
        access_signer=access_signer,
        id_signer=id_signer,
        access_token_jti=secrets.token_urlsafe(16),
        access_token_expires_at=datetime.fromtimestamp(now + ttl, UTC),
        refresh=refresh,
        jkt=jkt,
        refresh_jkt=jkt if client.is_public else None,
    )


async def store_refresh_token(
    ctx: TokenContext,
    tx: Transaction,
    plan: TokenPlan,
    *,
    client: ClientRecord,
    user: Grantee,
    row: Row,
) -> None:
    """SQLite: insert the planned refresh token, in the family of ``row`` (the rotated
    token) when it has one."""
    refresh = plan.refresh
    if refresh is None:
        return
    family_expires_at = row.get("family_expires_at") or refresh.family_expires_at
    auth = AuthInfo.of(row)
    await tx.execute(
        INSERT_REFRESH_TOKEN,
        {
            "token_hash": ctx.hasher.hash(refresh.token),
            "family_id": row.get("family_id") or refresh.family_id,
            "oauth_application_id": client.id,
            "user_id": user.id,
            "scope": " ".join(plan.scope),
            "sid": auth.sid,
            "auth_time": auth.auth_time,
            "acr": auth.acr,
            "amr": auth.amr,
            "created_at": refresh.created_at,
            "expires_at": min(family_expires_at, refresh.sliding_expires_at),
            "family_expires_at": family_expires_at,
            "access_token_jti": plan.access_token_jti,
            "access_token_expires_at": plan.access_token_expires_at,
            "dpop_jkt": plan.refresh_jkt,
            "resource": row.get("resource"),
        },
    )


async def issue_tokens(
    ctx: TokenContext,
    plan: TokenPlan,
    *,
    client: ClientRecord,
    user: Grantee,
    auth: AuthInfo,
    nonce: str | None,
) -> dict[str, Any]:
    """``sign_tokens`` for the ``sub`` the client sees (``clients.subjects``: the user's
    own for a public client, read nowhere; the sector's for a pairwise one)."""
    sub = await direct_subject_for(ctx.direct, ctx.clock, client, user.id, user.sub)
    seen = user if sub == user.sub else Grantee(user.id, sub)
    return sign_tokens(ctx, plan, client=client, user=seen, auth=auth, nonce=nonce)


def sign_tokens(
    ctx: TokenContext,
    plan: TokenPlan,
    *,
    client: ClientRecord,
    user: Grantee,
    auth: AuthInfo,
    nonce: str | None,
) -> dict[str, Any]:
    """The token response (RFC 6749 §5.1, OIDC Core §3.1.3.3), signed after the commit."""
    settings = ctx.settings
    audience, scope, ttl = settings.audience, plan.scope, settings.access_token_ttl
    if plan.resource is not None:  # RFC 8707: only the resource's scopes, its lifetime
        audience, ttl = plan.resource.identifier, plan.resource.access_token_ttl
        scope = plan.resource.narrowed(plan.scope)
    access_token = sign_access_token(
        plan.access_signer,
        issuer=settings.issuer,
        audience=audience,
        subject=user.sub,
        client_id=client.client_id,
        scope=scope,
        now=plan.now,
        ttl=ttl,
        jti=plan.access_token_jti,
        extra=bound(plan.jkt),
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": token_type(plan.jkt),
        "expires_in": ttl,
        "scope": " ".join(scope),
    }
    if plan.id_signer is not None:
        claims = id_token_claims(
            issuer=settings.issuer,
            subject=user.sub,
            client_id=client.client_id,
            now=plan.now,
            ttl=settings.id_token_ttl,
            auth_time=int(auth.auth_time.timestamp()),
            nonce=nonce,
            access_token=access_token,
            acr=auth.acr,
            amr=auth.amr,
            sid=auth.sid,
            alg=plan.id_signer.alg,
        )
        body["id_token"] = plan.id_signer.sign(claims, typ="JWT")
    if plan.refresh is not None:
        body["refresh_token"] = plan.refresh.token
    return body
