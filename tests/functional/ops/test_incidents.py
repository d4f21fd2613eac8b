"""Incidents and escalation on a real database, time moved by a FrozenClock; escalation
notices POSTed to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from onepass.clock import FrozenClock
from onepass.ops import incidents
from onepass.ops.incidents import IncidentError, IncidentNotFound
from onepass.playbook.incidents import run_escalation
from onepass.runtime import Runtime
from tests.webhook_helpers import Receiver, status

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


async def open_one(
    runtime: Runtime, clock: FrozenClock, sev: int = 1, title: str = "Login down"
) -> int:
    async with runtime.database.session(exclusive=incidents.INCIDENTS_LOCK) as session:
        return (await incidents.open_incident(session, clock, sev=sev, title=title, actor="ada")).id


async def escalate(
    runtime: Runtime, clock: FrozenClock, url: str | None = None
) -> incidents.EscalationRun:
    return await run_escalation(runtime.database, clock, webhook_url=url, notify_timeout=2)


async def timeline(runtime: Runtime, incident_id: int) -> list[tuple[str, str]]:
    async with runtime.database.session(readonly=True) as session:
        return [(u.kind, u.message) for u in await incidents.timeline(session, incident_id)]


async def test_an_incident_goes_from_open_to_acknowledged_to_resolved(
    runtime: Runtime, clock: FrozenClock
) -> None:
    incident_id = await open_one(runtime, clock, sev=2, title="  Slow logins  ")
    clock.advance(60)
    async with runtime.database.session() as session:
        await incidents.add_update(
            session, clock, incident_id, message="p95 at 3 s since the deploy", actor="ada"
        )
    clock.advance(60)
    async with runtime.database.session() as session:
        acked = await incidents.acknowledge(session, clock, incident_id, actor="bob")
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "bob")
    assert acked.acknowledged_at == T0 + timedelta(minutes=2)
    clock.advance(600)
    async with runtime.database.session() as session:
        resolved = await incidents.resolve(
            session, clock, incident_id, actor="bob", message="rolled back"
        )
    assert resolved.status == "resolved" and resolved.resolved_at == T0 + timedelta(minutes=12)
    assert resolved.title == "Slow logins"
    assert await timeline(runtime, incident_id) == [
        ("opened", "sev2 opened: Slow logins"),
        ("update", "p95 at 3 s since the deploy"),
        ("acknowledged", "acknowledged by bob"),
        ("resolved", "rolled back"),
    ]
    async with runtime.database.session(readonly=True) as session:
        assert [i.id for i in await incidents.list_incidents(session)] == [incident_id]
        assert await incidents.list_incidents(session, open_only=True) == []


async def test_bad_input_and_impossible_transitions_are_clear_errors(
    runtime: Runtime, clock: FrozenClock
) -> None:
    async with runtime.database.session() as session:
        with pytest.raises(IncidentError, match="severity must be 1, 2 or 3"):
            await incidents.open_incident(session, clock, sev=4, title="x")
        with pytest.raises(IncidentError, match="title must not be empty"):
            await incidents.open_incident(session, clock, sev=1, title="   ")
        with pytest.raises(IncidentError, match="the limit is 200"):
            await incidents.open_incident(session, clock, sev=1, title="x" * 201)
        with pytest.raises(IncidentError, match="control characters"):
            await incidents.open_incident(session, clock, sev=1, title="a\x1b[31mb")
        with pytest.raises(IncidentNotFound, match="no incident with id 999"):
            await incidents.acknowledge(session, clock, 999)
    incident_id = await open_one(runtime, clock)
    async with runtime.database.session() as session:
        with pytest.raises(IncidentError, match="message must not be empty"):
            await incidents.add_update(session, clock, incident_id, message="")
        await incidents.acknowledge(session, clock, incident_id, actor="ada")
    async with runtime.database.session() as session:
        with pytest.raises(
            IncidentError, match="already acknowledged at 2026-03-01T03:00:00Z by ada"
        ):
            await incidents.acknowledge(session, clock, incident_id)
        await incidents.resolve(session, clock, incident_id)
    async with runtime.database.session() as session:
        with pytest.raises(IncidentError, match="already resolved"):
            await incidents.resolve(session, clock, incident_id)
        with pytest.raises(IncidentError, match="is resolved; there is nothing to acknowledge"):
            await incidents.acknowledge(session, clock, incident_id)


async def test_a_sev1_nobody_answers_escalates_first_line_then_second_then_external(
    runtime: Runtime, clock: FrozenClock
) -> None:
    incident_id = await open_one(runtime, clock)
    other = await open_one(runtime, clock, sev=2, title="Slow")

    clock.advance(30)
    first = await escalate(runtime, clock)
    assert [(e.incident_id, e.step.slug) for e in first.escalations] == [
        (incident_id, "first_line")
    ]
    assert first.escalations[0].at == T0 + timedelta(seconds=30)
    # Cron runs every minute: nothing more until 15 minutes after the first page.
    for _ in range(14):
        clock.advance(60)
        assert (await escalate(runtime, clock)).escalations == []
    clock.advance(60)  # 15 min 30 s after opening, 15 min after the first page
    second = await escalate(runtime, clock)
    assert [e.step.slug for e in second.escalations] == ["second_line"]
    assert (
        "not acknowledged 15 minutes after paging the first line" in second.escalations[0].message
    )
    assert (await escalate(runtime, clock)).escalations == []  # idempotent
    clock.set(T0 + timedelta(minutes=30))
    external = await escalate(runtime, clock)
    assert [e.step.slug for e in external.escalations] == ["external"]
    clock.advance(3600)
    assert (await escalate(runtime, clock)).escalations == []

    async with runtime.database.session(readonly=True) as session:
        incident = await incidents.get_incident(session, incident_id)
        assert (incident.escalation_level, incident.escalated_at) == (3, T0 + timedelta(minutes=30))
        assert (await incidents.get_incident(session, other)).escalation_level == 0
        steps = [
            (u.created_at - T0, u.escalation_level)
            for u in await incidents.timeline(session, incident_id)
            if u.kind == "escalated"
        ]
    assert steps == [
        (timedelta(seconds=30), 1),
        (timedelta(minutes=15, seconds=30), 2),
        (timedelta(minutes=30), 3),
    ]


async def test_acknowledging_a_sev1_stops_the_second_line(
    runtime: Runtime, clock: FrozenClock
) -> None:
    incident_id = await open_one(runtime, clock)
    await escalate(runtime, clock)
    clock.advance(240)
    async with runtime.database.session() as session:
        await incidents.acknowledge(session, clock, incident_id, actor="oncall")
    clock.advance(20 * 60)
    assert (await escalate(runtime, clock)).escalations == []
    clock.advance(10 * 60)  # open for 34 minutes: RPs are told, acknowledged or not
    assert [e.step.slug for e in (await escalate(runtime, clock)).escalations] == ["external"]


async def test_a_resolved_sev1_is_not_escalated(runtime: Runtime, clock: FrozenClock) -> None:
    incident_id = await open_one(runtime, clock)
    async with runtime.database.session() as session:
        await incidents.resolve(session, clock, incident_id)
    clock.advance(3600)
    assert (await escalate(runtime, clock)).escalations == []


async def test_escalation_notices_are_posted_once_each_to_the_webhook(
    runtime: Runtime, clock: FrozenClock, receiver: Receiver
) -> None:
    incident_id = await open_one(runtime, clock, title="Token endpoint 503")
    run = await escalate(runtime, clock, receiver.url("/page"))
    assert (run.notified, run.notify_failed) == (1, 0)
    assert len(receiver.deliveries) == 1
    notice = json.loads(receiver.deliveries[0].body)
    assert notice["type"] == "incident.escalated"
    assert notice["id"] == f"incident-{incident_id}-first_line"
    assert notice["step"] == "first_line"
    assert notice["target"] == "the first line (on-call engineer)"
    assert notice["incident"] == {
        "id": incident_id,
        "sev": 1,
        "title": "Token endpoint 503",
        "status": "open",
        "opened_at": "2026-03-01T03:00:00Z",
        "acknowledged_at": None,
    }
    assert notice["escalated_at"] == "2026-03-01T03:00:00Z"
    assert "Token endpoint 503" in notice["text"]
    assert receiver.deliveries[0].headers["Content-Type"] == "application/json"

    clock.advance(60)
    run = await escalate(runtime, clock, receiver.url("/page"))
    assert (run.escalations, run.notified) == ([], 0)
    assert len(receiver.deliveries) == 1, "a notice accepted once is not sent again"


async def test_a_failed_notice_is_retried_by_the_next_run(
    runtime: Runtime, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.routes["/page"] = status(500)
    incident_id = await open_one(runtime, clock)
    run = await escalate(runtime, clock, receiver.url("/page"))
    assert (len(run.escalations), run.notified, run.notify_failed) == (1, 0, 1)
    assert run.errors == ["HTTP 500"]
    async with runtime.database.session(readonly=True) as session:
        step = next(
            u for u in await incidents.timeline(session, incident_id) if u.kind == "escalated"
        )
        assert (step.notified_at, step.notify_attempts, step.notify_error) == (None, 1, "HTTP 500")

    receiver.routes["/page"] = status(204)
    clock.advance(60)
    run = await escalate(runtime, clock, receiver.url("/page"))
    assert (run.escalations, run.notified, run.notify_failed) == ([], 1, 0)
    assert [d.answered_status for d in receiver.deliveries] == [500, 204]
    assert (
        json.loads(receiver.deliveries[0].body)["id"]
        == json.loads(receiver.deliveries[1].body)["id"]
    )
    async with runtime.database.session(readonly=True) as session:
        step = next(
            u for u in await incidents.timeline(session, incident_id) if u.kind == "escalated"
        )
        assert step.notified_at == clock.now() and step.notify_error is None


async def test_a_notice_to_an_unreachable_webhook_is_a_recorded_failure(
    runtime: Runtime, clock: FrozenClock
) -> None:
    from tests.e2e.server import free_port

    await open_one(runtime, clock)
    run = await escalate(runtime, clock, f"http://127.0.0.1:{free_port()}/page")
    assert (len(run.escalations), run.notified, run.notify_failed) == (1, 0, 1)
    assert run.errors[0].startswith("ConnectError")


async def test_status_page_incidents_are_open_sev1_with_public_updates_only(
    runtime: Runtime, clock: FrozenClock
) -> None:
    sev1 = await open_one(runtime, clock, title="Logins failing")
    await open_one(runtime, clock, sev=2, title="Slow webhooks")
    resolved = await open_one(runtime, clock, title="Old outage")
    async with runtime.database.session() as session:
        await incidents.add_update(
            session, clock, sev1, message="db01.internal is down", actor="ada"
        )
        await incidents.add_update(
            session, clock, sev1, message="We are restoring service.", actor="ada", public=True
        )
        await incidents.resolve(session, clock, resolved)
    async with runtime.database.session(readonly=True) as session:
        shown = await incidents.public_incidents(session)
    assert [(i.id, [u.message for u in updates]) for i, updates in shown] == [
        (sev1, ["We are restoring service."])
    ]
