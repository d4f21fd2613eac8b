"""On SQLite the dispatcher polls often and usually finds nothing: such a poll must not
take SQLite's write lock (it would queue every writer of the process behind it, and wait
for a writer of another process), and a poll that finds an entry due still claims it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.engine import make_url

from onepass.runtime import Runtime
from onepass.webhooks.store import ClaimSlots, SqlStore, Store, create_store
from tests.webhook_helpers import Receiver, enqueue, make_webhook_app

pytestmark = pytest.mark.parametrize("engine_name", ["sqlite"])


def other_writer(runtime: Runtime) -> sqlite3.Connection:
    """Another connection (a CLI, another process) holding SQLite's write lock."""
    connection = sqlite3.connect(
        make_url(runtime.database.url).database or "", isolation_level=None
    )
    connection.execute("BEGIN IMMEDIATE")
    return connection


async def claim(store: Store, runtime: Runtime) -> list[int]:
    now = runtime.clock.now()
    claimed = await store.claim(
        ClaimSlots.of(10, {}, 4),
        now=now + timedelta(milliseconds=1),
        until=now + timedelta(seconds=30),
        name="test-dispatcher",
        token=uuid.uuid4().hex,
    )
    return [c.id for c in claimed]


async def test_a_poll_with_nothing_due_returns_at_once_while_another_writer_holds_the_lock(
    runtime: Runtime,
) -> None:
    store = create_store(runtime.database)
    assert isinstance(store, SqlStore)
    holder = other_writer(runtime)
    try:
        started = time.monotonic()
        async with asyncio.timeout(5):
            assert await claim(store, runtime) == []
        assert time.monotonic() - started < 2, "the empty poll waited for SQLite's write lock"
    finally:
        holder.rollback()
        holder.close()
        await store.close()


async def test_an_entry_due_is_still_claimed(runtime: Runtime, receiver: Receiver) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)
    store = create_store(runtime.database)
    try:
        assert await claim(store, runtime) == [entry_id]
        assert await claim(store, runtime) == [], "leased: not claimed twice"
    finally:
        await store.close()


async def test_an_entry_due_is_claimed_once_another_writer_lets_go(
    runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)
    store = create_store(runtime.database)
    holder = other_writer(runtime)
    try:
        polling = asyncio.create_task(claim(store, runtime))
        await asyncio.sleep(0.3)
        assert not polling.done(), "the claim's write waits for SQLite's lock"
        holder.rollback()
        async with asyncio.timeout(10):
            assert await polling == [entry_id]
    finally:
        holder.close()
        await store.close()
