"""The outbox's read model against the rows: every spelling of a state, and every claim.

One table holds each state's definition (``outbox_queries.STATES``); the SQLAlchemy
conditions, the partial indexes' SQL text and the Python ``status_of`` are built from
it, and the claims spell ``claimable`` three ways (PostgreSQL's raw ``CLAIM_SQL``, the
SQLAlchemy statement, the in-memory store). Here all of them run over the same rows,
one of every combination of the columns that decide, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update

from onepass.clients.models import OAuthApplication
from onepass.runtime import Runtime
from onepass.webhooks import outbox_queries
from onepass.webhooks.memory_store import MemoryEntry, MemoryStore
from onepass.webhooks.models import WebhookOutboxEntry
from onepass.webhooks.outbox_queries import Status, condition, is_claimable, sql, status_of
from onepass.webhooks.store import ClaimSlots, SqlStore, Store, create_store
from tests.webhook_helpers import Receiver, make_webhook_app

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# Each column that decides a state or a claim, at each value that matters (``NOW``
# itself: a due time or a lease end of exactly now counts as reached).
DELIVERED = (None, NOW - HOUR)
DEAD = (None, NOW - HOUR)
DUE = (NOW - 2 * HOUR, NOW, NOW + HOUR)
LEASE_ENDS = (None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(minutes=1))


async def fill(runtime: Runtime, app_ids: list[int]) -> list[WebhookOutboxEntry]:
    """Every combination, once per application; returns the rows as stored."""
    combinations = itertools.product(app_ids, DELIVERED, DEAD, DUE, LEASE_ENDS)
    async with runtime.database.session() as session:
        for n, (app_id, delivered, dead, due, lease) in enumerate(combinations):
            session.add(
                WebhookOutboxEntry(
                    oauth_application_id=app_id,
                    event_type="test.ping",
                    payload={"n": n},
                    idempotency_key=f"combination-{n}",
                    created_at=NOW - 3 * HOUR,
                    enqueued_at=NOW - 3 * HOUR,
                    attempts=1 if delivered or dead else 0,
                    due_at=due,
                    delivered_at=delivered,
                    dlq_at=dead,
                    leased_by=None if lease is None else "someone",
                    lease_token=None if lease is None else f"token-{n}",
                    lease_expires_at=lease,
                    key_epoch=0,
                )
            )
    return await stored(runtime)


async def stored(runtime: Runtime) -> list[WebhookOutboxEntry]:
    async with runtime.database.session(readonly=True) as session:
        return list(
            await session.scalars(select(WebhookOutboxEntry).order_by(WebhookOutboxEntry.id))
        )


async def restore_leases(runtime: Runtime, rows: list[WebhookOutboxEntry]) -> None:
    """Undo a claim: each row's lease as it was."""
    table = WebhookOutboxEntry
    async with runtime.database.session() as session:
        for row in rows:
            await session.execute(
                update(table)
                .where(table.id == row.id)
                .values(
                    leased_by=row.leased_by,
                    lease_token=row.lease_token,
                    lease_expires_at=row.lease_expires_at,
                )
            )


def in_memory(rows: list[WebhookOutboxEntry]) -> MemoryStore:
    store = MemoryStore()
    for r in rows:
        store.add(
            MemoryEntry(
                id=r.id,
                app_id=r.oauth_application_id,
                event_type=r.event_type,
                payload=r.payload,
                idempotency_key=r.idempotency_key,
                created_at=r.created_at,
                due_at=r.due_at,
                attempts=r.attempts,
                delivered_at=r.delivered_at,
                dlq_at=r.dlq_at,
                leased_by=r.leased_by,
                lease_token=r.lease_token,
                lease_expires_at=r.lease_expires_at,
            )
        )
    return store


async def two_apps(runtime: Runtime, receiver: Receiver) -> list[int]:
    first = await make_webhook_app(runtime, receiver.url(), name="first")
    second = await make_webhook_app(runtime, receiver.url(), name="second")
    return [first.id, second.id]


async def test_each_state_reads_the_same_in_sql_in_index_text_and_in_python(
    runtime: Runtime, receiver: Receiver
) -> None:
    rows = await fill(runtime, await two_apps(runtime, receiver))
    by_python = {s: {r.id for r in rows if status_of(r) is s} for s in Status}
    async with runtime.database.session(readonly=True) as session:
        for s in Status:
            orm = set(await session.scalars(select(WebhookOutboxEntry.id).where(condition(s))))
            raw = set(
                await session.scalars(text(f"SELECT id FROM webhook_outbox_entries WHERE {sql(s)}"))
            )
            assert orm == raw == by_python[s], s
    # One state each: the three partition the rows.
    assert (
        sum(len(ids) for ids in by_python.values())
        == len(rows)
        == len(set().union(*by_python.values()))
    )
    # pending: neither set; delivered: delivered_at set, dead or not; dead: dlq_at alone.
    per_combination = len(DUE) * len(LEASE_ENDS) * 2
    assert [len(by_python[s]) for s in Status] == [
        per_combination,
        2 * per_combination,
        per_combination,
    ]


async def test_every_claim_takes_what_claimable_allows_and_the_free_slots(
    runtime: Runtime, receiver: Receiver
) -> None:
    app_ids = await two_apps(runtime, receiver)
    rows = await fill(runtime, app_ids)
    expected = {r.id for r in rows if is_claimable(r, NOW)}
    async with runtime.database.session(readonly=True) as session:
        selected = set(
            await session.scalars(
                select(WebhookOutboxEntry.id).where(outbox_queries.claimable(NOW))
            )
        )
    assert selected == expected
    # Pending, due by now, lease none or ended: 2 due times x 3 leases per application.
    assert len(expected) == 2 * 3 * 2

    # With 2 of the first application's 4 slots busy: its 2 oldest due, and the
    # second's 4 oldest.
    first, second = app_ids

    def oldest(app_id: int, n: int) -> set[int]:
        mine = [r for r in rows if r.id in expected and r.oauth_application_id == app_id]
        return {r.id for r in sorted(mine, key=lambda r: (r.due_at, r.id))[:n]}

    with_slots = oldest(first, 2) | oldest(second, 4)
    assert len(with_slots) == 6

    stores: dict[str, Store] = {"engine's": create_store(runtime.database)}
    if runtime.database.dialect == "postgresql":  # the engine's is PostgresStore: CLAIM_SQL
        stores["sqlalchemy"] = SqlStore(runtime.database)
    for name, store in stores.items():
        try:
            for slots, want in (
                (ClaimSlots.of(1000, {}, 1000), expected),
                (ClaimSlots.of(1000, {first: 2}, 4), with_slots),
            ):
                claimed = await store.claim(slots, now=NOW, until=NOW + HOUR, name="t", token="t")
                assert {c.id for c in claimed} == want, (name, slots)
                assert all(r.lease_token == "t" for r in await stored(runtime) if r.id in want)
                await restore_leases(runtime, rows)
        finally:
            await store.close()
    for slots, want in (
        (ClaimSlots.of(1000, {}, 1000), expected),
        (ClaimSlots.of(1000, {first: 2}, 4), with_slots),
    ):
        memory = in_memory(rows)
        claimed = await memory.claim(slots, now=NOW, until=NOW + HOUR, name="t", token="t")
        assert {c.id for c in claimed} == want, ("memory", slots)


async def test_the_backlog_and_dead_counts_agree_with_the_rows(
    runtime: Runtime, receiver: Receiver
) -> None:
    app_ids = await two_apps(runtime, receiver)
    # The second application gets one more dead entry: the counts differ.
    rows = await fill(runtime, app_ids)
    async with runtime.database.session() as session:
        session.add(
            WebhookOutboxEntry(
                oauth_application_id=app_ids[1],
                event_type="test.ping",
                payload={},
                idempotency_key="one-more-dead",
                created_at=NOW,
                enqueued_at=NOW,
                attempts=3,
                due_at=NOW,
                dlq_at=NOW,
                key_epoch=0,
            )
        )
    rows = await stored(runtime)
    pending = [r for r in rows if status_of(r) is Status.PENDING]
    due = [r for r in pending if r.due_at <= NOW]
    unclaimed = [
        r for r in rows if is_claimable(r, NOW) and r.due_at <= NOW - timedelta(minutes=30)
    ]
    dead = Counter(r.oauth_application_id for r in rows if status_of(r) is Status.DEAD)

    async with runtime.database.session(readonly=True) as session:
        backlog = await outbox_queries.backlog(session, NOW)
        waiting = await outbox_queries.waiting_unclaimed(session, NOW, timedelta(minutes=30))
        counts = await outbox_queries.dead_counts(session)
        named = await outbox_queries.dead_by_application(session)

    assert (backlog.pending, backlog.due) == (len(pending), len(due))
    assert backlog.oldest_due_at == min(r.due_at for r in due) == NOW - 2 * HOUR
    assert backlog.oldest_due_age(NOW) == 2 * 3600
    assert (waiting.count, waiting.oldest_due_at) == (len(unclaimed), NOW - 2 * HOUR)
    assert counts == [(app_ids[1], dead[app_ids[1]]), (app_ids[0], dead[app_ids[0]])]
    assert [(d.oauth_application_id, d.client_name, d.dead_count) for d in named] == [
        (app_ids[1], "second", dead[app_ids[1]]),
        (app_ids[0], "first", dead[app_ids[0]]),
    ]


async def test_every_claim_skips_a_disabled_application_whose_entries_stay_pending(
    runtime: Runtime, receiver: Receiver
) -> None:
    app_ids = await two_apps(runtime, receiver)
    rows = await fill(runtime, app_ids)
    first, second = app_ids
    async with runtime.database.session() as session:
        await session.execute(
            update(OAuthApplication).where(OAuthApplication.id == second).values(disabled_at=NOW)
        )
    claimable_rows = {r.id: r for r in rows if is_claimable(r, NOW)}
    want = {i for i, r in claimable_rows.items() if r.oauth_application_id == first}
    assert len(want) == 6 and len(claimable_rows) == 12

    stores: dict[str, Store] = {"engine's": create_store(runtime.database)}
    if runtime.database.dialect == "postgresql":  # the engine's is PostgresStore: CLAIM_SQL
        stores["sqlalchemy"] = SqlStore(runtime.database)
    slots = ClaimSlots.of(1000, {}, 1000)
    for name, store in stores.items():
        try:
            claimed = await store.claim(slots, now=NOW, until=NOW + HOUR, name="t", token="t")
            assert {c.id for c in claimed} == want, name
            # The disabled application's entries are untouched: pending, not leased.
            for r in await stored(runtime):
                if r.oauth_application_id == second:
                    assert r.lease_token != "t" and status_of(r) is status_of(
                        next(x for x in rows if x.id == r.id)
                    )
            await restore_leases(runtime, rows)
        finally:
            await store.close()
    # Triage does not count them as a backlog or a stalled dispatcher.
    mine = [r for r in rows if r.oauth_application_id == first]
    async with runtime.database.session(readonly=True) as session:
        due = await outbox_queries.due_now(session, NOW)
        waiting = await outbox_queries.waiting_unclaimed(session, NOW, timedelta(minutes=30))
    assert due.count == sum(1 for r in mine if status_of(r) is Status.PENDING and r.due_at <= NOW)
    assert waiting.count == sum(
        1 for r in mine if is_claimable(r, NOW) and r.due_at <= NOW - timedelta(minutes=30)
    )
    memory = in_memory(rows)
    memory.disabled_apps.add(second)
    claimed = await memory.claim(slots, now=NOW, until=NOW + HOUR, name="t", token="t")
    assert {c.id for c in claimed} == want, "memory"

    # Enabled again: the next claim takes them.
    async with runtime.database.session() as session:
        await session.execute(
            update(OAuthApplication).where(OAuthApplication.id == second).values(disabled_at=None)
        )
    store = create_store(runtime.database)
    try:
        claimed = await store.claim(slots, now=NOW, until=NOW + HOUR, name="t", token="t")
        assert {c.id for c in claimed} == set(claimable_rows)
    finally:
        await store.close()
