"""Backfill of identity links to RPs, and the enforce-check that guards the switch."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select, update

from onepass.identity import backfill, enforcement
from onepass.identity.canonical import CanonicalResolver
from onepass.identity.service import merge
from onepass.oauth.revocation import revoke_merged_user
from onepass.runtime import Runtime
from onepass.webhooks.models import WebhookOutboxEntry
from tests.factories import make_client, make_user


async def merged_pairs(runtime: Runtime, n: int) -> None:
    resolver = CanonicalResolver(runtime.cache, 60)
    for i in range(n):
        a = await make_user(runtime, email=f"a{i}-{secrets.token_hex(3)}@example.com")
        b = await make_user(runtime, email=f"b{i}-{secrets.token_hex(3)}@example.com")
        await merge(
            runtime.database,
            resolver,
            runtime.clock,
            source_id=a.id,
            target_id=b.id,
            actor="t",
            revoke_tokens=revoke_merged_user,
        )


async def state_of(runtime: Runtime, app_id: int) -> enforcement.ApplicationLinkState:
    async with runtime.database.session() as session:
        return next(
            s
            for s in await enforcement.link_delivery_state(session)
            if s.oauth_application_id == app_id
        )


async def test_backfill_sends_old_links_once_and_is_idempotent(runtime: Runtime) -> None:
    await merged_pairs(runtime, 5)  # before the RP subscribed: never enqueued
    rp = await make_client(
        runtime, webhook_url="http://127.0.0.1:9/hook", webhook_events=["identity.link.created"]
    )
    state = await state_of(runtime, rp.id)
    assert (state.links, state.never_enqueued, state.missing) == (5, 5, 5)

    first = await backfill.backfill_links(runtime.database, runtime.clock, rp.id, batch_size=2)
    assert (first.enqueued, first.skipped) == (5, 0)
    second = await backfill.backfill_links(runtime.database, runtime.clock, rp.id, batch_size=2)
    assert (second.enqueued, second.skipped) == (0, 5)
    state = await state_of(runtime, rp.id)
    assert (state.never_enqueued, state.pending, state.missing) == (0, 5, 5)

    async with runtime.database.session() as session:
        entries = list(
            await session.scalars(select(WebhookOutboxEntry).order_by(WebhookOutboxEntry.id))
        )
        # The dispatcher's outcome, written as it writes it: 4 delivered, 1 dead.
        await session.execute(
            update(WebhookOutboxEntry)
            .where(WebhookOutboxEntry.id.in_([e.id for e in entries[:4]]))
            .values(delivered_at=runtime.clock.now())
        )
        await session.execute(
            update(WebhookOutboxEntry)
            .where(WebhookOutboxEntry.id == entries[4].id)
            .values(dlq_at=runtime.clock.now())
        )
    state = await state_of(runtime, rp.id)
    assert (state.delivered, state.pending, state.dead, state.missing) == (4, 0, 1, 1)


async def test_backfill_resumes_after_an_interruption(runtime: Runtime) -> None:
    await merged_pairs(runtime, 6)
    rp = await make_client(runtime, webhook_url="http://127.0.0.1:9/hook")

    def interrupt_after_first_batch(_n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await backfill.backfill_links(
            runtime.database,
            runtime.clock,
            rp.id,
            batch_size=4,
            progress=interrupt_after_first_batch,
        )
    async with runtime.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookOutboxEntry)) == 4
    resumed = await backfill.backfill_links(runtime.database, runtime.clock, rp.id, batch_size=4)
    assert (resumed.enqueued, resumed.skipped) == (2, 4)


async def test_backfill_refuses_an_rp_without_the_subscription(runtime: Runtime) -> None:
    rp = await make_client(
        runtime, webhook_url="http://127.0.0.1:9/hook", webhook_events=["test.ping"]
    )
    with pytest.raises(backfill.NotSubscribed, match=r"identity\.link\.created"):
        await backfill.backfill_links(runtime.database, runtime.clock, rp.id)


async def test_enforcement_guard_refuses_until_forced(runtime: Runtime) -> None:
    await make_client(runtime, webhook_url="http://127.0.0.1:9/hook")
    await merged_pairs(runtime, 1)
    await make_client(runtime, webhook_url="http://127.0.0.1:9/late")  # subscribed after the merge
    async with runtime.database.session() as session:
        with pytest.raises(enforcement.EnforcementNotSafe, match="backfill-links"):
            await enforcement.guard_enforcement(session, force=False)
        lacking = await enforcement.guard_enforcement(session, force=True)
    assert len(lacking) == 2  # one pending, one never enqueued
