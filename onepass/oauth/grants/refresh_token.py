"""Refresh Token Grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).

The presented token is rotated by the ``UPDATE … RETURNING`` that checks it, and its
successor inserted, in one write (``oauth.statements``: one transaction of two statements
on SQLite, one statement on PostgreSQL). When nothing was rotated, ``refuse`` reads the
token to tell the client why, and revokes the whole family when an already-rotated token
comes back. A FAPI 2.0 client's token is not rotated
(``clients.profiles.rotates_refresh_tokens``): it is used again until it expires.

DPoP (RFC 9449 §5): a public client's refresh token bound to a key is rotated only with a
proof of that key (a condition of the same statement; another key, or none, leaves it
unused and is ``invalid_grant``), and its successor is bound to the same key. A
confidential client's are not bound: its authentication is the binding.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NoReturn

from sqlalchemy import select

from onepass.clients import profiles
from onepass.clients.registry import ClientRecord
from onepass.clients.scopes import parse_scope
from onepass.db.direct import Row
from onepass.oauth.codes import NOT_GRANTED
from onepass.oauth.dpop import check_binding
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.models import RefreshToken
from onepass.oauth.resource_indicators import resolve
from onepass.oauth.revocation import revoke_family
from onepass.oauth.statements import (
    ROTATE_REFRESH_TOKEN,
    ROTATE_REFRESH_TOKEN_PG,
    USE_REFRESH_TOKEN,
)
from onepass.oauth.user_tokens import (
    AuthInfo,
    Grantee,
    TokenPlan,
    grantee,
    issue_tokens,
    plan_tokens,
    store_refresh_token,
)
from onepass.oauth_errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
)

WIDENED = "a refresh cannot widen the scope of the original grant"


def reissued_scope(requested: list[str], granted: list[str]) -> list[str]:
    """The scope of the new tokens: what was asked (within the grant) or the grant's,
    always with offline_access, which keeps the family alive."""
    scope = requested or granted
    return scope if "offline_access" in scope else [*scope, "offline_access"]


class RefreshTokenGrant:
    grant_type = "refresh_token"

    async def create_token_response(
        self,
        ctx: TokenContext,
        client: ClientRecord,
        form: dict[str, str],
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        presented = form.get("refresh_token")
        if presented is None:
            raise InvalidRequestError("refresh_token is required")
        requested = parse_scope(form.get("scope"))
        # RFC 8707 §2.2: a resource here must be the one the grant was for.
        asked = form.get("resource")
        target = await resolve(ctx, client, asked, allowed=client.allowed_resources)
        token_hash = ctx.hasher.hash(presented[:512])
        # The scope is the grant's, known once the token is rotated (``for_scope``).
        draft = plan_tokens(ctx, client, ["offline_access"], jkt)
        params = {
            "token_hash": token_hash,
            "client": client.id,
            "now": ctx.clock.now(),
            "enforce": ctx.settings.enforce_canonical_resolution,
            "jkt": jkt,
            "resource": asked,
        }
        if not profiles.rotates_refresh_tokens(client):
            used = await _use_without_rotation(ctx, client, draft, requested, params)
            row = None if used is None else used[0]
            if used is not None:
                row, plan, user = used
        elif ctx.direct.dialect == "postgresql":
            row = await ctx.direct.write_one(
                ROTATE_REFRESH_TOKEN_PG,
                {
                    **params,
                    **draft.statement_params(ctx.hasher),
                    "requested": requested,
                    "refresh_scope": " ".join(reissued_scope(requested, [])) if requested else None,
                },
            )
            if row is not None:
                plan = _plan(ctx, client, draft, requested, row)
                user = grantee(row)  # refused after the commit: the token is spent, none issued
        else:
            async with ctx.direct.write() as tx:
                row = await tx.one(ROTATE_REFRESH_TOKEN, params)
                if row is not None:
                    plan = _plan(ctx, client, draft, requested, row)
                    user = grantee(row)  # a refusal rolls the rotation back
                    await store_refresh_token(ctx, tx, plan, client=client, user=user, row=row)
        if row is None:
            await refuse(ctx, client, token_hash, requested, jkt, asked)
        if row["resource"] is not None:
            granted = target or await resolve(
                ctx, client, row["resource"], allowed=client.allowed_resources
            )
            plan = plan.for_resource(ctx, granted)
        auth = AuthInfo.of(row)
        return await issue_tokens(ctx, plan, client=client, user=user, auth=auth, nonce=None)


async def _use_without_rotation(
    ctx: TokenContext,
    client: ClientRecord,
    draft: TokenPlan,
    requested: list[str],
    params: dict[str, Any],
) -> tuple[Row, TokenPlan, Grantee] | None:
    """A profile client's refresh (``profiles.rotates_refresh_tokens``): the token is
    checked and its sliding expiry moved on by one statement, in a transaction that a
    refusal (a widened scope, a disabled user) rolls back; the answer has no new refresh
    token, so the client keeps using the one it has (RFC 6749 §6)."""
    refresh = draft.refresh
    sliding = refresh.sliding_expires_at if refresh else ctx.clock.now()
    async with ctx.direct.write() as tx:
        row = await tx.one(
            USE_REFRESH_TOKEN,
            {
                **params,
                "sliding_expires_at": sliding,
                "access_token_jti": draft.access_token_jti,
                "access_token_expires_at": draft.access_token_expires_at,
            },
        )
        if row is None:
            return None
        plan = replace(_plan(ctx, client, draft, requested, row), refresh=None)
        return row, plan, grantee(row)


def _plan(
    ctx: TokenContext, client: ClientRecord, draft: TokenPlan, requested: list[str], row: Row
) -> TokenPlan:
    granted = row["scope"].split()
    if requested and not set(requested) <= set(granted):
        raise InvalidScopeError(WIDENED)
    # The successor is bound to the key the rotated token was bound to (or to none).
    plan = replace(draft, refresh_jkt=row["refresh_jkt"])
    return plan.for_scope(ctx, client, reissued_scope(requested, granted))


async def refuse(
    ctx: TokenContext,
    client: ClientRecord,
    token_hash: str,
    requested: list[str],
    jkt: str | None = None,
    resource: str | None = None,
) -> NoReturn:
    """Why a refresh token could not be rotated; a rotated one presented again (stolen
    or replayed) revokes its family, committed before the refusal. A token bound to a
    DPoP key, presented without a proof of that key, is refused and stays usable."""
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
        if requested and not set(requested) <= set(row.scope.split()):
            raise InvalidScopeError(WIDENED)
        if row.rotated_at is None:
            check_binding(row.dpop_jkt, jkt, "refresh token")
            if resource is not None and resource != row.resource:
                raise InvalidTargetError(NOT_GRANTED)
            # not rotated, yet not matched: it expired in between
            raise InvalidGrantError("the refresh token could not be used; try again")
        await revoke_family(session, ctx.clock, row.family_id, "refresh_reuse")
    raise InvalidGrantError(
        "the refresh token was already used; every token of this grant is revoked"
    )
