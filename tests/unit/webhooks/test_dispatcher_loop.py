"""The dispatcher's claim loop on the in-memory store: its rules without a database.

The store is the only stand-in (``memory_store.MemoryStore``, the ``store.Store``
protocol over Python objects); every attempt is a real signed POST to a receiver on
127.0.0.1, verified with the independent ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from onepass.clock import Clock, FrozenClock, SystemClock
from onepass.crypto import SecretBox
from onepass.settings import Settings
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks import signing
from onepass.webhooks.dispatcher import Dispatcher
from onepass.webhooks.memory_store import MemoryKey, MemoryStore
from onepass.webhooks.outbox_queries import Status, is_claimable, status_of
from onepass.webhooks.store import ClaimSlots
from tests.conftest import TEST_SECRET_KEY, make_settings
from tests.webhook_helpers import Delivery, Receiver, hang, status

APP = 7


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


def loop_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allow_private_targets": True,
        "webhook_timeout": 2.0,
        "webhook_lease_seconds": 5,
        "webhook_retry_schedule": "30s,30s",
        # Far longer than any test: a wait for the poll interval shows as a timeout.
        "webhook_poll_interval": 30.0,
    }
    values.update(overrides)
    return make_settings("sqlite:///unused-by-the-memory-store.db", None, **values)


def store_with_app(
    url: str, box: SecretBox, clock: Clock, *, latency: float = 0.0
) -> tuple[MemoryStore, str]:
    """A store holding one application with one v1 key; returns the key as an RP holds it."""
    store = MemoryStore(latency=latency)
    kid, secret = signing.generate_kid(), signing.generate_secret()
    sealed = box.encrypt(secret, webhook_keys.box_context(kid))
    store.add_app(APP, url, [MemoryKey(kid, signing.V1, sealed, clock.now())])
    return store, signing.format_secret(secret)


def dispatcher_on(
    store: MemoryStore, settings: Settings, clock: Clock, **options: Any
) -> Dispatcher:
    return Dispatcher(
        None, settings, SecretBox(TEST_SECRET_KEY), clock, store=store, listen=False, **options
    )


def counting_in_flight(peak: dict[str, int], answer: int, hold: float) -> Any:
    """A receiver handler that holds each request ``hold`` s and notes the most at once."""
    now = {"n": 0}

    async def handler(_delivery: Delivery, _request: web.Request) -> web.StreamResponse:
        now["n"] += 1
        peak["n"] = max(peak["n"], now["n"])
        try:
            await asyncio.sleep(hold)
            return web.Response(status=answer)
        finally:
            now["n"] -= 1

    return handler


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_capped_rps_backlog_refills_before_the_poll_interval(receiver: Receiver) -> None:
    clock = SystemClock()
    box = SecretBox(TEST_SECRET_KEY)
    # Each statement takes a few milliseconds, during which attempts finish and free
    # slots: the wake-up they give must not be lost.
    store, secret = store_with_app(receiver.url(), box, clock, latency=0.005)
    for n in range(40):
        store.enqueue(APP, clock.now(), key=f"backlog-{n}")
    peak = {"n": 0}
    receiver.default = counting_in_flight(peak, 200, hold=0.05)

    stop = asyncio.Event()
    dispatcher = dispatcher_on(store, loop_settings(), clock, concurrency=16, app_concurrency=4)
    async with dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        started = time.monotonic()
        try:
            # Ten rounds of the RP's cap: one per poll interval would take 300 s.
            await wait_until(
                lambda: all(status_of(e) is Status.DELIVERED for e in store.entries.values())
            )
        finally:
            stop.set()
            await running
    assert time.monotonic() - started < 10
    assert peak["n"] == 4  # the cap, filled again as slots free, never exceeded
    assert sorted(d.webhook_id for d in receiver.deliveries) == sorted(
        f"backlog-{n}" for n in range(40)
    )
    for delivery in receiver.deliveries:
        delivery.verify(secret)
    assert dispatcher.stats.delivered == 40


async def test_a_backlog_in_retry_back_off_does_not_make_the_loop_claim_repeatedly(
    receiver: Receiver,
) -> None:
    clock = SystemClock()
    store, _ = store_with_app(receiver.url(), SecretBox(TEST_SECRET_KEY), clock)
    for n in range(40):
        store.enqueue(APP, clock.now(), key=f"busy-{n}")
    receiver.default = status(503)  # each attempt fails at once: retried 30 s later

    poll = 0.5
    stop = asyncio.Event()
    dispatcher = dispatcher_on(
        store, loop_settings(webhook_poll_interval=poll), clock, concurrency=16, app_concurrency=8
    )
    async with dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        try:
            await wait_until(lambda: len(store.attempts) == 40)
            first_pass = store.claims
            await asyncio.sleep(4 * poll)
            backing_off = store.claims - first_pass
        finally:
            stop.set()
            await running

    assert len(receiver.deliveries) == 40  # none retried before its 30 s
    assert all(e.attempts == 1 and e.next_retry_at is not None for e in store.entries.values())
    # 40 entries at a cap of 8: a claim per quarter of the cap freed at most, a few more
    # for the first look and the last; then one look per poll interval, no more.
    assert first_pass <= 40 // 2 + 3, first_pass
    assert backing_off <= 4 + 1, backing_off


async def test_the_result_of_an_expired_lease_is_discarded(receiver: Receiver) -> None:
    clock = FrozenClock()
    store, _ = store_with_app(receiver.url(), SecretBox(TEST_SECRET_KEY), clock)
    entry = store.enqueue(APP, clock.now(), key="slow")
    answer = asyncio.Event()
    receiver.default = hang(answer, then=200)

    stop = asyncio.Event()
    dispatcher = dispatcher_on(store, loop_settings(), clock)
    async with dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        await receiver.wait_for(lambda: len(receiver.deliveries) == 1)
        first_token = entry.lease_token
        # The lease (5 s) ends while the attempt is still in flight; another dispatcher
        # claims the entry, as it may.
        clock.advance(6)
        assert is_claimable(entry, clock.now())
        taken = await store.claim(
            ClaimSlots.of(10, {}, 4),
            now=clock.now(),
            until=clock.now() + timedelta(seconds=5),
            name="other",
            token="other-token",
        )
        assert [c.id for c in taken] == [entry.id]
        answer.set()  # the first attempt now succeeds, too late
        await wait_until(lambda: len(store.attempts) == 1)
        stop.set()
        await running

    assert first_token is not None and first_token != "other-token"
    # Nothing of the late result was applied: the entry is still the other claim's.
    assert status_of(entry) is Status.PENDING
    assert (entry.attempts, entry.lease_token, entry.leased_by) == (0, "other-token", "other")
    [attempt] = store.attempts
    assert attempt["outcome"] == "discarded"
    assert attempt["status_code"] == 200
    assert "not applied: the lease expired before the result was recorded" in attempt["error"]
    assert (dispatcher.stats.delivered, dispatcher.stats.discarded) == (0, 1)


async def test_shutdown_releases_unfinished_claims(receiver: Receiver) -> None:
    clock = FrozenClock()
    store, _ = store_with_app(receiver.url(), SecretBox(TEST_SECRET_KEY), clock)
    entries = [store.enqueue(APP, clock.now(), key=f"held-{n}") for n in range(3)]
    receiver.default = hang()  # never answers

    stop, force = asyncio.Event(), asyncio.Event()
    dispatcher = dispatcher_on(
        store, loop_settings(webhook_timeout=20, webhook_lease_seconds=60), clock
    )
    async with dispatcher:
        running = asyncio.create_task(dispatcher.run(stop, force=force))
        await receiver.wait_for(lambda: len(receiver.deliveries) == 3)
        assert all(e.lease_token is not None for e in entries)
        clock.advance(1)
        stop.set()
        force.set()  # do not wait for the attempts in flight (up to the 20 s timeout)
        started = time.monotonic()
        await running
    assert time.monotonic() - started < 5

    # Given back at once, as they were: due now, not leased, no attempt counted.
    for e in entries:
        assert (e.lease_token, e.leased_by, e.lease_expires_at) == (None, None, None)
        assert e.due_at == clock.now()
        assert e.attempts == 0 and status_of(e) is Status.PENDING
        assert is_claimable(e, clock.now())
    assert store.attempts == []
    assert store.closed
