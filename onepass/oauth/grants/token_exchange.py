"""OAuth 2.0 Token Exchange (RFC 8693): a service swaps a user's access token for one
meant for a downstream resource server.

The calling client is confidential and authenticated, and its exchange policy
(``token_exchange_resources``, ``onepass clients update --token-exchange-resource``)
names the resource servers it may exchange to: without one the grant is not among its
grant types (``unauthorized_client``); a target outside it is ``invalid_target``.

- ``subject_token`` (§2.1): an access token 1pass issued
  (``subject_token_type=urn:ietf:params:oauth:token-type:access_token``), its signature
  checked against the key ring, not expired, not revoked, its client still registered,
  its user still enabled (and, with ENFORCE_CANONICAL_RESOLUTION, not merged away). A
  token of a client acting for itself (client_credentials) has no user: refused.
- ``resource`` or ``audience`` (§2.1): one resource server, the new token's ``aud``.
- ``scope``: within what the subject token had and the resource defines (the default).
- ``actor_token`` (§2.1, §4.1): an access token issued to the calling client; the new
  token's ``act`` names it, with the subject token's own ``act`` nested inside.
- ``requested_token_type``: only an access token; ``issued_token_type`` says so.

The new token lives the resource's lifetime, never past the subject token's ``exp``: an
exchange cannot stretch a user's session. A DPoP-bound subject (or actor) token
(``cnf.jkt``) is exchanged only with a DPoP proof of the same key (RFC 9449): whoever
presents it must hold the key, as at any resource server. Bad or unacceptable tokens
are ``invalid_request`` (§2.2.2).
"""

from __future__ import annotations

import secrets
from typing import Any

from onepass.clients.registry import TOKEN_EXCHANGE, ClientRecord
from onepass.clients.scopes import parse_scope
from onepass.clients.subjects import sector_of
from onepass.oauth.bearer import AccessTokenVerifier
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.resource_indicators import resolve
from onepass.oauth.statements import ACCESS_TOKEN_REVOKED, USERINFO, USERINFO_PAIRWISE
from onepass.oauth.tokens import bound, sign_access_token, token_type
from onepass.oauth_errors import (
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenError,
    UnauthorizedClientError,
)

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class TokenExchangeGrant:
    grant_type = TOKEN_EXCHANGE

    def __init__(self, verifier: AccessTokenVerifier) -> None:
        self._verifier = verifier

    async def create_token_response(
        self,
        ctx: TokenContext,
        client: ClientRecord,
        form: dict[str, str],
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        if client.is_public or not client.token_exchange_resources:
            raise UnauthorizedClientError("this client may not exchange tokens")
        subject_token = _required(form, "subject_token")
        _token_type(form, "subject_token_type", required=True)
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise InvalidRequestError(
                f"requested_token_type must be {ACCESS_TOKEN_TYPE}: 1pass issues access tokens"
            )
        actor_token = form.get("actor_token")
        if actor_token is None and "actor_token_type" in form:
            raise InvalidRequestError("actor_token_type without actor_token")
        if actor_token is not None:
            _token_type(form, "actor_token_type", required=True)
        resource, audience = form.get("resource"), form.get("audience")
        if resource is not None and audience is not None and resource != audience:
            raise InvalidTargetError("give one target: resource and audience differ")
        target = resource or audience
        if target is None:
            raise InvalidRequestError("resource or audience is required: the downstream service")
        record = await resolve(ctx, client, target, allowed=client.token_exchange_resources)
        assert record is not None
        requested = parse_scope(form.get("scope"))

        now = int(ctx.clock.timestamp())
        subject = await self._subject(ctx, subject_token, jkt, now)
        act = subject.get("act")
        if actor_token is not None:
            actor = await self._actor(ctx, client, actor_token, jkt, now)
            act = {"sub": actor["sub"], **({"act": act} if isinstance(act, dict) else {})}

        available = record.narrowed(str(subject.get("scope", "")).split())
        if requested:
            beyond = [s for s in requested if s not in available]
            if beyond:
                raise InvalidScopeError(
                    "scope beyond what the subject token has and the resource defines: "
                    + " ".join(beyond)[:200]
                )
        scope = requested or available
        if not scope:
            raise InvalidScopeError(
                "the subject token has none of the scopes this resource defines"
            )

        ttl = min(record.access_token_ttl, subject["exp"] - now)
        extra: dict[str, Any] = dict(bound(jkt) or {})
        if isinstance(act, dict):
            extra["act"] = act
        token = sign_access_token(
            ctx.keyring.signer(record.signing_alg),
            issuer=ctx.settings.issuer,
            audience=record.identifier,
            subject=subject["sub"],
            client_id=client.client_id,
            scope=scope,
            now=now,
            ttl=ttl,
            jti=secrets.token_urlsafe(16),
            extra=extra,
        )
        return {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": token_type(jkt),
            "expires_in": ttl,
            "scope": " ".join(scope),
        }

    def _decode(self, token: str, what: str, jkt: str | None, now: int) -> dict[str, Any]:
        """An access token 1pass issued, not expired, presented by its DPoP key holder."""
        try:
            claims = self._verifier.decode(token)
        except InvalidTokenError as exc:
            raise InvalidRequestError(f"{what}: {exc.description}") from None
        if claims["exp"] <= now:  # no leeway: the new token would be born expired
            raise InvalidRequestError(f"{what}: the access token has expired")
        cnf = claims.get("cnf")
        key = cnf.get("jkt") if isinstance(cnf, dict) else None
        if key is not None and key != jkt:
            raise InvalidRequestError(
                f"{what} is DPoP-bound: send a DPoP proof of its key (RFC 9449)"
            )
        return claims

    async def _subject(
        self, ctx: TokenContext, token: str, jkt: str | None, now: int
    ) -> dict[str, Any]:
        claims = self._decode(token, "subject_token", jkt, now)
        params = {"jti": claims["jti"], "sub": claims["sub"]}
        user = await ctx.direct.read(USERINFO, params)
        # The client it was issued to (one cached lookup): still registered (checked last),
        # and, for a pairwise client, the sector whose sub the token names (OIDC Core §8.1).
        issued_to = await self._verifier.registered_client(claims["client_id"])
        sector = sector_of(issued_to) if issued_to is not None else None
        if sector is not None:
            user = await ctx.direct.read(USERINFO_PAIRWISE, {**params, "sector": sector})
        if user is not None and user["revoked"] is not None:
            raise InvalidRequestError("subject_token: the access token was revoked")
        if user is None:
            raise InvalidRequestError("subject_token: not a user's access token")
        if user["disabled_at"] is not None:
            raise InvalidRequestError("subject_token: its user no longer exists")
        canonical = user["canonical_user_id"]
        if ctx.settings.enforce_canonical_resolution and canonical not in (None, user["id"]):
            raise InvalidRequestError("subject_token: its user was merged into another account")
        if issued_to is None:
            raise InvalidRequestError("subject_token: its client is no longer registered")
        return claims

    async def _actor(
        self, ctx: TokenContext, client: ClientRecord, token: str, jkt: str | None, now: int
    ) -> dict[str, Any]:
        claims = self._decode(token, "actor_token", jkt, now)
        if claims["client_id"] != client.client_id:
            raise InvalidRequestError("actor_token: it was issued to another client")
        if await ctx.direct.read(ACCESS_TOKEN_REVOKED, {"jti": claims["jti"]}) is not None:
            raise InvalidRequestError("actor_token: the access token was revoked")
        return claims


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise InvalidRequestError(f"{name} is required")
    return value


def _token_type(form: dict[str, str], name: str, *, required: bool) -> None:
    value = form.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"{name} is required")
        return
    if value != ACCESS_TOKEN_TYPE:
        raise InvalidRequestError(f"{name} must be {ACCESS_TOKEN_TYPE}")
