"""The outbox's read model: what each state of an entry means, and the queries every
reader of the outbox shares (triage, ``GET /metrics``, the admin console and API, the
CLI, the enforcement check).

An entry is in exactly one state, read from two columns (``STATES``, the one
definition):

============  ================  ==========
state         ``delivered_at``  ``dlq_at``
============  ================  ==========
pending       NULL              NULL
delivered     set               (either)
dead          NULL              set
============  ================  ==========

Dead is the dead-letter queue: there is no table of its own. Everything that tells a
state apart is built from ``STATES``: ``condition`` (SQLAlchemy, over the model or any
table, alias or subquery with those columns), ``sql`` (text: the partial indexes in
``models.py``), ``status_of`` (a loaded entry, or any object with the two attributes).
The dispatcher's claim on PostgreSQL (``store.CLAIM_SQL``) keeps its raw SQL for speed
and mirrors ``claimable``; tests/functional/webhooks/test_outbox_queries.py runs both
(and the in-memory store's ``is_claimable``) over the same rows.

Named for the table it reads, next to ``outbox.py`` which writes it: ``store.py`` holds
the dispatcher's statements, and "queries" alone would not say whose.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.webhooks.errors import WebhookError

if TYPE_CHECKING:
    from onepass.webhooks.models import WebhookOutboxEntry


class Status(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


# The one definition: per state, whether each column it looks at is set (True) or
# NULL (False); a column left out may be either.
STATES: Mapping[Status, Mapping[str, bool]] = {
    Status.PENDING: {"delivered_at": False, "dlq_at": False},
    Status.DELIVERED: {"delivered_at": True},
    Status.DEAD: {"dlq_at": True, "delivered_at": False},
}
STATUSES = tuple(s.value for s in Status)


def parse_status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise WebhookError(f"unknown status {value!r}; use one of {', '.join(STATUSES)}") from None


def _entries() -> type[WebhookOutboxEntry]:
    # Imported here, not at the top: models.py builds its partial indexes from ``sql``.
    from onepass.webhooks.models import WebhookOutboxEntry

    return WebhookOutboxEntry


def condition(status: Status | str, columns: Any = None) -> ColumnElement[bool]:
    """The SQL condition of a state over ``columns`` (the model by default; or a
    ``Table.c``, an alias, a subquery's ``.c``)."""
    columns = _entries() if columns is None else columns
    return and_(
        *(
            getattr(columns, name).is_not(None) if is_set else getattr(columns, name).is_(None)
            for name, is_set in STATES[parse_status(status)].items()
        )
    )


def sql(status: Status) -> str:
    """The condition as SQL text on the bare column names (``pending``:
    ``delivered_at IS NULL AND dlq_at IS NULL``): partial index predicates."""
    return " AND ".join(
        f"{name} IS NOT NULL" if is_set else f"{name} IS NULL"
        for name, is_set in STATES[status].items()
    )


def status_of(entry: Any) -> Status:
    """The state of a loaded entry (anything with ``delivered_at`` and ``dlq_at``)."""
    for status, rule in STATES.items():
        if all((getattr(entry, name) is not None) == is_set for name, is_set in rule.items()):
            return status
    raise AssertionError("STATES covers every combination of the two columns")


def claimable(now: datetime, columns: Any = None, *, due_by: datetime | None = None) -> Any:
    """What a claim may take at ``now``: pending, due (by ``due_by``, ``now`` unless
    given), and not leased (never, or the lease has ended).

    ``store.CLAIM_SQL`` spells the same condition in raw SQL; ``SqlStore`` uses this one.
    """
    c = _entries() if columns is None else columns
    return and_(
        condition(Status.PENDING, c),
        c.due_at <= (now if due_by is None else due_by),
        or_(c.lease_expires_at.is_(None), c.lease_expires_at <= now),
    )


def not_held(columns: Any = None) -> Any:
    """Not an entry of a disabled application (``clients disable``): those stay pending,
    unclaimed, until it is enabled. Every claim adds this to ``claimable`` (``CLAIM_SQL``
    spells it in raw SQL), and triage's backlog and stall checks leave them out: they
    wait by the operator's decision, not for a dispatcher."""
    c = _entries() if columns is None else columns
    apps = OAuthApplication.__table__.c
    # NOT IN a subquery, not NOT EXISTS: PostgreSQL reads the (few) disabled ids once and
    # filters row by row, so a claim keeps reading the due index in order (CLAIM_SQL).
    return c.oauth_application_id.not_in(select(apps.id).where(apps.disabled_at.is_not(None)))


def is_claimable(entry: Any, now: datetime) -> bool:
    """``claimable`` for a loaded entry (the in-memory store's claim)."""
    return (
        status_of(entry) is Status.PENDING
        and entry.due_at <= now
        and (entry.lease_expires_at is None or entry.lease_expires_at <= now)
    )


def tally(where: Any) -> Any:
    """How many rows meet ``where``: a column of a counts-by-state ``select``
    (``tally(condition(Status.DEAD))``)."""
    return func.sum(case((where, 1), else_=0))


# -- the backlog ----------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    count: int
    oldest_due_at: datetime | None

    def oldest_age(self, now: datetime) -> float:
        """Seconds the oldest has waited since it came due; 0 when none."""
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_due_at).total_seconds())


@dataclass(frozen=True)
class Backlog:
    pending: int  # not delivered, not dead
    due: int  # pending and due now (or overdue), leased or not
    oldest_due_at: datetime | None

    def oldest_due_age(self, now: datetime) -> float:
        return Due(self.due, self.oldest_due_at).oldest_age(now)


async def due_now(session: AsyncSession, now: datetime) -> Due:
    """Pending entries due by ``now`` (in flight included; held for a disabled
    application not) and the oldest one's due time, through the partial index on
    ``due_at``."""
    t = _entries()
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(t.due_at)).where(
                condition(Status.PENDING, t), t.due_at <= now, not_held(t)
            )
        )
    ).one()
    return Due(int(count or 0), oldest)


async def waiting_unclaimed(session: AsyncSession, now: datetime, longer_than: timedelta) -> Due:
    """Entries claimable now that came due more than ``longer_than`` ago: what no
    dispatcher has taken (triage's dispatcher check)."""
    t = _entries()
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(t.due_at)).where(
                claimable(now, t, due_by=now - longer_than), not_held(t)
            )
        )
    ).one()
    return Due(int(count or 0), oldest)


async def backlog(session: AsyncSession, now: datetime) -> Backlog:
    """Pending entries, and how many of them are due with the oldest due time."""
    t = _entries()
    pending = await session.scalar(
        select(func.count()).select_from(t).where(condition(Status.PENDING, t))
    )
    due = await due_now(session, now)
    return Backlog(int(pending or 0), due.count, due.oldest_due_at)


# -- the dead-letter queue per application --------------------------------------------


@dataclass(frozen=True)
class DeadCount:
    oauth_application_id: int
    client_id: str | None
    client_name: str | None
    dead_count: int


async def dead_counts(session: AsyncSession) -> list[tuple[int, int]]:
    """(oauth_application_id, dead_count), most dead first: the playbook's monitoring
    query, through the partial index ``ix_webhook_outbox_entries_dead``."""
    t = _entries()
    rows = await session.execute(
        select(t.oauth_application_id, func.count().label("dead_count"))
        .where(condition(Status.DEAD, t))
        .group_by(t.oauth_application_id)
        .order_by(func.count().desc(), t.oauth_application_id)
    )
    return [(app_id, count) for app_id, count in rows.all()]


async def application_names(
    session: AsyncSession, app_ids: Iterable[int]
) -> dict[int, tuple[str, str]]:
    """Each application's (client_id, name), for output an operator reads; an
    application that is gone is absent."""
    wanted = sorted(set(app_ids))
    if not wanted:
        return {}
    apps = OAuthApplication
    rows = await session.execute(
        select(apps.id, apps.client_id, apps.client_name).where(apps.id.in_(wanted))
    )
    return {app_id: (client_id, name) for app_id, client_id, name in rows.all()}


async def dead_by_application(session: AsyncSession) -> list[DeadCount]:
    """``dead_counts`` with each application's client_id and name (None if it is gone)."""
    counts = await dead_counts(session)
    if not counts:
        return []
    names = await application_names(session, (app_id for app_id, _ in counts))
    found: list[DeadCount] = []
    for app_id, n in counts:
        client_id, name = names[app_id] if app_id in names else (None, None)
        found.append(DeadCount(app_id, client_id, name, n))
    return found
