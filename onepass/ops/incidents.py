"""Incidents: open, update, acknowledge, resolve, and the playbook's escalation.

Every function takes the caller's session (and a clock where time matters); the
caller commits. The playbook (``onepass.playbook.incidents``) runs the commands that
change incidents in ``database.session(exclusive=INCIDENTS_LOCK)`` so that two cron
runs of ``incidents escalate``, or an escalation and an acknowledgement, take turns.

Escalation (``escalate``) records each step on the incident's timeline
(``incident_updates``, kind ``escalated``) and is idempotent: a step is taken once.
The notice of each step is then POSTed to ``ONEPASS_ESCALATION_WEBHOOK_URL`` when it
is set, after the commit (the playbook's ``run_escalation``): a notice that fails is
retried by the next run, at most ``MAX_NOTIFY_ATTEMPTS`` times and only while the incident is open,
so a page is sent at least once (twice if two runs overlap; its ``id`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass import __version__
from onepass.clock import Clock
from onepass.ops.escalation import IncidentState, Step, due_steps
from onepass.ops.models import Incident, IncidentStatus, IncidentUpdate, UpdateKind
from onepass.refusals import NotFound, Refusal

log = structlog.get_logger("onepass.ops.incidents")

INCIDENTS_LOCK = "ops:incidents"
ESCALATION_ACTOR = "escalation"
TITLE_MAX = 200
MESSAGE_MAX = 4000
ACTOR_MAX = 200
MAX_NOTIFY_ATTEMPTS = 30  # one a minute from cron: half an hour of retries


class IncidentError(Refusal):
    """An incident operation that cannot be done; the message says why."""


class IncidentNotFound(IncidentError, NotFound):
    pass


def _clean(value: str, what: str, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise IncidentError(f"the {what} must be text")
    value = value.strip()
    if not value:
        raise IncidentError(f"the {what} must not be empty")
    if len(value) > limit:
        raise IncidentError(f"the {what} is {len(value)} characters long; the limit is {limit}")
    allowed = "\n\t" if multiline else ""
    if any(ord(ch) < 32 and ch not in allowed for ch in value) or "\x7f" in value:
        raise IncidentError(f"the {what} must not contain control characters")
    return value


def _sev(sev: int) -> int:
    if isinstance(sev, bool) or not isinstance(sev, int) or sev not in (1, 2, 3):
        raise IncidentError(f"the severity must be 1, 2 or 3, not {sev!r}")
    return sev


async def open_incident(
    session: AsyncSession, clock: Clock, *, sev: int, title: str, actor: str = "cli"
) -> Incident:
    """A new open incident, with its ``opened`` timeline entry."""
    now = clock.now()
    incident = Incident(
        sev=_sev(sev),
        title=_clean(title, "title", TITLE_MAX),
        status=IncidentStatus.OPEN.value,
        opened_at=now,
        opened_by=_clean(actor, "actor", ACTOR_MAX),
        escalation_level=0,
    )
    session.add(incident)
    await session.flush()
    _note(
        session,
        incident,
        now,
        UpdateKind.OPENED,
        f"sev{sev} opened: {incident.title}",
        incident.opened_by,
    )
    await session.flush()
    return incident


def _note(
    session: AsyncSession,
    incident: Incident,
    now: datetime,
    kind: UpdateKind,
    message: str,
    actor: str,
    *,
    public: bool = False,
    level: int | None = None,
) -> IncidentUpdate:
    update = IncidentUpdate(
        incident_id=incident.id,
        created_at=now,
        kind=kind.value,
        message=message,
        actor=actor,
        public=public,
        escalation_level=level,
        notify_attempts=0,
    )
    session.add(update)
    return update


def describe_incident(incident: Incident) -> dict[str, Any]:
    """Every column, as the CLI prints it with ``--json``."""
    return {column.name: getattr(incident, column.name) for column in Incident.__table__.columns}


def describe_update(update: IncidentUpdate) -> dict[str, Any]:
    return {
        column.name: getattr(update, column.name) for column in IncidentUpdate.__table__.columns
    }


async def get_incident(session: AsyncSession, incident_id: int, *, lock: bool = False) -> Incident:
    incident = await session.get(
        Incident, incident_id, with_for_update=lock or None, populate_existing=lock
    )
    if incident is None:
        raise IncidentNotFound(f"no incident with id {incident_id} (`onepass incidents list`)")
    return incident


async def add_update(
    session: AsyncSession,
    clock: Clock,
    incident_id: int,
    *,
    message: str,
    actor: str = "cli",
    public: bool = False,
) -> IncidentUpdate:
    """A note on the incident's timeline; ``public`` notes of a sev1 show on the status page."""
    incident = await get_incident(session, incident_id, lock=True)
    update = _note(
        session,
        incident,
        clock.now(),
        UpdateKind.UPDATE,
        _clean(message, "message", MESSAGE_MAX, multiline=True),
        _clean(actor, "actor", ACTOR_MAX),
        public=public,
    )
    await session.flush()
    return update


async def acknowledge(
    session: AsyncSession, clock: Clock, incident_id: int, *, actor: str = "cli"
) -> Incident:
    """Someone is on it: escalation to the second line stops."""
    incident = await get_incident(session, incident_id, lock=True)
    actor = _clean(actor, "actor", ACTOR_MAX)
    if incident.resolved_at is not None:
        raise IncidentError(f"incident {incident_id} is resolved; there is nothing to acknowledge")
    if incident.acknowledged_at is not None:
        raise IncidentError(
            f"incident {incident_id} was already acknowledged at "
            f"{_when(incident.acknowledged_at)} by {incident.acknowledged_by}"
        )
    now = clock.now()
    incident.acknowledged_at = now
    incident.acknowledged_by = actor
    incident.status = IncidentStatus.ACKNOWLEDGED.value
    _note(session, incident, now, UpdateKind.ACKNOWLEDGED, f"acknowledged by {actor}", actor)
    await session.flush()
    return incident


async def resolve(
    session: AsyncSession,
    clock: Clock,
    incident_id: int,
    *,
    actor: str = "cli",
    message: str | None = None,
) -> Incident:
    """Closed: escalation stops and the status page no longer shows it."""
    incident = await get_incident(session, incident_id, lock=True)
    actor = _clean(actor, "actor", ACTOR_MAX)
    if incident.resolved_at is not None:
        raise IncidentError(
            f"incident {incident_id} was already resolved at {_when(incident.resolved_at)}"
        )
    now = clock.now()
    incident.resolved_at = now
    incident.resolved_by = actor
    incident.status = IncidentStatus.RESOLVED.value
    text = _clean(message, "message", MESSAGE_MAX, multiline=True) if message else "resolved"
    _note(session, incident, now, UpdateKind.RESOLVED, text, actor, public=True)
    await session.flush()
    return incident


async def list_incidents(session: AsyncSession, *, open_only: bool = False) -> list[Incident]:
    """Incidents, oldest first; ``open_only``: those not resolved."""
    query = select(Incident).order_by(Incident.id)
    if open_only:
        query = query.where(Incident.resolved_at.is_(None))
    return list(await session.scalars(query))


async def timeline(session: AsyncSession, incident_id: int) -> list[IncidentUpdate]:
    await get_incident(session, incident_id)
    return list(
        await session.scalars(
            select(IncidentUpdate)
            .where(IncidentUpdate.incident_id == incident_id)
            .order_by(IncidentUpdate.id)
        )
    )


async def public_incidents(session: AsyncSession) -> list[tuple[Incident, list[IncidentUpdate]]]:
    """What the status page may show: open sev1 incidents (the playbook's external step
    is sev1 only) and their public updates; never operators' notes or names."""
    incidents = list(
        await session.scalars(
            select(Incident)
            .where(Incident.resolved_at.is_(None), Incident.sev == 1)
            .order_by(Incident.opened_at)
        )
    )
    if not incidents:
        return []
    updates = await session.scalars(
        select(IncidentUpdate)
        .where(
            IncidentUpdate.incident_id.in_([i.id for i in incidents]),
            IncidentUpdate.public.is_(True),
        )
        .order_by(IncidentUpdate.id.desc())
    )
    by_incident: dict[int, list[IncidentUpdate]] = {i.id: [] for i in incidents}
    for update in updates:
        by_incident[update.incident_id].append(update)
    return [(i, by_incident[i.id]) for i in incidents]


# -- escalation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalation:
    incident_id: int
    sev: int
    title: str
    step: Step
    message: str
    at: datetime
    late: bool
    update_id: int

    def as_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "sev": self.sev,
            "title": self.title,
            "step": self.step.slug,
            "target": self.step.target,
            "message": self.message,
            "escalated_at": self.at,
            "late": self.late,
        }


async def escalate(session: AsyncSession, clock: Clock) -> list[Escalation]:
    """Take every escalation step that is due now (``escalation.due_steps``) and record
    it on the incident; a second call at the same moment takes none."""
    now = clock.now()
    incidents = list(
        await session.scalars(
            select(Incident)
            .where(Incident.resolved_at.is_(None), Incident.sev == 1)
            .order_by(Incident.id)
            .with_for_update()
        )
    )
    if not incidents:
        return []
    taken_rows = await session.execute(
        select(
            IncidentUpdate.incident_id,
            IncidentUpdate.escalation_level,
            func.min(IncidentUpdate.created_at),
        )
        .where(
            IncidentUpdate.incident_id.in_([i.id for i in incidents]),
            IncidentUpdate.kind == UpdateKind.ESCALATED.value,
        )
        .group_by(IncidentUpdate.incident_id, IncidentUpdate.escalation_level)
    )
    taken: dict[int, dict[Step, datetime]] = {i.id: {} for i in incidents}
    for incident_id, level, at in taken_rows.all():
        taken[incident_id][Step(level or 0)] = at
    done: list[tuple[Incident, Any, IncidentUpdate]] = []
    for incident in incidents:
        state = IncidentState(
            sev=incident.sev,
            opened_at=incident.opened_at,
            acknowledged_at=incident.acknowledged_at,
            resolved_at=incident.resolved_at,
            taken=taken[incident.id],
        )
        for due in due_steps(state, now):
            update = _note(
                session,
                incident,
                now,
                UpdateKind.ESCALATED,
                due.message,
                ESCALATION_ACTOR,
                level=int(due.step),
            )
            incident.escalation_level = max(incident.escalation_level, int(due.step))
            incident.escalated_at = now
            done.append((incident, due, update))
    await session.flush()
    return [
        Escalation(
            incident_id=incident.id,
            sev=incident.sev,
            title=incident.title,
            step=due.step,
            message=due.message,
            at=now,
            late=due.late,
            update_id=update.id,
        )
        for incident, due, update in done
    ]


@dataclass(frozen=True)
class Notice:
    update_id: int
    payload: dict[str, Any]


def notice_payload(incident: Incident, update: IncidentUpdate) -> dict[str, Any]:
    """The JSON POSTed for one escalation step. ``text`` makes it readable as is by chat
    webhooks (Slack, Mattermost); ``id`` is stable, for receivers that deduplicate."""
    step = Step(update.escalation_level or 0)
    return {
        "type": "incident.escalated",
        "id": f"incident-{incident.id}-{step.slug}",
        "text": (
            f"[1pass] sev{incident.sev} incident #{incident.id} '{incident.title}': "
            f"escalated to {step.target}. {update.message}"
        ),
        "incident": {
            "id": incident.id,
            "sev": incident.sev,
            "title": incident.title,
            "status": incident.status,
            "opened_at": _when(incident.opened_at),
            "acknowledged_at": _when(incident.acknowledged_at),
        },
        "step": step.slug,
        "target": step.target,
        "message": update.message,
        "escalated_at": _when(update.created_at),
    }


async def pending_notices(session: AsyncSession) -> list[Notice]:
    """Escalation notices not yet accepted by the webhook, of incidents still open."""
    rows = await session.execute(
        select(Incident, IncidentUpdate)
        .join(Incident, Incident.id == IncidentUpdate.incident_id)
        .where(
            IncidentUpdate.kind == UpdateKind.ESCALATED.value,
            IncidentUpdate.notified_at.is_(None),
            IncidentUpdate.notify_attempts < MAX_NOTIFY_ATTEMPTS,
            Incident.resolved_at.is_(None),
        )
        .order_by(IncidentUpdate.id)
    )
    return [Notice(update.id, notice_payload(incident, update)) for incident, update in rows.all()]


async def post_notice(
    http: httpx.AsyncClient, url: str, payload: dict[str, Any], wait: float
) -> str | None:
    """POST one notice; None when the receiver accepted it (2xx), else why not."""
    try:
        response = await http.post(
            url,
            json=payload,
            timeout=wait,
            headers={"user-agent": f"1pass-escalation/{__version__}"},
        )
    except httpx.TimeoutException:
        return f"no answer within {wait:g} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'failed'}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def record_notice(
    session: AsyncSession, clock: Clock, update_id: int, error: str | None
) -> None:
    update = await session.get(IncidentUpdate, update_id, with_for_update=True)
    if update is None:
        return
    update.notify_attempts += 1
    if error is None:
        update.notified_at = clock.now()
        update.notify_error = None
    else:
        update.notify_error = error[:500]


@dataclass
class EscalationRun:
    escalations: list[Escalation]
    notified: int = 0
    notify_failed: int = 0
    errors: Sequence[str] = ()
    # False when ONEPASS_ESCALATION_WEBHOOK_URL is not set: the steps are recorded and
    # logged, but nobody is paged.
    target_configured: bool = True

    @property
    def nobody_notified(self) -> bool:
        """Steps were due and no escalation target is configured: nobody was paged."""
        return bool(self.escalations) and not self.target_configured

    def as_json(self) -> dict[str, Any]:
        return {
            "escalations": [e.as_json() for e in self.escalations],
            "notified": self.notified,
            "notify_failed": self.notify_failed,
            "notify_errors": list(self.errors),
            "target_configured": self.target_configured,
            "nobody_notified": self.nobody_notified,
        }


def _when(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
