"""One cache interface, two implementations.

``RedisCache`` when ``ONEPASS_REDIS_URL`` is set (shared by every process; it falls
back to an in-process cache while Redis does not answer), and ``MemoryCache`` otherwise
(one process: the embedded default). Values are strings; callers serialise.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from typing import Protocol, cast

import structlog

from onepass.clock import Clock, SystemClock

log = structlog.get_logger("onepass.cache")


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        """Store ``value``; with ``nx``, only if ``key`` is absent. True if stored."""
        ...

    async def delete(self, *keys: str) -> int:
        """Delete keys; return how many existed."""
        ...

    async def delete_matching(self, pattern: str) -> int:
        """Delete every key matching a glob ``pattern`` (``user:canonical:*``)."""
        ...

    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter atomically and return its new value (concurrent callers
        each see a different one); the first increment starts its ``ttl``."""
        ...

    async def decr(self, key: str) -> int:
        """Take one back from a live counter, keeping its ``ttl``; a counter that has
        expired stays gone (never a negative count without a ``ttl``). The new value, or 0."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCache:
    def __init__(self, clock: Clock | None = None, max_entries: int = 100_000) -> None:
        self._clock = clock or SystemClock()
        self._data: dict[str, tuple[str, float | None]] = {}
        self._max_entries = max_entries

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock.timestamp():
            del self._data[key]
            return None
        return value

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        if nx and self._live(key) is not None:
            return False
        if len(self._data) >= self._max_entries and key not in self._data:
            self._evict()
        expires = self._clock.timestamp() + ttl if ttl else None
        self._data[key] = (value, expires)
        return True

    def _evict(self) -> None:
        now = self._clock.timestamp()
        for key in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]
        while len(self._data) >= self._max_entries:
            # dicts keep insertion order: drop the oldest entry.
            del self._data[next(iter(self._data))]

    async def delete(self, *keys: str) -> int:
        return sum(
            1
            for key in keys
            if self._live(key) is not None and self._data.pop(key, None) is not None
        )

    async def delete_matching(self, pattern: str) -> int:
        doomed = [key for key in self._data if fnmatch.fnmatchcase(key, pattern)]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    # incr and decr do not await between reading and writing: on one event loop they
    # are atomic, so concurrent requests of this process each get their own count.
    async def incr(self, key: str, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._data[key] = ("1", self._clock.timestamp() + ttl)
            return 1
        value = int(current) + 1
        self._data[key] = (str(value), self._data[key][1])
        return value

    async def decr(self, key: str) -> int:
        current = self._live(key)
        if current is None:
            return 0
        value = int(current) - 1
        self._data[key] = (str(value), self._data[key][1])
        return value

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


_DECR_LIVE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisCache:
    """Redis, shared by every process; an outage degrades it, never the requests.

    When Redis does not answer (refused, reset, a timeout), the operation falls back to
    an in-process ``MemoryCache`` and Redis is left alone for ``RETRY_AFTER`` seconds, so
    requests do not each wait for a timeout. In the fallback, values are kept
    ``FALLBACK_TTL`` seconds at most (other processes cannot invalidate them) and login
    counters count per process. A write that should have replaced or removed a shared
    value (an invalidation: a non-NX ``set``, ``delete``, ``delete_matching``) and could
    not is remembered; once Redis answers again this process deletes those keys there,
    so no answer cached before the outage outlives a change made during it.
    ``lost_writes`` says how many are still owed (a short-lived CLI process tells its
    operator what to run).
    """

    FALLBACK_TTL = 5.0
    RETRY_AFTER = 2.0
    MAX_REMEMBERED = 100_000

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        # Imported here, so a process without ONEPASS_REDIS_URL (the embedded default,
        # most `onepass` commands) does not spend a tenth of a second importing redis.
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        # What an unreachable or failing Redis raises (connection refused or reset, timeouts).
        self._errors = (RedisError, OSError, TimeoutError)
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )
        self._fallback = MemoryCache(clock)
        self._down_until = 0.0
        self._lost_keys: set[str] = set()
        self._lost_patterns: set[str] = set()
        self._repairer: asyncio.Task[None] | None = None
        # DECR on a missing key would create it at -1 with no expiry: only a live one.
        self._decr_live = self._redis.register_script(_DECR_LIVE)

    @property
    def lost_writes(self) -> int:
        return len(self._lost_keys) + len(self._lost_patterns)

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException, operation: str) -> None:
        if self._available():
            log.error(
                "cache.redis_unavailable",
                operation=operation,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                fallback="in-process",
            )
        self._down_until = time.monotonic() + self.RETRY_AFTER

    def _lose(self, keys: tuple[str, ...] = (), pattern: str | None = None) -> None:
        first = not self.lost_writes
        if len(self._lost_keys) + len(keys) <= self.MAX_REMEMBERED:
            self._lost_keys.update(keys)
        else:  # too many to list: forget the keys, remember to clear their prefix
            self._lost_patterns.update(f"{k.rsplit(':', 1)[0]}:*" for k in keys)
        if pattern is not None:
            self._lost_patterns.add(pattern)
        self._repair_in_background()
        if not first:
            return  # said once per outage
        log.error(
            "cache.invalidation_lost",
            keys=list(keys)[:10],
            pattern=pattern,
            repair="deleted in Redis when it answers again, or run "
            "`onepass cache invalidate-canonical --all`",
        )

    async def _repair(self) -> None:
        keys, patterns = list(self._lost_keys), list(self._lost_patterns)
        for start in range(0, len(keys), 1000):
            await self._redis.unlink(*keys[start : start + 1000])
        for pattern in patterns:
            await self._unlink_matching(pattern)
        self._lost_keys.difference_update(keys)
        self._lost_patterns.difference_update(patterns)
        log.warning("cache.redis_repaired", keys=len(keys), patterns=patterns)

    def _repair_in_background(self) -> None:
        """Repair as soon as Redis answers, not at this process's next cache call: other
        processes read Redis from then on, and this one may make no call for long."""
        if self._repairer is not None and not self._repairer.done():
            return
        try:
            self._repairer = asyncio.get_running_loop().create_task(self._repair_when_back())
        except RuntimeError:  # no event loop running: the next call repairs
            self._repairer = None

    async def _repair_when_back(self) -> None:
        while self.lost_writes:
            await asyncio.sleep(max(self._down_until - time.monotonic(), 0.0) + 0.05)
            await self._redis_first()

    async def _redis_first(self) -> bool:
        """Whether to try Redis now; repairs what is owed once it answers."""
        if not self._available():
            return False
        if self.lost_writes:
            try:
                await self._repair()
            except self._errors as exc:
                self._failed(exc, "repair")
                return False
        return True

    async def get(self, key: str) -> str | None:
        if await self._redis_first():
            try:
                # decode_responses=True: str, though redis-py's types allow bytes too
                return cast("str | None", await self._redis.get(key))
            except self._errors as exc:
                self._failed(exc, "get")
        return await self._fallback.get(key)

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        if await self._redis_first():
            try:
                px = int(ttl * 1000) if ttl else None
                return bool(await self._redis.set(key, value, px=px, nx=nx))
            except self._errors as exc:
                self._failed(exc, "set")
        if not nx:
            self._lose((key,))
        return await self._fallback.set(
            key, value, min(ttl or self.FALLBACK_TTL, self.FALLBACK_TTL), nx=nx
        )

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        if await self._redis_first():
            try:
                return int(await self._redis.delete(*keys))
            except self._errors as exc:
                self._failed(exc, "delete")
        self._lose(keys)
        return await self._fallback.delete(*keys)

    async def _unlink_matching(self, pattern: str) -> int:
        deleted = 0
        batch: list[str] = []
        async for key in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await self._redis.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self._redis.unlink(*batch)
        return deleted

    async def delete_matching(self, pattern: str) -> int:
        if await self._redis_first():
            try:
                return await self._unlink_matching(pattern)
            except self._errors as exc:
                self._failed(exc, "delete_matching")
        self._lose(pattern=pattern)
        return await self._fallback.delete_matching(pattern)

    async def incr(self, key: str, ttl: float) -> int:
        if await self._redis_first():
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.pexpire(key, int(ttl * 1000), nx=True)
                    value, _ = await pipe.execute()
                return int(value)
            except self._errors as exc:
                self._failed(exc, "incr")
        return await self._fallback.incr(key, ttl)

    async def decr(self, key: str) -> int:
        if await self._redis_first():
            try:
                return int(await self._decr_live(keys=[key]))
            except self._errors as exc:
                self._failed(exc, "decr")
        return await self._fallback.decr(key)

    async def ping(self) -> bool:
        """Whether Redis answers now (never raises)."""
        try:
            return bool(await self._redis.ping())
        except self._errors:
            return False

    async def close(self) -> None:
        if self._repairer is not None:
            self._repairer.cancel()
        await self._redis.aclose()


def create_cache(redis_url: str | None, clock: Clock | None = None) -> Cache:
    return RedisCache(redis_url, clock) if redis_url else MemoryCache(clock)
