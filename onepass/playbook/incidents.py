"""The playbook's incidents chapter: open, update, acknowledge, resolve, escalate.

Each change runs in one transaction under the incidents lock (``INCIDENTS_LOCK``), so
two cron runs of ``incidents escalate``, or an escalation and an acknowledgement, take
turns. The rules are ``onepass.ops.incidents``'s.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from onepass.clock import Clock
from onepass.db import Database
from onepass.ops import incidents
from onepass.ops.incidents import (
    INCIDENTS_LOCK,
    EscalationRun,
    describe_incident,
    describe_update,
    escalate,
    pending_notices,
    post_notice,
    record_notice,
)
from onepass.runtime import Runtime

log = structlog.get_logger("onepass.ops.incidents")


async def open_incident(runtime: Runtime, *, sev: int, title: str, actor: str) -> dict[str, Any]:
    async with runtime.database.session(exclusive=INCIDENTS_LOCK) as session:
        incident = await incidents.open_incident(
            session, runtime.clock, sev=sev, title=title, actor=actor
        )
        return describe_incident(incident)


async def add_update(
    runtime: Runtime, incident_id: int, *, message: str, actor: str, public: bool
) -> dict[str, Any]:
    async with runtime.database.session(exclusive=INCIDENTS_LOCK) as session:
        update = await incidents.add_update(
            session, runtime.clock, incident_id, message=message, actor=actor, public=public
        )
        return describe_update(update)


async def acknowledge(runtime: Runtime, incident_id: int, *, actor: str) -> dict[str, Any]:
    async with runtime.database.session(exclusive=INCIDENTS_LOCK) as session:
        incident = await incidents.acknowledge(session, runtime.clock, incident_id, actor=actor)
        return describe_incident(incident)


async def resolve(
    runtime: Runtime, incident_id: int, *, actor: str, message: str | None
) -> dict[str, Any]:
    async with runtime.database.session(exclusive=INCIDENTS_LOCK) as session:
        incident = await incidents.resolve(
            session, runtime.clock, incident_id, actor=actor, message=message
        )
        return describe_incident(incident)


async def run_escalation(
    database: Database,
    clock: Clock,
    *,
    webhook_url: str | None,
    notify_timeout: float = 5.0,
) -> EscalationRun:
    """One run of ``onepass incidents escalate``: take the due steps (one transaction,
    under the incidents lock), log each, then send the notices not yet sent."""
    async with database.session(exclusive=INCIDENTS_LOCK) as session:
        escalations = await escalate(session, clock)
    for e in escalations:
        log.warning(
            "incidents.escalated",
            incident_id=e.incident_id,
            sev=e.sev,
            title=e.title,
            step=e.step.slug,
            target=e.step.target,
            late=e.late,
            escalated_at=e.at.isoformat().replace("+00:00", "Z"),
            message=e.message,
        )
    run = EscalationRun(escalations, target_configured=bool(webhook_url))
    if not webhook_url:
        if run.nobody_notified:
            log.error(
                "incidents.nobody_notified",
                steps=len(escalations),
                reason="ONEPASS_ESCALATION_WEBHOOK_URL is not set",
            )
        return run
    async with database.session(readonly=True) as session:
        notices = await pending_notices(session)
    if not notices:
        return run
    errors: list[str] = []
    results: list[tuple[int, str | None]] = []
    # Operator-configured URL (not an RP's): no private-address checks, no proxy surprises.
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as http:
        for notice in notices:
            error = await post_notice(http, webhook_url, notice.payload, notify_timeout)
            results.append((notice.update_id, error))
            if error is None:
                run.notified += 1
            else:
                run.notify_failed += 1
                errors.append(error)
                log.error(
                    "incidents.notify_failed",
                    update_id=notice.update_id,
                    notice_id=notice.payload["id"],
                    error=error,
                )
    async with database.session() as session:
        for update_id, error in results:
            await record_notice(session, clock, update_id, error)
    run.errors = errors
    return run
