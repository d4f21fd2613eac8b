"""Refresh Token Grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from onepass.clients.registry import ClientRecord
from onepass.clients.scopes import parse_scope
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.models import RefreshToken
from onepass.oauth.revocation import revoke_family
from onepass.oauth.user_tokens import AuthInfo, grant_user, issue_user_tokens
from onepass.oauth_errors import InvalidGrantError, InvalidRequestError, InvalidScopeError


class RefreshTokenGrant:
    grant_type = "refresh_token"

    async def create_token_response(
        self, ctx: TokenContext, client: ClientRecord, form: dict[str, str]
    ) -> dict[str, Any]:
        presented = form.get("refresh_token")
        if presented is None:
            raise InvalidRequestError("refresh_token is required")
        reused = False
        async with ctx.database.session() as session:
            row = await session.scalar(
                select(RefreshToken).where(
                    RefreshToken.token_hash == ctx.hasher.hash(presented[:512])
                )
            )
            if row is None or row.oauth_application_id != client.id:
                raise InvalidGrantError(
                    "the refresh token is invalid or was issued to another client"
                )
            if row.revoked_at is not None:
                raise InvalidGrantError("the refresh token was revoked")
            now = ctx.clock.now()
            if row.expires_at <= now or row.family_expires_at <= now:
                raise InvalidGrantError("the refresh token has expired")
            requested = parse_scope(form.get("scope"))
            granted = row.scope.split()
            if requested and not set(requested) <= set(granted):
                raise InvalidScopeError("a refresh cannot widen the scope of the original grant")
            rotated = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None))
                .values(rotated_at=now)
            )
            if cast("CursorResult[Any]", rotated).rowcount != 1:
                # An already-rotated token came back: stolen or replayed. Revoke the family.
                await revoke_family(session, ctx.clock, row.family_id, "refresh_reuse")
                reused = True
            else:
                user = await grant_user(ctx, session, row.user_id)
                scope = requested or granted
                if "offline_access" not in scope:
                    scope = [*scope, "offline_access"]  # keep the family alive
                issued = await issue_user_tokens(
                    ctx,
                    session,
                    client=client,
                    user=user,
                    scope=scope,
                    auth=AuthInfo(row.auth_time, row.acr, list(row.amr), row.sid),
                    nonce=None,
                    refresh_family=row.family_id,
                    family_expires_at=row.family_expires_at,
                )
        if reused:
            raise InvalidGrantError(
                "the refresh token was already used; every token of this grant is revoked"
            )
        return issued.body
