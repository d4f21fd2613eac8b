"""Revoking tokens: access tokens by jti, refresh tokens by family (RFC 7009)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clock import Clock
from onepass.oauth.models import RefreshToken, RevokedAccessToken


async def revoke_access_token(
    session: AsyncSession, clock: Clock, jti: str, expires_at: datetime, reason: str
) -> None:
    if expires_at <= clock.now():
        return  # expired already: nothing to remember
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(RevokedAccessToken)
        .values(jti=jti, expires_at=expires_at, revoked_at=clock.now(), reason=reason)
        .on_conflict_do_nothing(index_elements=["jti"])
    )


async def is_access_token_revoked(session: AsyncSession, jti: str) -> bool:
    found = await session.scalar(
        select(RevokedAccessToken.jti).where(RevokedAccessToken.jti == jti)
    )
    return found is not None


async def revoke_family(session: AsyncSession, clock: Clock, family_id: str, reason: str) -> int:
    """Revoke every refresh token of a family and the access tokens issued with them."""
    now = clock.now()
    rows = (
        await session.execute(
            select(RefreshToken.access_token_jti, RefreshToken.access_token_expires_at).where(
                RefreshToken.family_id == family_id
            )
        )
    ).all()
    for jti, expires_at in rows:
        if jti and expires_at:
            await revoke_access_token(session, clock, jti, expires_at, reason)
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return cast("CursorResult[Any]", result).rowcount or 0


async def revoke_merged_user(session: AsyncSession, clock: Clock, user_id: int) -> int:
    """A user merged into another (``identity.service.merge``'s ``revoke_tokens``): its
    refresh tokens, and the access tokens issued with them, stop working."""
    return await revoke_user_refresh_tokens(session, clock, user_id, "merged")


async def revoke_user_refresh_tokens(
    session: AsyncSession, clock: Clock, user_id: int, reason: str
) -> int:
    families = set(
        await session.scalars(
            select(RefreshToken.family_id).where(
                RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
            )
        )
    )
    return sum([await revoke_family(session, clock, family, reason) for family in families])
