"""Canonical-user resolution, cached under ``user:canonical:{user_id}``.

Every chain in ``identity_links`` is one hop, so the canonical user of ``u`` is the
target of the link whose source is ``u``, or ``u`` itself. The answer is cached
(Redis when configured, shared by every process; in-process otherwise) and the merge
service invalidates exactly the keys a merge makes stale.

The in-process cache cannot be invalidated from another process (a merge run from
the CLI, another worker), so there it is kept for a few seconds only.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import User
from onepass.cache import Cache, MemoryCache
from onepass.identity.models import IdentityLink
from onepass.services import Service

KEY_PREFIX = "user:canonical:"
IN_PROCESS_TTL = 5.0


def cache_key(user_id: int) -> str:
    return f"{KEY_PREFIX}{user_id}"


async def canonical_user_id(session: AsyncSession, user_id: int) -> int:
    """From the database (the source of truth), no cache."""
    target = await session.scalar(
        select(IdentityLink.target_user_id).where(IdentityLink.source_user_id == user_id)
    )
    return target if target is not None else user_id


class CanonicalResolver:
    def __init__(self, cache: Cache, ttl: float) -> None:
        self._cache = cache
        self._ttl = min(ttl, IN_PROCESS_TTL) if isinstance(cache, MemoryCache) else ttl

    async def resolve(self, session: AsyncSession, user_id: int) -> int:
        """``resolve_canonical``: the canonical user id of ``user_id``."""
        key = cache_key(user_id)
        cached = await self._cache.get(key)
        if cached is not None:
            return int(cached)
        canonical = await canonical_user_id(session, user_id)
        # NX: if a merge committed after our read, it has already written the new
        # answer (``record_merge``); our older answer must not overwrite it.
        await self._cache.set(key, str(canonical), self._ttl, nx=True)
        return canonical

    async def record_merge(self, user_ids: Iterable[int], canonical: int) -> None:
        """After a merge commits: the stale users now resolve to ``canonical``.

        Written rather than deleted, so that a resolution that read the database just
        before the commit cannot put the old answer back (its write is NX).
        """
        for user_id in set(user_ids):
            await self._cache.set(cache_key(user_id), str(canonical), self._ttl)

    async def invalidate(self, user_ids: Iterable[int]) -> int:
        keys = [cache_key(u) for u in set(user_ids)]
        return await self._cache.delete(*keys) if keys else 0

    async def invalidate_all(self) -> int:
        return await self._cache.delete_matching(f"{KEY_PREFIX}*")


async def effective_user(
    session: AsyncSession, resolver: CanonicalResolver | None, enforce: bool, user: User
) -> User:
    """The user tokens and sessions are issued for.

    With ``ENFORCE_CANONICAL_RESOLUTION`` on, a merged user acts as its canonical user;
    off (legacy), a merged user keeps its own identity.
    """
    if not enforce or resolver is None:
        return user
    canonical = await resolver.resolve(session, user.id)
    if canonical == user.id:
        return user
    return await session.get(User, canonical) or user


async def merged_away(
    session: AsyncSession, resolver: CanonicalResolver | None, enforce: bool, user: User
) -> bool:
    """With enforcement on, True for a user merged into another: its tokens stop working."""
    if not enforce or resolver is None:
        return False
    return await resolver.resolve(session, user.id) != user.id


RESOLVER: Service[CanonicalResolver] = Service("identity.resolver")
