"""The dispatcher as a running loop: fairness between applications, wake-ups, shutdown."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks.dispatcher import Dispatcher
from tests.webhook_helpers import (
    Receiver,
    enqueue,
    entries,
    entry,
    hang,
    make_webhook_app,
    runtime_with,
    status,
)


async def test_a_hanging_endpoint_does_not_delay_another_application(
    settings: Settings, receiver: Receiver
) -> None:
    runtime = await runtime_with(
        settings.model_copy(update={"webhook_app_concurrency": 2, "webhook_concurrency": 8})
    )
    try:
        receiver.routes["/slow"] = hang()  # never answers: each attempt times out
        receiver.routes["/fast"] = status(200)
        slow = await make_webhook_app(runtime, receiver.url("/slow"), name="slow")
        fast = await make_webhook_app(runtime, receiver.url("/fast"), name="fast")
        for n in range(10):  # the slow application's backlog comes first
            await enqueue(runtime, slow.id, key=f"slow-{n}")
        for n in range(3):
            await enqueue(runtime, fast.id, key=f"fast-{n}")

        stop = asyncio.Event()
        async with Dispatcher.from_runtime(runtime) as dispatcher:
            running = asyncio.create_task(dispatcher.run(stop))
            await receiver.wait_for(lambda: len(receiver.at("/fast")) == 3)
            # Every fast delivery arrived while the slow application's first attempts
            # were still hanging: within one pass, not after a timeout.
            hanging = receiver.at("/slow")
            assert len(hanging) == 2  # its concurrency cap
            assert all(d.answered_at is None for d in hanging)
            stop.set()
            await running

        for delivery in receiver.at("/fast"):
            delivery.verify(fast.secret)
        assert all(e.delivered_at for e in await entries(runtime, app_id=fast.id))
        slow_entries = await entries(runtime, app_id=slow.id)
        assert sum(e.attempts for e in slow_entries) == 2  # the two that timed out
        assert all(e.delivered_at is None and e.dlq_at is None for e in slow_entries)
    finally:
        await runtime.close()


async def test_a_new_entry_wakes_a_running_dispatcher(runtime: Runtime, receiver: Receiver) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    stop = asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        for n in range(3):
            await enqueue(runtime, app.id, key=f"live-{n}")
            await receiver.wait_for(lambda n=n: len(receiver.deliveries) == n + 1)
        stop.set()
        await running
    assert [d.webhook_id for d in receiver.deliveries] == ["live-0", "live-1", "live-2"]


async def test_stopping_finishes_the_deliveries_in_flight(
    runtime: Runtime, receiver: Receiver
) -> None:
    release = asyncio.Event()
    receiver.default = hang(release, then=200)
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)
    stop = asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        await receiver.wait_for(lambda: len(receiver.deliveries) == 1)
        stop.set()  # SIGTERM
        await asyncio.sleep(0.05)
        assert not running.done()  # still waiting for the attempt in flight
        release.set()
        stats = await running
    assert stats.delivered == 1
    done = await entry(runtime, entry_id)
    assert done.delivered_at is not None and done.leased_by is None


async def test_forced_stop_releases_the_claims_in_flight(
    runtime: Runtime, receiver: Receiver
) -> None:
    receiver.default = hang()
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)
    stop, force = asyncio.Event(), asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        running = asyncio.create_task(dispatcher.run(stop, force=force))
        await receiver.wait_for(lambda: len(receiver.deliveries) == 1)
        assert (await entry(runtime, entry_id)).leased_by == dispatcher.name
        stop.set()
        force.set()  # a second SIGTERM
        await running
    released = await entry(runtime, entry_id)
    assert released.leased_by is None and released.lease_expires_at is None
    assert released.attempts == 0 and released.delivered_at is None and released.dlq_at is None
    assert released.due_at <= runtime.clock.now()  # claimable again at once


async def test_deliveries_go_on_by_polling_when_listen_drops_and_listen_comes_back(
    pg_runtime: Runtime, receiver: Receiver
) -> None:
    runtime = pg_runtime
    app = await make_webhook_app(runtime, receiver.url())
    stop = asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        assert dispatcher._listener is not None and dispatcher._listener.connected
        async with runtime.database.session() as session:
            killed = await session.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
                )
            )
        assert killed == 1
        await enqueue(runtime, app.id, key="while-listen-is-down")
        await receiver.wait_for(lambda: len(receiver.deliveries) == 1)  # by polling
        await receiver.wait_for(lambda: dispatcher._listener.connected, timeout=10)
        stop.set()
        await running
    assert receiver.deliveries[0].webhook_id == "while-listen-is-down"
