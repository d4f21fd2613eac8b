"""Queueing mail in the transaction of the change that causes it, and reading the queue.

A mail is rendered when it is queued, from ``templates/mail/<kind>.txt`` (its subject
and text, blocks ``subject`` and ``text``) and ``templates/mail/<kind>.html`` (the
same words as HTML), in the language of the person it goes to. Its body is stored
encrypted (``SecretBox``, bound to the row) until it is sent.

States, from the row: pending (neither ``sent_at`` nor ``dead_at``), sent, dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass import pages
from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.mail.models import MailOutboxEntry


class MailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


STATUSES = tuple(s.value for s in MailStatus)


@dataclass(frozen=True)
class Mail:
    kind: str
    to: str
    language: str
    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)


def _block(template: Any, name: str, context: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(context))).strip()


def compose(kind: str, to: str, language: str, context: dict[str, Any]) -> Mail:
    """The mail ``kind`` to ``to``, written in ``language`` with ``context``."""
    env = pages.environment(language)
    text = env.get_template(f"mail/{kind}.txt")
    values = {**context, "lang": language, "email": to}
    return Mail(
        kind=kind,
        to=to,
        language=language,
        subject=" ".join(_block(text, "subject", values).split()),
        text=_block(text, "text", values) + "\n",
        html=env.get_template(f"mail/{kind}.html").render(**values),
    )


def box_context(entry_id: int) -> str:
    return f"mail_outbox_entries:{entry_id}"


async def enqueue(
    session: AsyncSession, box: SecretBox, clock: Clock, mail: Mail, *, user_id: int | None
) -> MailOutboxEntry:
    """Queue ``mail`` in ``session``'s transaction: it is sent once that commits, and
    never if it rolls back."""
    now = clock.now()
    entry = MailOutboxEntry(
        kind=mail.kind,
        user_id=user_id,
        to_address=mail.to,
        language=mail.language,
        subject=mail.subject,
        created_at=now,
        due_at=now,
        attempts=0,
    )
    session.add(entry)
    await session.flush()
    entry.body_encrypted = box.encrypt(
        orjson.dumps({"text": mail.text, "html": mail.html}), box_context(entry.id)
    )
    return entry


def body_of(box: SecretBox, entry: MailOutboxEntry) -> tuple[str, str] | None:
    """The text and HTML of a mail whose body is still kept."""
    if entry.body_encrypted is None:
        return None
    body = orjson.loads(box.decrypt(entry.body_encrypted, box_context(entry.id)))
    return body["text"], body["html"]


def status_of(entry: MailOutboxEntry) -> MailStatus:
    if entry.sent_at is not None:
        return MailStatus.SENT
    if entry.dead_at is not None:
        return MailStatus.DEAD
    return MailStatus.PENDING


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def describe(box: SecretBox, entry: MailOutboxEntry) -> dict[str, Any]:
    """A row for ``onepass mail list``. The text is shown only of a mail written to
    the log (no SMTP server, in development): the developer follows its link. Of a
    mail still to be sent it is not: an operator reading the queue does not get the
    links in other people's mail."""
    described: dict[str, Any] = {
        "id": entry.id,
        "kind": entry.kind,
        "user_id": entry.user_id,
        "to_address": entry.to_address,
        "language": entry.language,
        "subject": entry.subject,
        "status": status_of(entry).value,
        "attempts": entry.attempts,
        "created_at": _iso(entry.created_at),
        "due_at": _iso(entry.due_at),
        "sent_at": _iso(entry.sent_at),
        "sent_via": entry.sent_via,
        "dead_at": _iso(entry.dead_at),
        "last_status_code": entry.last_status_code,
        "last_error": entry.last_error,
    }
    if entry.sent_via == "log":
        body = body_of(box, entry)
        described["text"] = body[0] if body is not None else None
    return described


def condition(status: MailStatus) -> ColumnElement[bool]:
    """The SQL condition of a state, as ``status_of`` reads it from a loaded row."""
    t = MailOutboxEntry
    if status is MailStatus.SENT:
        return t.sent_at.is_not(None)
    if status is MailStatus.DEAD:
        return and_(t.sent_at.is_(None), t.dead_at.is_not(None))
    return and_(t.sent_at.is_(None), t.dead_at.is_(None))


async def list_entries(
    session: AsyncSession,
    *,
    status: MailStatus | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[MailOutboxEntry]:
    """The newest mails first, of one status or all; with ``before_id``, only older
    ones than that (the next page)."""
    query = select(MailOutboxEntry).order_by(MailOutboxEntry.id.desc()).limit(limit)
    if status is not None:
        query = query.where(condition(status))
    if before_id is not None:
        query = query.where(MailOutboxEntry.id < before_id)
    return list(await session.scalars(query))


async def page_of_entries(
    session: AsyncSession, *, status: MailStatus, before_id: int | None, limit: int
) -> tuple[list[MailOutboxEntry], int | None]:
    """One page of mails of ``status``, newest first, and the ``before_id`` of the next
    page (None on the last one)."""
    rows = await list_entries(session, status=status, limit=limit + 1, before_id=before_id)
    next_before = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_before


# The window of triage's ``mail`` check: mail dead this recently is an incident (sev3).
RECENT = timedelta(hours=24)


@dataclass(frozen=True)
class MailCounts:
    pending: int
    retrying: int  # pending after at least one failed attempt
    dead: int
    dead_recently: int  # dead within ``RECENT``


def _tally(where: ColumnElement[bool]) -> Any:
    # SUM(CASE …) rather than COUNT(*) FILTER, which SQLite has only since 3.30.
    return func.coalesce(func.sum(case((where, 1), else_=0)), 0)


async def counts(session: AsyncSession, now: datetime) -> MailCounts:
    """How much mail waits, is being retried, and is dead (in all, and within
    ``RECENT`` of ``now``)."""
    t = MailOutboxEntry
    # Two statements, each with its state's condition: pending mail has a partial
    # index (models.PENDING); dead mail has none (as triage's count).
    waiting = (
        await session.execute(
            select(func.count(), _tally(t.attempts > 0)).where(condition(MailStatus.PENDING))
        )
    ).one()
    gone = (
        await session.execute(
            select(func.count(), _tally(t.dead_at >= now - RECENT)).where(
                condition(MailStatus.DEAD)
            )
        )
    ).one()
    return MailCounts(
        pending=int(waiting[0]),
        retrying=int(waiting[1]),
        dead=int(gone[0]),
        dead_recently=int(gone[1]),
    )
