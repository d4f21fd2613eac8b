"""Refresh Token Grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

One write transaction: the presented token is rotated by the ``UPDATE … RETURNING``
that checks it (``oauth.statements``), and its successor inserted. When that statement
finds nothing, ``refuse`` reads the token to tell the client why, and revokes the whole
family when an already-rotated token comes back.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import select

from onepass.clients.registry import ClientRecord
from onepass.clients.scopes import parse_scope
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.models import RefreshToken
from onepass.oauth.revocation import revoke_family
from onepass.oauth.statements import ROTATE_REFRESH_TOKEN
from onepass.oauth.user_tokens import (
    AuthInfo,
    grantee,
    plan_tokens,
    sign_tokens,
    store_refresh_token,
)
from onepass.oauth_errors import InvalidGrantError, InvalidRequestError, InvalidScopeError


class RefreshTokenGrant:
    grant_type = "refresh_token"

    async def create_token_response(
        self, ctx: TokenContext, client: ClientRecord, form: dict[str, str]
    ) -> dict[str, Any]:
        presented = form.get("refresh_token")
        if presented is None:
            raise InvalidRequestError("refresh_token is required")
        requested = parse_scope(form.get("scope"))
        token_hash = ctx.hasher.hash(presented[:512])
        async with ctx.direct.write() as tx:
            row = await tx.one(
                ROTATE_REFRESH_TOKEN,
                {"token_hash": token_hash, "client": client.id, "now": ctx.clock.now()},
            )
            if row is not None:
                granted = row["scope"].split()
                if requested and not set(requested) <= set(granted):
                    raise InvalidScopeError(
                        "a refresh cannot widen the scope of the original grant"
                    )
                scope = requested or granted
                if "offline_access" not in scope:
                    scope = [*scope, "offline_access"]  # keep the family alive
                plan = plan_tokens(
                    ctx,
                    client,
                    scope,
                    refresh_family=row["family_id"],
                    family_expires_at=row["family_expires_at"],
                )
                user = await grantee(ctx, tx, row)
                auth = AuthInfo.of(row)
                await store_refresh_token(ctx, tx, plan, client=client, user=user, auth=auth)
        if row is None:
            await refuse(ctx, client, token_hash)
        return sign_tokens(ctx, plan, client=client, user=user, auth=auth, nonce=None)


async def refuse(ctx: TokenContext, client: ClientRecord, token_hash: str) -> NoReturn:
    """Why a refresh token could not be rotated; a rotated one presented again (stolen
    or replayed) revokes its family, committed before the refusal."""
    async with ctx.database.session() as session:
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        if row is None or row.oauth_application_id != client.id:
            raise InvalidGrantError("the refresh token is invalid or was issued to another client")
        if row.revoked_at is not None:
            raise InvalidGrantError("the refresh token was revoked")
        now = ctx.clock.now()
        if row.expires_at <= now or row.family_expires_at <= now:
            raise InvalidGrantError("the refresh token has expired")
        if row.rotated_at is None:  # not rotated, yet not matched: it expired in between
            raise InvalidGrantError("the refresh token could not be used; try again")
        await revoke_family(session, ctx.clock, row.family_id, "refresh_reuse")
    raise InvalidGrantError(
        "the refresh token was already used; every token of this grant is revoked"
    )
