"""The audit log: every admin action, through the API, the console or the CLI.

Only the playbook (``onepass.playbook``) writes it. An action that succeeds is
recorded in its own transaction, so the change and its record commit together. An action refused or failed is recorded in a transaction of
its own, since nothing else was written.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clock import Clock
from onepass.db import Database
from onepass.operators.models import AuditLogEntry

log = structlog.get_logger("onepass.admin.audit")

OK = "ok"
DENIED = "denied"
FAILED = "failed"
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class Actor:
    """Who acts, and through which door."""

    name: str  # "admin:<email>" or "cli:<os user>"
    via: str  # api, console, cli
    user_id: int | None = None
    ip_address: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            who = "unknown"
        return cls(f"cli:{who}", "cli")


def add(
    session: AsyncSession,
    clock: Clock,
    actor: Actor,
    action: str,
    target: str | None,
    outcome: str = OK,
    *,
    detail: dict[str, Any] | None = None,
    message: str | None = None,
) -> AuditLogEntry:
    entry = AuditLogEntry(
        at=clock.now(),
        actor=actor.name[:400],
        actor_user_id=actor.user_id,
        via=actor.via,
        action=action,
        target=target[:300] if target is not None else None,
        outcome=outcome,
        detail=detail or {},
        ip_address=actor.ip_address,
        message=message[:MAX_MESSAGE] if message else None,
    )
    session.add(entry)
    return entry


async def record(
    database: Database,
    clock: Clock,
    actor: Actor,
    action: str,
    target: str | None,
    outcome: str,
    *,
    detail: dict[str, Any] | None = None,
    message: str | None = None,
) -> None:
    """Record in a transaction of its own (refusals and failures)."""
    async with database.session() as session:
        add(session, clock, actor, action, target, outcome, detail=detail, message=message)


async def record_refusal(
    database: Database,
    clock: Clock,
    actor: Actor,
    action: str,
    target: str | None,
    *,
    outcome: str,
    message: str,
) -> None:
    """A refusal of the admin API or console: ``DENIED`` (401, 403, 429) or ``FAILED``.
    The database being away is logged rather than raised: the caller reports the refusal."""
    try:
        await record(database, clock, actor, action, target, outcome, message=message)
    except (SQLAlchemyError, OSError) as exc:
        log.error("admin.audit_failed", error=type(exc).__name__, action=action)


async def entries(
    session: AsyncSession,
    *,
    limit: int = 100,
    before_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
) -> list[AuditLogEntry]:
    """Newest first."""
    query = select(AuditLogEntry).order_by(AuditLogEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditLogEntry.id < before_id)
    if action is not None:
        query = query.where(AuditLogEntry.action == action)
    if actor is not None:
        query = query.where(AuditLogEntry.actor == actor)
    return list(await session.scalars(query))


COLUMNS = (
    "id",
    "at",
    "actor",
    "via",
    "action",
    "target",
    "outcome",
    "message",
    "detail",
    "ip_address",
)


def describe(entry: AuditLogEntry) -> dict[str, Any]:
    return {column: getattr(entry, column) for column in COLUMNS}
