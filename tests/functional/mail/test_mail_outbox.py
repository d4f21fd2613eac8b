"""The mail outbox, delivered to a real SMTP server (aiosmtpd on 127.0.0.1): sent,
retried on 4xx and lost connections, dead on 5xx; kept for ``onepass mail list``
without SMTP in development, dead in production. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from onepass.clock import FrozenClock
from onepass.mail import outbox
from onepass.mail.delivery import NO_SMTP, MailDelivery
from onepass.mail.models import MailOutboxEntry
from onepass.runtime import Runtime
from onepass.settings import Environment, Settings
from tests.e2e.server import free_port
from tests.smtp import SmtpServer, html_of, link_in, text_of

LINK = "http://testserver/password/reset?token=abc123"


async def _queue(runtime: Runtime, clock: FrozenClock, language: str = "en") -> int:
    mail = outbox.compose(
        "password_reset", "ada@example.com", language, {"link": LINK, "minutes": 30, "name": "Ada"}
    )
    async with runtime.database.session() as session:
        entry = await outbox.enqueue(session, runtime.box, clock, mail, user_id=None)
        return entry.id


async def _row(runtime: Runtime, entry_id: int) -> MailOutboxEntry:
    async with runtime.database.session(readonly=True) as session:
        row = await session.scalar(select(MailOutboxEntry).where(MailOutboxEntry.id == entry_id))
        assert row is not None
        return row


def _delivery(runtime: Runtime, clock: FrozenClock, **settings: object) -> MailDelivery:
    changed: Settings = runtime.settings.model_copy(update=settings)
    return MailDelivery(changed, runtime.database, runtime.box, clock)


async def test_a_mail_reaches_the_smtp_server_as_text_and_html_and_its_link_is_not_kept(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    row = await _row(runtime, entry_id)
    assert row.body_encrypted is not None and LINK not in row.body_encrypted, "encrypted"

    assert await _delivery(runtime, clock, smtp_url=smtp.url).deliver_due() == 1

    [message] = smtp.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Reset your 1pass password"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert link_in(message) == LINK
    assert "Hello Ada," in text_of(message) and "30 minutes" in text_of(message)
    assert f'href="{LINK}"' in html_of(message)
    row = await _row(runtime, entry_id)
    assert row.sent_at is not None and row.sent_via == "smtp" and row.attempts == 1
    assert row.body_encrypted is None, "a sent mail's link is not kept"
    assert outbox.describe(runtime.box, row)["status"] == "sent"
    assert "text" not in outbox.describe(runtime.box, row)


async def test_korean_mail_is_written_in_korean(runtime: Runtime, smtp: SmtpServer) -> None:
    clock = FrozenClock()
    await _queue(runtime, clock, language="ko")
    await _delivery(runtime, clock, smtp_url=smtp.url).deliver_due()
    [message] = smtp.messages
    assert message["Subject"] == "1pass 비밀번호 재설정"
    assert message["Content-Language"] == "ko"
    assert "30분 안에" in text_of(message) and link_in(message) == LINK


async def test_a_4xx_reply_is_retried_on_the_schedule_and_then_sent(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    delivery = _delivery(runtime, clock, smtp_url=smtp.url, mail_retry_schedule="1m,5m")
    smtp.reply = "451 4.7.1 Greylisted, try again later"

    assert await delivery.deliver_due() == 1
    row = await _row(runtime, entry_id)
    assert row.sent_at is None and row.dead_at is None and row.attempts == 1
    assert row.last_status_code == 451 and "Greylisted" in (row.last_error or "")
    assert timedelta(seconds=47) <= row.due_at - clock.now() <= timedelta(seconds=73)
    assert await delivery.deliver_due() == 0, "not due before its retry"

    smtp.reply = "250 OK"
    clock.advance(timedelta(minutes=2))
    assert await delivery.deliver_due() == 1
    row = await _row(runtime, entry_id)
    assert row.sent_at is not None and row.attempts == 2 and len(smtp.messages) == 1


async def test_a_5xx_reply_is_dead_at_once_and_its_body_erased(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    smtp.reply = "550 5.1.1 No such mailbox"
    await _delivery(runtime, clock, smtp_url=smtp.url).deliver_due()
    row = await _row(runtime, entry_id)
    assert row.dead_at is not None and row.sent_at is None and row.attempts == 1
    assert row.last_status_code == 550 and "No such mailbox" in (row.last_error or "")
    assert row.body_encrypted is None
    async with runtime.database.session(readonly=True) as session:
        dead = await outbox.list_entries(session, status=outbox.MailStatus.DEAD)
    assert [e.id for e in dead] == [entry_id]


async def test_a_refused_connection_is_retried_until_the_schedule_is_spent(
    runtime: Runtime,
) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    nobody = f"smtp://127.0.0.1:{free_port()}?starttls=off"
    delivery = _delivery(runtime, clock, smtp_url=nobody, mail_retry_schedule="1m,1m")
    for attempt in (1, 2):
        assert await delivery.deliver_due() == 1
        row = await _row(runtime, entry_id)
        assert row.attempts == attempt and row.dead_at is None and row.last_status_code is None
        assert "Connect" in (row.last_error or "") or "refused" in (row.last_error or "").lower()
        clock.advance(timedelta(minutes=2))
    assert await delivery.deliver_due() == 1
    row = await _row(runtime, entry_id)
    assert row.dead_at is not None and row.attempts == 3


async def test_required_starttls_is_not_skipped_when_the_server_does_not_offer_it(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    plain_required = smtp.url.replace("?starttls=off", "")  # STARTTLS required
    await _delivery(runtime, clock, smtp_url=plain_required).deliver_due()
    row = await _row(runtime, entry_id)
    assert smtp.messages == [], "never sent in clear when STARTTLS is required"
    assert row.sent_at is None and "STARTTLS" in (row.last_error or "").upper()


async def test_without_smtp_in_development_the_mail_goes_to_the_log_and_mail_list(
    runtime: Runtime,
) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    await _delivery(runtime, clock, smtp_url=None).deliver_due()
    row = await _row(runtime, entry_id)
    described = outbox.describe(runtime.box, row)
    assert described["status"] == "sent" and described["sent_via"] == "log"
    assert LINK in described["text"], "the developer follows the link from `mail list`"


async def test_without_smtp_in_production_the_mail_is_dead_for_triage(runtime: Runtime) -> None:
    clock = FrozenClock()
    entry_id = await _queue(runtime, clock)
    await _delivery(runtime, clock, smtp_url=None, env=Environment.PRODUCTION).deliver_due()
    row = await _row(runtime, entry_id)
    assert row.dead_at is not None and row.last_error == NO_SMTP
    assert "text" not in outbox.describe(runtime.box, row)


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp://", "smtp://h:99999", "smtp://h?x=1"]
)
def test_a_wrong_smtp_url_is_refused_at_start_saying_why(url: str) -> None:
    from onepass.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="ONEPASS_SMTP_URL") as refused:
        load_settings(smtp_url=url.replace("h:", "user:hunter2@h:"))
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_a_poll_with_no_mail_due_takes_no_sqlite_write_lock(runtime: Runtime) -> None:
    """The dispatcher polls every few seconds: with nothing due it must not queue the
    process's sign-ins and grants behind SQLite's one write lock. Here another
    connection holds that lock; the empty poll still answers (it would wait for the
    lock, then fail, if it opened a write transaction)."""
    import asyncio
    import sqlite3

    from sqlalchemy.engine import make_url

    holder = sqlite3.connect(make_url(runtime.database.url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        async with asyncio.timeout(5):
            assert await _delivery(runtime, FrozenClock()).deliver_due() == 0
    finally:
        holder.rollback()
        holder.close()
    clock = FrozenClock()
    await _queue(runtime, clock)
    assert await _delivery(runtime, clock, smtp_url=None).deliver_due() == 1, "due mail still goes"


async def test_counts_and_pages_read_each_state_as_status_of_does(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    clock = FrozenClock()
    old_dead = await _queue(runtime, clock)
    await _delivery(runtime, clock, smtp_url=None, env=Environment.PRODUCTION).deliver_due()
    clock.advance(timedelta(days=2))
    dead = await _queue(runtime, clock)
    smtp.reply = "550 5.1.1 No such mailbox"
    await _delivery(runtime, clock, smtp_url=smtp.url).deliver_due()
    retrying = await _queue(runtime, clock)
    smtp.reply = "451 4.7.1 Greylisted, try again later"
    await _delivery(runtime, clock, smtp_url=smtp.url).deliver_due()
    waiting = await _queue(runtime, clock)

    async with runtime.database.session(readonly=True) as session:
        counts = await outbox.counts(session, clock.now())
        page, next_before = await outbox.page_of_entries(
            session, status=outbox.MailStatus.DEAD, before_id=None, limit=1
        )
        rest, last = await outbox.page_of_entries(
            session, status=outbox.MailStatus.DEAD, before_id=next_before, limit=1
        )
        pending, _ = await outbox.page_of_entries(
            session, status=outbox.MailStatus.PENDING, before_id=None, limit=10
        )
    assert counts == outbox.MailCounts(pending=2, retrying=1, dead=2, dead_recently=1)
    assert [e.id for e in page] == [dead] and next_before == dead
    assert [e.id for e in rest] == [old_dead] and last is None
    assert [e.id for e in pending] == [waiting, retrying]
    assert {outbox.status_of(e) for e in pending} == {outbox.MailStatus.PENDING}
