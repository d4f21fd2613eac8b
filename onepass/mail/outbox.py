"""Queueing mail in the transaction of the change that causes it, and reading the queue.

A mail is rendered when it is queued, from ``templates/mail/<kind>.txt`` (its subject
and text, blocks ``subject`` and ``text``) and ``templates/mail/<kind>.html`` (the
same words as HTML), in the language of the person it goes to. Its body is stored
encrypted (``SecretBox``, bound to the row) until it is sent.

States, from the row: pending (neither ``sent_at`` nor ``dead_at``), sent, dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass import pages
from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.mail.models import MailOutboxEntry


class MailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


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


def _context(entry_id: int) -> str:
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
        orjson.dumps({"text": mail.text, "html": mail.html}), _context(entry.id)
    )
    return entry


def body_of(box: SecretBox, entry: MailOutboxEntry) -> tuple[str, str] | None:
    """The text and HTML of a mail whose body is still kept."""
    if entry.body_encrypted is None:
        return None
    body = orjson.loads(box.decrypt(entry.body_encrypted, _context(entry.id)))
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


async def list_entries(
    session: AsyncSession, *, status: MailStatus | None = None, limit: int = 100
) -> list[MailOutboxEntry]:
    """The newest mails first, of one status or all."""
    query = select(MailOutboxEntry).order_by(MailOutboxEntry.id.desc()).limit(limit)
    if status is MailStatus.PENDING:
        query = query.where(MailOutboxEntry.sent_at.is_(None), MailOutboxEntry.dead_at.is_(None))
    elif status is MailStatus.SENT:
        query = query.where(MailOutboxEntry.sent_at.is_not(None))
    elif status is MailStatus.DEAD:
        query = query.where(MailOutboxEntry.dead_at.is_not(None))
    return list(await session.scalars(query))
