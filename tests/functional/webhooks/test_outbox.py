"""The transactional outbox, claims and leases, and the operator's repairs (retry, replay)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from onepass.clients.models import OAuthApplication
from onepass.clock import FrozenClock
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks import outbox, outbox_queries
from onepass.webhooks.dispatcher import Dispatcher
from onepass.webhooks.errors import DuplicateIdempotencyKey, PayloadTooLarge, WebhookError
from onepass.webhooks.store import CLAIM_SQL, claim_args
from tests.webhook_helpers import (
    Receiver,
    dispatch_once,
    enqueue,
    entries,
    entry,
    make_webhook_app,
    runtime_with,
    status,
)


async def _application(runtime: Runtime, app_id: int) -> OAuthApplication:
    async with runtime.database.session() as session:
        application = await session.get(OAuthApplication, app_id)
        assert application is not None
        return application


async def test_a_rolled_back_change_enqueues_nothing(runtime: Runtime, receiver: Receiver) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    application = await _application(runtime, app.id)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with runtime.database.session() as session:
            session.add(application := await session.merge(application))
            application.client_name = "renamed"
            entry_id = await outbox.enqueue(
                session, application, "test.ping", {"n": 1}, "rolled-back", clock=runtime.clock
            )
            assert entry_id is not None  # visible inside the transaction…
            raise Abort

    assert await entries(runtime) == []  # …and gone with it
    assert (await _application(runtime, app.id)).client_name == "webhook app"
    await dispatch_once(runtime)
    assert receiver.deliveries == []

    committed = await enqueue(runtime, app.id, key="committed")
    [pending] = await entries(runtime, status="pending")
    assert pending.id == committed and pending.idempotency_key == "committed"
    assert pending.attempts == 0 and pending.next_retry_at is None
    assert pending.enqueued_at == pending.created_at == pending.due_at


async def test_oversized_payload_is_refused_at_enqueue_with_the_limit(
    runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    application = await _application(runtime, app.id)
    async with runtime.database.session() as session:
        with pytest.raises(PayloadTooLarge, match="the limit is 2,048") as refused:
            await outbox.enqueue(
                session,
                application,
                "test.ping",
                {"blob": "x" * 5000},
                "too-big",
                max_payload_bytes=2048,
            )
        assert "ONEPASS_WEBHOOK_MAX_PAYLOAD_BYTES" in str(refused.value)
        # The transaction is still usable: a payload within the limit goes in.
        assert await outbox.enqueue(
            session, application, "test.ping", {"blob": "x" * 100}, "fits", max_payload_bytes=2048
        )
    assert [e.idempotency_key for e in await entries(runtime)] == ["fits"]


async def test_a_duplicate_idempotency_key_is_a_named_error_and_the_transaction_survives(
    runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    await enqueue(runtime, app.id, key="once")
    application = await _application(runtime, app.id)
    async with runtime.database.session() as session:
        with pytest.raises(DuplicateIdempotencyKey, match="'once'"):
            await outbox.enqueue(session, application, "test.ping", {}, "once")
        assert await outbox.enqueue(session, application, "test.ping", {}, "twice")
    # Another application may use the same key: keys are unique per application.
    other = await make_webhook_app(runtime, receiver.url(), name="other")
    await enqueue(runtime, other.id, key="once")
    assert len(await entries(runtime)) == 3


async def test_only_subscribed_applications_with_a_url_get_events(
    runtime: Runtime, receiver: Receiver
) -> None:
    only_links = await make_webhook_app(runtime, receiver.url(), events=["identity.link.created"])
    application = await _application(runtime, only_links.id)
    async with runtime.database.session() as session:
        assert await outbox.enqueue(session, application, "identity.link.created", {}, "a")
        # Pings and key compromises always go; they were not subscribed to, and need not be.
        assert await outbox.enqueue(session, application, "test.ping", {}, "b")
        assert await outbox.enqueue(session, application, "webhook_key.compromised", {}, "c")
        with pytest.raises(WebhookError, match=r"unknown webhook event type 'user\.teleported'"):
            await outbox.enqueue(session, application, "user.teleported", {}, "d")
        with pytest.raises(WebhookError, match="idempotency key"):
            await outbox.enqueue(session, application, "test.ping", {}, "has space")
        application.webhook_url = None
        assert await outbox.enqueue(session, application, "identity.link.created", {}, "e") is None


async def test_an_expired_lease_is_claimed_again_and_only_then(
    settings: Settings, receiver: Receiver
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    runtime = await runtime_with(settings, clock)
    try:
        app = await make_webhook_app(runtime, receiver.url())
        entry_id = await enqueue(runtime, app.id)
        async with Dispatcher.from_runtime(runtime, listen=False, name="dead") as crashed:
            [held] = await crashed.claim_batch(10)  # …and never finishes: it "died"
        assert held.id == entry_id
        leased = await entry(runtime, entry_id)
        assert leased.leased_by == "dead"
        assert leased.lease_expires_at == clock.now() + timedelta(seconds=5)

        async with Dispatcher.from_runtime(runtime, listen=False, name="alive") as alive:
            assert await alive.claim_batch(10) == []  # still leased
            clock.advance(5)
            assert [e.id for e in await alive.claim_batch(10)] == [entry_id]
        # The dead dispatcher's late result is fenced off by the lease token.
        assert (await entry(runtime, entry_id)).leased_by == "alive"
    finally:
        await runtime.close()


async def test_retry_clears_the_playbook_fields_and_requeues_now(
    settings: Settings, receiver: Receiver
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    runtime = await runtime_with(settings, clock)
    try:
        receiver.default = status(400)
        app = await make_webhook_app(runtime, receiver.url())
        entry_id = await enqueue(runtime, app.id)
        await dispatch_once(runtime)
        dead = await entry(runtime, entry_id)
        assert dead.dlq_at is not None and dead.last_error

        clock.advance(3600)
        async with runtime.database.session() as session:
            again = await outbox.retry_entry(session, runtime.clock, entry_id)
        assert (again.dlq_at, again.next_retry_at, again.attempts, again.last_error) == (
            None,
            None,
            0,
            None,
        )
        assert again.enqueued_at == clock.now() and again.created_at == dead.created_at

        receiver.default = status(200)
        await dispatch_once(runtime)
        assert (await entry(runtime, entry_id)).delivered_at == clock.now()
        async with runtime.database.session() as session:
            with pytest.raises(WebhookError, match="was delivered"):
                await outbox.retry_entry(session, runtime.clock, entry_id)
            with pytest.raises(WebhookError, match="no webhook outbox entry with id 999"):
                await outbox.retry_entry(session, runtime.clock, 999)
    finally:
        await runtime.close()


async def test_replay_dlq_requeues_one_applications_dead_entries_by_time_and_type(
    settings: Settings, receiver: Receiver
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    runtime = await runtime_with(settings, clock)
    try:
        receiver.default = status(410)
        app = await make_webhook_app(runtime, receiver.url())
        other = await make_webhook_app(runtime, receiver.url(), name="other")
        early = await enqueue(runtime, app.id)
        await dispatch_once(runtime)
        clock.advance(600)
        cutoff = clock.now()
        late_ping = await enqueue(runtime, app.id)
        late_link = await enqueue(runtime, app.id, event_type="identity.link.created")
        not_mine = await enqueue(runtime, other.id)
        await dispatch_once(runtime)
        async with runtime.database.session() as session:
            counts = dict(await outbox_queries.dead_counts(session))
            assert counts == {app.id: 3, other.id: 1}
            preview = await outbox.replay_dead(
                session, runtime.clock, app.id, since=cutoff, dry_run=True
            )
            assert preview == [late_ping, late_link]
            pings = await outbox.replay_dead(
                session, runtime.clock, app.id, since=cutoff, event_type="test.ping"
            )
            assert pings == [late_ping]
            rest = await outbox.replay_dead(session, runtime.clock, app.id)
            assert rest == [early, late_link]
        assert {e.id for e in await entries(runtime, status="dead")} == {not_mine}
        assert {e.id for e in await entries(runtime, status="pending")} == {
            early,
            late_ping,
            late_link,
        }
    finally:
        await runtime.close()


async def test_claims_and_dead_counts_use_their_indexes_on_postgresql(
    pg_runtime: Runtime, receiver: Receiver
) -> None:
    runtime = pg_runtime
    app = await make_webhook_app(runtime, receiver.url())
    async with runtime.database.session() as session:
        # A realistic table: mostly delivered history, some dead, a few pending.
        await session.execute(
            text(
                """
                INSERT INTO webhook_outbox_entries (oauth_application_id, event_type, payload,
                    idempotency_key, created_at, enqueued_at, attempts, due_at, key_epoch,
                    delivered_at, dlq_at)
                SELECT :app, 'test.ping', '{}', 'bulk-' || n, now(), now(), 1, now(), 0,
                    CASE WHEN n % 100 < 97 THEN now() END,
                    CASE WHEN n % 100 = 97 THEN now() END
                FROM generate_series(1, 20000) AS n
                """
            ),
            {"app": app.id},
        )
        # Many RPs, none disabled: the claim skips disabled ones by a partial index.
        await session.execute(
            text(
                """
                INSERT INTO oauth_applications (client_id, client_name, redirect_uris,
                    post_logout_redirect_uris, grant_types, response_types, scope,
                    token_endpoint_auth_method, id_token_signed_response_alg, first_party,
                    webhook_events, created_at, updated_at)
                SELECT 'bulk-' || n, 'bulk', '[]', '[]', '[]', '[]', '', 'none', 'RS256',
                    false, '[]', now(), now()
                FROM generate_series(1, 5000) AS n
                """
            )
        )
        await session.execute(text("ANALYZE webhook_outbox_entries"))
        await session.execute(text("ANALYZE oauth_applications"))
    async with Dispatcher.from_runtime(runtime, listen=False) as dispatcher:
        # The dispatcher's own claim statement (EXPLAIN does not execute it).
        in_flight = {app.id: 3, app.id + 1: dispatcher.app_concurrency}  # one busy, one full
        now = datetime.now(UTC)
        args = claim_args(
            dispatcher.claim_slots(100, in_flight), now=now, until=now, name="x", token="t"
        )
    url = make_url(runtime.database.url)
    connection = await asyncpg.connect(host=url.host, user=url.username, database=url.database)
    try:
        due_plan = "\n".join(r[0] for r in await connection.fetch("EXPLAIN " + CLAIM_SQL, *args))
    finally:
        await connection.close()
    async with runtime.database.session() as session:
        dead_plan = "\n".join(
            await session.scalars(
                text(
                    "EXPLAIN SELECT oauth_application_id, COUNT(*) AS dead_count "
                    "FROM webhook_outbox_entries "
                    "WHERE dlq_at IS NOT NULL AND delivered_at IS NULL "
                    "GROUP BY oauth_application_id ORDER BY dead_count DESC"
                )
            )
        )
    assert "ix_webhook_outbox_entries_due" in due_plan, due_plan
    assert "pk_webhook_outbox_entries" in due_plan, due_plan  # the UPDATE: by primary key
    assert "ix_oauth_applications_disabled" in due_plan, due_plan
    assert "Seq Scan" not in due_plan, due_plan
    # The due entries are read in due_at order from their index up to the LIMIT, never
    # all sorted first (only the claimed few are, for the per-RP ranks).
    assert "Sort Key: webhook_outbox_entries" not in due_plan, due_plan
    assert "ix_webhook_outbox_entries_dead" in dead_plan, dead_plan
    assert "Seq Scan" not in dead_plan, dead_plan


async def test_concurrent_claims_never_share_an_entry(runtime: Runtime, receiver: Receiver) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    application = await _application(runtime, app.id)
    async with runtime.database.session() as session:
        await outbox.enqueue_many(
            session,
            application,
            [outbox.Event("test.ping", {"n": n}, f"race-{n}") for n in range(300)],
        )
    async with (
        Dispatcher.from_runtime(runtime, listen=False, name="a", app_concurrency=40) as a,
        Dispatcher.from_runtime(runtime, listen=False, name="b", app_concurrency=40) as b,
    ):
        claims = await asyncio.gather(*(d.claim_batch(40) for d in (a, b, a, b, a, b)))
    ids = [e.id for batch in claims for e in batch]
    assert len(ids) == len(set(ids)) == 240


async def test_a_claim_takes_no_more_of_an_application_than_its_free_slots(
    runtime: Runtime, receiver: Receiver
) -> None:
    busy = await make_webhook_app(runtime, receiver.url(), name="busy")
    idle = await make_webhook_app(runtime, receiver.url(), name="idle")
    full = await make_webhook_app(runtime, receiver.url(), name="full")
    for app in (busy, full, idle):
        for _ in range(5):
            await enqueue(runtime, app.id)
    async with Dispatcher.from_runtime(runtime, listen=False, app_concurrency=4) as dispatcher:
        claimed = await dispatcher.claim_batch(50, {busy.id: 3, full.id: 4})
    taken = {
        app_id: sum(1 for e in claimed if e.app_id == app_id)
        for app_id in (busy.id, idle.id, full.id)
    }
    assert taken == {busy.id: 1, idle.id: 4, full.id: 0}
