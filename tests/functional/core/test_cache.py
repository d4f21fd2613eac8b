"""The one cache interface, on Redis and in memory: same behaviour."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from onepass.cache import Cache, MemoryCache, RedisCache
from onepass.clock import FrozenClock
from tests.conftest import require_redis


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        instance: Cache = MemoryCache()
    else:
        instance = RedisCache(require_redis())
        await instance.delete_matching("t:*")
    yield instance
    await instance.delete_matching("t:*")
    await instance.close()


async def test_set_get_delete(cache: Cache) -> None:
    key = f"t:{uuid.uuid4()}"
    assert await cache.get(key) is None
    await cache.set(key, "v")
    assert await cache.get(key) == "v"
    assert await cache.delete(key, "t:absent") == 1
    assert await cache.get(key) is None


async def test_values_expire_after_ttl(cache: Cache) -> None:
    await cache.set("t:short", "v", ttl=0.15)
    assert await cache.get("t:short") == "v"
    await asyncio.sleep(0.3)
    assert await cache.get("t:short") is None


async def test_delete_matching_removes_only_matching_keys(cache: Cache) -> None:
    for i in range(5):
        await cache.set(f"t:user:canonical:{i}", str(i))
    await cache.set("t:other", "x")
    assert await cache.delete_matching("t:user:canonical:*") == 5
    assert await cache.get("t:user:canonical:3") is None
    assert await cache.get("t:other") == "x"


async def test_incr_counts_within_its_window(cache: Cache) -> None:
    assert await cache.incr("t:n", ttl=0.2) == 1
    assert await cache.incr("t:n", ttl=0.2) == 2
    await asyncio.sleep(0.35)
    assert await cache.incr("t:n", ttl=0.2) == 1


async def test_concurrent_incr_gives_each_caller_its_own_count(cache: Cache) -> None:
    counts = await asyncio.gather(*(cache.incr("t:many", ttl=60) for _ in range(50)))
    assert sorted(counts) == list(range(1, 51))


async def test_decr_takes_back_from_a_live_counter_and_never_revives_an_expired_one(
    cache: Cache,
) -> None:
    assert await cache.incr("t:d", ttl=0.2) == 1
    assert await cache.incr("t:d", ttl=0.2) == 2
    assert await cache.decr("t:d") == 1
    await asyncio.sleep(0.35)
    assert await cache.decr("t:d") == 0
    assert await cache.get("t:d") is None, "no negative counter left without an expiry"
    assert await cache.incr("t:d", ttl=0.2) == 1


async def test_ping(cache: Cache) -> None:
    assert await cache.ping()


async def test_memory_cache_follows_the_injected_clock() -> None:
    clock = FrozenClock()
    cache = MemoryCache(clock)
    await cache.set("k", "v", ttl=10)
    clock.advance(9.9)
    assert await cache.get("k") == "v"
    clock.advance(0.2)
    assert await cache.get("k") is None


async def test_memory_cache_is_bounded() -> None:
    cache = MemoryCache(max_entries=3)
    for i in range(10):
        await cache.set(f"k{i}", "v")
    assert await cache.get("k9") == "v"
    assert await cache.get("k0") is None


async def test_set_nx_only_writes_an_absent_key(cache: Cache) -> None:
    assert await cache.set("t:nx", "first", 10, nx=True) is True
    assert await cache.set("t:nx", "second", 10, nx=True) is False
    assert await cache.get("t:nx") == "first"
    assert await cache.set("t:nx", "third", 10) is True
    assert await cache.get("t:nx") == "third"
