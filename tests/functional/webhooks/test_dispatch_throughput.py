"""The dispatcher under default settings: a backlog in one RP drains at the RP's cap, and
a backlog waiting in retry back-off does not make the loop claim in a tight loop.

These use the default concurrency, per-RP cap and poll interval on purpose (only
loopback targets are allowed): a dispatcher capped by one RP used to wait a whole poll
interval after every batch of ``ONEPASS_WEBHOOK_APP_CONCURRENCY`` deliveries (16/s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from onepass.clients.models import OAuthApplication
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks import outbox
from onepass.webhooks.dispatcher import Dispatcher
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry
from tests.conftest import make_settings
from tests.webhook_helpers import Receiver, make_webhook_app, runtime_with, status


@pytest.fixture
def settings(database_url: str, redis_url: str | None) -> Settings:
    """Default webhook settings; only the receiver on 127.0.0.1 has to be allowed."""
    return make_settings(database_url, redis_url, webhook_allow_private_targets=True)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await runtime_with(settings)
    yield rt
    await rt.close()


async def ping(runtime: Runtime, app_id: int, count: int) -> None:
    """``onepass webhooks ping APP --count N``: N entries in one transaction."""
    async with runtime.database.session(exclusive=outbox.OUTBOX_LOCK) as session:
        application = await session.get(OAuthApplication, app_id)
        assert application is not None
        events = [outbox.Event("test.ping", {"sequence": n}, f"ping-{n}") for n in range(count)]
        ids = await outbox.enqueue_many(session, application, events, clock=runtime.clock)
    assert len(ids) == count


async def count_delivered(runtime: Runtime) -> int:
    async with runtime.database.session() as session:
        return await session.scalar(
            select(func.count()).where(WebhookOutboxEntry.delivered_at.is_not(None))
        )


async def count_attempts(runtime: Runtime) -> int:
    async with runtime.database.session() as session:
        return await session.scalar(select(func.count()).select_from(WebhookDeliveryAttempt))


class CountedClaims:
    """Counts the claim statements a dispatcher runs (each one still runs on the store)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.calls = 0
        claim = dispatcher.store.claim

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await claim(*args, **kwargs)

        dispatcher.store.claim = counted  # type: ignore[method-assign]


async def wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_one_rps_backlog_with_default_settings_drains_at_its_cap_not_per_poll(
    runtime: Runtime, receiver: Receiver
) -> None:
    assert runtime.settings.webhook_app_concurrency < runtime.settings.webhook_concurrency
    app = await make_webhook_app(runtime, receiver.url())
    await ping(runtime, app.id, 2000)

    stop = asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        try:
            # 16 per poll interval would take 125 s; at the RP's cap it takes a few.
            await wait_until(lambda: _all_delivered(runtime, 2000), timeout=30)
        finally:
            stop.set()
            await running

    assert len({d.webhook_id for d in receiver.deliveries}) == 2000
    for delivery in receiver.deliveries[:: 2000 // 20]:
        delivery.verify(app.secret)


async def _all_delivered(runtime: Runtime, n: int) -> bool:
    return await count_delivered(runtime) >= n


async def test_a_capped_rps_backlog_in_retry_back_off_does_not_make_the_loop_spin(
    runtime: Runtime, receiver: Receiver
) -> None:
    # Every attempt fails at once and is retried an hour later (Retry-After is honoured).
    receiver.default = status(429, headers={"Retry-After": "3600"})
    app = await make_webhook_app(runtime, receiver.url())
    await ping(runtime, app.id, 200)

    stop = asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        claims = CountedClaims(dispatcher)
        running = asyncio.create_task(dispatcher.run(stop))
        try:
            await wait_until(lambda: _attempted(runtime, 200), timeout=15)
            during_first_pass = claims.calls
            # Every entry is now in back-off: the loop may look again once per poll
            # interval, not claim in a loop.
            await asyncio.sleep(2.0)
            while_backing_off = claims.calls - during_first_pass
        finally:
            stop.set()
            await running

    assert len(receiver.deliveries) == 200  # each attempted once
    # Not a claim per delivery (200): at most one per quarter of the cap (50), plus the
    # looks of the poll interval.
    assert during_first_pass < 200 // 2, during_first_pass
    # 2 s of back-off, a poll interval of 1 s: a look or two, not a loop.
    assert while_backing_off <= 4, while_backing_off


async def _attempted(runtime: Runtime, n: int) -> bool:
    return await count_attempts(runtime) >= n
