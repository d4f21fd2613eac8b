"""Review findings on operations: the Redis cache's repair of invalidations lost in
an outage, seen from another process. A real redis-server, killed with SIGKILL."""

from __future__ import annotations

import asyncio

import httpx

from onepass.cache import RedisCache
from tests.functional.core import test_redis_outage as outage_suite
from tests.functional.core.test_redis_outage import RedisProcess

redis_process = outage_suite.redis_process  # a redis-server of the test's own


async def test_another_process_stops_reading_the_stale_answer_soon_after_redis_is_back(
    redis_process: RedisProcess,
) -> None:
    merging = RedisCache(redis_process.url)  # the worker that ran the merge
    other = RedisCache(redis_process.url)  # another worker, another process
    for cache in (merging, other):
        cache.RETRY_AFTER = 0.05  # type: ignore[misc]
    try:
        await merging.set("user:canonical:7", "7", 3600)  # cached before the merge
        redis_process.kill()
        await merging.set("user:canonical:7", "9", 3600)  # the merge, during the outage
        assert merging.lost_writes == 1
        redis_process.start()

        # The merging worker gets no further request that touches the cache; the other
        # one serves logins. It must not read the pre-merge answer for long.
        deadline = asyncio.get_running_loop().time() + 2.0
        while await other.get("user:canonical:7") == "7":
            assert asyncio.get_running_loop().time() < deadline, (
                "another process still reads the pre-merge canonical user from Redis"
            )
            await asyncio.sleep(0.05)
        assert await other.get("user:canonical:7") is None
        assert merging.lost_writes == 0
    finally:
        await merging.close()
        await other.close()


async def test_metrics_route_labels_stay_bounded_whatever_the_paths_and_methods(
    http: httpx.AsyncClient,
) -> None:
    import uuid

    from prometheus_client.parser import text_string_to_metric_families

    marker = uuid.uuid4().hex
    for method, path in [
        ("GET", f"/{marker}"),
        ("GET", f"/static/{marker}.css"),
        ("GET", f"/admin/webhooks/{marker}"),
        ("DELETE", f"/api/v1/admin/webhook_outbox/{marker}"),
        ("GET", f"/webhooks/{marker}"),
        ("OPTIONS", f"/token/{marker}"),
        ("PUT", "/token"),
        ("GET", f"/up/{marker}"),
        ("GET", f"/%ff{marker}"),
    ]:
        await http.request(method, path)
    text = (await http.get("/metrics")).text
    assert marker not in text
    routes = {
        s.labels["route"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "route" in s.labels
    }
    assert all(r == "unmatched" or r.startswith("/") for r in routes), routes
