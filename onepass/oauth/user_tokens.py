"""Tokens issued to a client on behalf of a user: access, ID and refresh tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import User
from onepass.clients.registry import ClientRecord
from onepass.identity.canonical import effective_user
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.id_token import id_token_claims
from onepass.oauth.models import RefreshToken
from onepass.oauth.tokens import issue_access_token
from onepass.oauth_errors import InvalidGrantError


@dataclass(frozen=True)
class AuthInfo:
    """How and when the user authenticated, carried from the login to every token."""

    auth_time: datetime
    acr: str | None
    amr: list[str]
    sid: str | None


async def grant_user(ctx: TokenContext, session: AsyncSession, user_id: int) -> User:
    """The user a code or refresh token is redeemed for: it must still exist and be
    enabled; with ENFORCE_CANONICAL_RESOLUTION on, its canonical user."""
    user = await session.get(User, user_id)
    if user is None or user.disabled_at is not None:
        raise InvalidGrantError("the user of this grant no longer exists")
    effective = await effective_user(
        session, ctx.resolver, ctx.settings.enforce_canonical_resolution, user
    )
    if effective.disabled_at is not None:
        raise InvalidGrantError("the user of this grant no longer exists")
    return effective


@dataclass(frozen=True)
class IssuedUserTokens:
    body: dict[str, Any]
    access_token_jti: str
    access_token_expires_at: datetime
    refresh_family: str | None


async def issue_user_tokens(
    ctx: TokenContext,
    session: AsyncSession,
    *,
    client: ClientRecord,
    user: User,
    scope: list[str],
    auth: AuthInfo,
    nonce: str | None,
    refresh_family: str | None = None,
    family_expires_at: datetime | None = None,
) -> IssuedUserTokens:
    """Sign the access token, the ID token (with ``openid``), and store a new refresh
    token (with ``offline_access``) in ``refresh_family`` or a new family."""
    settings = ctx.settings
    now = int(ctx.clock.timestamp())
    access = issue_access_token(
        ctx.keyring.signer(settings.access_token_alg),
        issuer=settings.issuer,
        audience=settings.audience,
        subject=user.sub,
        client_id=client.client_id,
        scope=scope,
        now=now,
        ttl=settings.access_token_ttl,
    )
    access_expires = datetime.fromtimestamp(now + access.expires_in, UTC)
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": " ".join(scope),
    }
    if "openid" in scope:
        claims = id_token_claims(
            issuer=settings.issuer,
            subject=user.sub,
            client_id=client.client_id,
            now=now,
            ttl=settings.id_token_ttl,
            auth_time=int(auth.auth_time.timestamp()),
            nonce=nonce,
            access_token=access.token,
            acr=auth.acr,
            amr=auth.amr,
            sid=auth.sid,
        )
        signer = ctx.keyring.signer(client.id_token_signed_response_alg)
        body["id_token"] = signer.sign(claims, typ="JWT")
    family = None
    if "offline_access" in scope and "refresh_token" in client.grant_types:
        family = refresh_family or secrets.token_urlsafe(16)
        token = secrets.token_urlsafe(32)
        issued_at = ctx.clock.now()
        absolute = family_expires_at or issued_at + timedelta(
            seconds=settings.refresh_token_absolute_ttl
        )
        session.add(
            RefreshToken(
                token_hash=ctx.hasher.hash(token),
                family_id=family,
                oauth_application_id=client.id,
                user_id=user.id,
                scope=" ".join(scope),
                sid=auth.sid,
                auth_time=auth.auth_time,
                acr=auth.acr,
                amr=auth.amr,
                created_at=issued_at,
                expires_at=min(absolute, issued_at + timedelta(seconds=settings.refresh_token_ttl)),
                family_expires_at=absolute,
                access_token_jti=access.jti,
                access_token_expires_at=access_expires,
            )
        )
        body["refresh_token"] = token
    await session.flush()
    return IssuedUserTokens(body, access.jti, access_expires, family)
