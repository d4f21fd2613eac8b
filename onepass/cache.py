"""One cache interface, two implementations.

``RedisCache`` when ``ONEPASS_REDIS_URL`` is set (shared by every process), and
``MemoryCache`` otherwise (one process: the embedded default). Values are strings;
callers serialise.
"""

from __future__ import annotations

import fnmatch
from typing import Protocol

import redis.asyncio as redis

from onepass.clock import Clock, SystemClock


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
        """Increment a counter; the first increment starts its ``ttl``."""
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
        return sum(1 for key in keys if self._live(key) is not None and self._data.pop(key, None))

    async def delete_matching(self, pattern: str) -> int:
        doomed = [key for key in self._data if fnmatch.fnmatchcase(key, pattern)]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    async def incr(self, key: str, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._data[key] = ("1", self._clock.timestamp() + ttl)
            return 1
        value = int(current) + 1
        self._data[key] = (str(value), self._data[key][1])
        return value

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )

    async def get(self, key: str) -> str | None:
        return await self._redis.get(key)

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        return bool(await self._redis.set(key, value, px=int(ttl * 1000) if ttl else None, nx=nx))

    async def delete(self, *keys: str) -> int:
        return int(await self._redis.delete(*keys)) if keys else 0

    async def delete_matching(self, pattern: str) -> int:
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

    async def incr(self, key: str, ttl: float) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, int(ttl * 1000), nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


def create_cache(redis_url: str | None, clock: Clock | None = None) -> Cache:
    return RedisCache(redis_url) if redis_url else MemoryCache(clock)
