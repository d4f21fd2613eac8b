"""The mail dispatcher: claims due mail, hands it to the SMTP server, records what
happened (``transport``'s rules), and tries again on the schedule.

It runs wherever the webhook dispatcher runs (``onepass serve``'s embedded dispatcher
on SQLite, ``onepass webhooks dispatch`` processes): mail is a handful of messages a
minute where webhooks are thousands a second, so it needs no process of its own.
Claims take a lease (``lease_expires_at``); on PostgreSQL they skip rows another
dispatcher holds (``FOR UPDATE SKIP LOCKED``), so any number may run; on SQLite one
dispatcher runs per database file (``webhooks.embedded``'s lock).

Without ``ONEPASS_SMTP_URL`` a mail is written to the log instead (development: the
developer follows its link there or in ``onepass mail list``), or, in production,
is dead at once, "no SMTP server", so that triage shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import structlog
from sqlalchemy import or_, select, update

from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.db import Database
from onepass.db.errors import is_unavailable
from onepass.durations import parse_schedule
from onepass.mail import transport
from onepass.mail.models import MailOutboxEntry
from onepass.mail.outbox import Mail, body_of
from onepass.runtime import Runtime
from onepass.settings import Settings

log = structlog.get_logger("onepass.mail")

NO_SMTP = "no SMTP server is configured (ONEPASS_SMTP_URL)"
JITTER = 0.2


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    mail: Mail | None  # None: its body does not decrypt


class MailDelivery:
    def __init__(
        self, settings: Settings, database: Database, box: SecretBox, clock: Clock
    ) -> None:
        self.settings = settings
        self.database = database
        self.box = box
        self.clock = clock
        self.server = settings.smtp_server
        self.schedule = parse_schedule(settings.mail_retry_schedule)
        self.lease = timedelta(seconds=2 * settings.smtp_timeout + 30)
        self.local_hostname = urlsplit(settings.issuer).hostname or "localhost"

    @classmethod
    def of(cls, runtime: Runtime) -> MailDelivery:
        return cls(runtime.settings, runtime.database, runtime.box, runtime.clock)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; a database away or a bug of one round is logged and
        the next round runs after the poll interval."""
        while not stop.is_set():
            delivered = 0
            try:
                delivered = await self.deliver_due()
            except Exception as exc:
                if is_unavailable(exc):
                    log.warning("mail.database_unavailable", error=type(exc).__name__)
                else:
                    log.exception("mail.round_failed")
            if delivered == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.mail_poll_interval)

    async def deliver_due(self, limit: int = 20) -> int:
        """One round: claim up to ``limit`` due mails and try each once; how many."""
        claimed = await self._claim(limit)
        for item in claimed:
            await self._record(item, await self._attempt(item))
        return len(claimed)

    async def deliver_all_due(self) -> int:
        """Rounds until nothing is due (``webhooks dispatch --once``); how many tried."""
        total = 0
        while attempted := await self.deliver_due():
            total += attempted
        return total

    async def _claim(self, limit: int) -> list[Claimed]:
        now = self.clock.now()
        due = (
            MailOutboxEntry.sent_at.is_(None),
            MailOutboxEntry.dead_at.is_(None),
            MailOutboxEntry.due_at <= now,
            or_(
                MailOutboxEntry.lease_expires_at.is_(None),
                MailOutboxEntry.lease_expires_at <= now,
            ),
        )
        # Read first: on SQLite a write transaction takes the database's one write lock,
        # which sign-ins and grants wait for; most polls find nothing due.
        async with self.database.session(readonly=True) as session:
            if await session.scalar(select(MailOutboxEntry.id).where(*due).limit(1)) is None:
                return []
        async with self.database.session() as session:
            rows = list(
                await session.scalars(
                    select(MailOutboxEntry)
                    .where(*due)
                    .order_by(MailOutboxEntry.due_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            claimed = []
            for row in rows:
                row.lease_expires_at = now + self.lease
                row.attempts += 1
                claimed.append(Claimed(row.id, row.attempts, self._mail_of(row)))
        return claimed

    def _mail_of(self, row: MailOutboxEntry) -> Mail | None:
        try:
            body = body_of(self.box, row)
        except Exception:  # DecryptionError: another ONEPASS_SECRET_KEY
            return None
        if body is None:
            return None
        return Mail(row.kind, row.to_address, row.language, row.subject, body[0], body[1])

    async def _attempt(self, item: Claimed) -> transport.Outcome:
        mail = item.mail
        if mail is None:
            return transport.Outcome(
                sent=False, retryable=False, error="its body does not decrypt (ONEPASS_SECRET_KEY)"
            )
        if self.server is None:
            if self.settings.is_production:
                return transport.Outcome(sent=False, retryable=False, error=NO_SMTP)
            # Development without SMTP: the mail, link included, goes to the log.
            log.info(
                "mail.written_to_log",
                mail_id=item.id,
                to=mail.to,
                subject=mail.subject,
                text=mail.text,
            )
            return transport.SENT
        return await transport.send(
            self.server,
            self.settings.mail_from,
            mail,
            seconds=self.settings.smtp_timeout,
            local_hostname=self.local_hostname,
        )

    async def _record(self, item: Claimed, outcome: transport.Outcome) -> None:
        now = self.clock.now()
        values: dict[str, object] = {
            "lease_expires_at": None,
            "last_status_code": outcome.code,
            "last_error": outcome.error,
        }
        if outcome.sent:
            via = "smtp" if self.server is not None else "log"
            values.update(sent_at=now, sent_via=via)
            if via == "smtp":
                values["body_encrypted"] = None  # sent: the link is not kept
            log.info("mail.sent", mail_id=item.id, via=via, attempts=item.attempts)
        elif outcome.retryable and item.attempts <= len(self.schedule):
            delay = self.schedule[item.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
            values["due_at"] = now + timedelta(seconds=delay)
            log.warning(
                "mail.retry",
                mail_id=item.id,
                attempts=item.attempts,
                error=outcome.error,
                retry_in=round(delay, 1),
            )
        else:
            values.update(dead_at=now, body_encrypted=None)
            log.error("mail.dead", mail_id=item.id, attempts=item.attempts, error=outcome.error)
        async with self.database.session() as session:
            await session.execute(
                update(MailOutboxEntry).where(MailOutboxEntry.id == item.id).values(**values)
            )


@contextlib.asynccontextmanager
async def delivering(runtime: Runtime, stop: asyncio.Event) -> AsyncIterator[MailDelivery]:
    """Mail delivered in the background for as long as the block runs (beside a
    webhook dispatcher). On the way out after ``stop``, a mail being handed over gets
    its SMTP timeout to finish; otherwise (an error) the delivery is cancelled, and a
    mail it held is tried again once its lease ends."""
    delivery = MailDelivery.of(runtime)
    task = asyncio.create_task(delivery.run(stop), name="onepass-mail-delivery")
    try:
        yield delivery
    finally:
        if stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), runtime.settings.smtp_timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
