"""The console's view of the mail outbox: its counts on the overview and the Mail page
(dead by default, pending, sent; newest first; paged), what an operator reads there
and never (a body, its link), bad parameters answered with a page, the page refused
to anyone but a signed-in administrator. English and Korean. Mail delivered to a real
SMTP server (aiosmtpd) or, without one, as development and production do. SQLite and
PostgreSQL, frozen clock."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from onepass.clock import FrozenClock
from onepass.mail import outbox
from onepass.mail.delivery import NO_SMTP, MailDelivery
from onepass.mail.models import MailOutboxEntry
from onepass.runtime import Runtime
from onepass.settings import Environment, Settings
from tests.factories import AdminInfo, make_user
from tests.flow import hidden_fields
from tests.functional.admin.test_console import sign_in, signed_in
from tests.smtp import SmtpServer

TOKEN = "tok3n-never-on-the-console"
LINK = f"http://testserver/password/reset?token={TOKEN}"
KOREAN = {"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"}


@pytest.fixture
def web(api: httpx.AsyncClient) -> httpx.AsyncClient:
    return api


async def queue(
    rt: Runtime,
    clock: FrozenClock,
    to: str = "ada@example.com",
    *,
    language: str = "en",
    user_id: int | None = None,
) -> int:
    """A password-reset mail in the outbox, its link in its (encrypted) body."""
    mail = outbox.compose(
        "password_reset", to, language, {"link": LINK, "minutes": 30, "name": "Ada"}
    )
    async with rt.database.session() as session:
        entry = await outbox.enqueue(session, rt.box, clock, mail, user_id=user_id)
        return entry.id


def delivery(rt: Runtime, clock: FrozenClock, **settings: object) -> MailDelivery:
    changed: Settings = rt.settings.model_copy(update=settings)
    return MailDelivery(changed, rt.database, rt.box, clock)


async def row(rt: Runtime, entry_id: int) -> MailOutboxEntry:
    async with rt.database.session(readonly=True) as session:
        found = await session.scalar(select(MailOutboxEntry).where(MailOutboxEntry.id == entry_id))
        assert found is not None
        return found


def listed_ids(page: httpx.Response) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="num">(\d+)</td>\s*<td><code>', page.text)]


def fact(page: httpx.Response, term: str) -> tuple[str, str]:
    """The class and the figure the overview shows for ``term``."""
    found = re.search(rf"<dt>{re.escape(term)}</dt><dd class=\"([^\"]*)\">(\d+)</dd>", page.text)
    assert found, page.text
    return found.group(1), found.group(2)


async def test_mail_page_lists_dead_mail_newest_first_with_recipient_and_error(
    web: httpx.AsyncClient,
    rt: Runtime,
    admin: AdminInfo,
    clock: FrozenClock,
    smtp: SmtpServer,
) -> None:
    ada = await make_user(rt, email="ada@example.com")
    first = await queue(rt, clock, "ada@example.com", user_id=ada.id)
    second = await queue(rt, clock, "grace@example.com", language="ko")
    smtp.reply = "550 5.1.1 No such mailbox"
    assert await delivery(rt, clock, smtp_url=smtp.url).deliver_due() == 2
    assert (await row(rt, first)).dead_at is not None
    clock.advance(90)
    await signed_in(web, admin, clock)

    page = await web.get("/admin/mail")
    assert page.status_code == 200
    assert '<a href="/admin/mail" aria-current="page">Mail</a>' in page.text
    assert "<h1>Dead mail</h1>" in page.text
    assert listed_ids(page) == [second, first], "newest first"
    assert "grace@example.com" in page.text
    assert f'<a href="/admin/users/{ada.id}">ada@example.com</a>' in page.text
    assert "SMTP 550: 5.1.1 No such mailbox" in page.text, "the last error as stored"
    assert "<code>password_reset</code>" in page.text and "<td>ko</td>" in page.text
    assert "2026-03-01 12:00:00 UTC (1 min ago)" in page.text, "created and dead"
    assert "would have expired" in page.text, "why there is no retry"
    assert "retry" not in page.text.lower() and 'method="post" action="/admin/mail' not in page.text
    assert TOKEN not in page.text and "Reset your 1pass password" not in page.text


async def test_overview_counts_pending_retrying_and_dead_mail_and_links_the_mail_page(
    web: httpx.AsyncClient,
    rt: Runtime,
    admin: AdminInfo,
    clock: FrozenClock,
    smtp: SmtpServer,
) -> None:
    await signed_in(web, admin, clock)
    calm = await web.get("/admin")
    assert fact(calm, "Dead") == ("num", "0") and fact(calm, "Pending (not sent, not dead)") == (
        "num",
        "0",
    )

    old_dead = await queue(rt, clock, "old@example.com")
    await delivery(rt, clock, smtp_url=None, env=Environment.PRODUCTION).deliver_due()
    assert (await row(rt, old_dead)).last_error == NO_SMTP
    clock.advance(timedelta(days=2))
    await queue(rt, clock, "dead@example.com")
    smtp.reply = "554 5.7.1 Relay access denied"
    await delivery(rt, clock, smtp_url=smtp.url).deliver_due()
    await queue(rt, clock, "greylisted@example.com")
    smtp.reply = "451 4.7.1 Greylisted, try again later"
    await delivery(rt, clock, smtp_url=smtp.url).deliver_due()
    await queue(rt, clock, "waiting@example.com")  # not tried yet

    web.cookies.clear()  # the console session of two days ago has ended
    await signed_in(web, admin, clock)
    page = await web.get("/admin")
    assert page.status_code == 200
    assert fact(page, "Pending (not sent, not dead)") == ("num", "2")
    assert fact(page, "Being retried after a failed attempt") == ("num status-pending", "1")
    assert fact(page, "Dead") == ("num status-dead", "2")
    assert fact(page, "Dead in the last 24 hours") == ("num status-dead", "1")
    assert '<a href="/admin/mail">Dead mail</a>' in page.text
    assert '<a href="/admin/mail?status=pending">Pending mail</a>' in page.text


async def test_mail_page_pending_shows_the_reply_and_the_next_attempt(
    web: httpx.AsyncClient,
    rt: Runtime,
    admin: AdminInfo,
    clock: FrozenClock,
    smtp: SmtpServer,
) -> None:
    entry_id = await queue(rt, clock, "grace@example.com")
    smtp.reply = "451 4.7.1 Greylisted, try again later"
    await delivery(rt, clock, smtp_url=smtp.url, mail_retry_schedule="10m").deliver_due()
    await signed_in(web, admin, clock)

    page = await web.get("/admin/mail?status=pending")
    assert page.status_code == 200 and "<h1>Pending mail</h1>" in page.text
    assert listed_ids(page) == [entry_id]
    assert "grace@example.com" in page.text and "Greylisted" in page.text
    assert '<td class="num">451</td>' in page.text and '<td class="num">1</td>' in page.text
    assert "Next attempt" in page.text
    assert re.search(r"UTC \(in (?:[89]|1[012]) min\)", page.text), "in 10 min ± 20 %"
    assert TOKEN not in page.text, "a waiting mail's link is not shown"
    assert listed_ids(await web.get("/admin/mail")) == [], "not dead"


async def test_mail_page_never_shows_the_body_of_a_sent_mail(
    web: httpx.AsyncClient,
    rt: Runtime,
    admin: AdminInfo,
    clock: FrozenClock,
    smtp: SmtpServer,
) -> None:
    logged = await queue(rt, clock, "ada@example.com")
    # Development without SMTP: written to the log, its body kept for `onepass mail list`.
    await delivery(rt, clock, smtp_url=None).deliver_due()
    assert (await row(rt, logged)).body_encrypted is not None
    sent = await queue(rt, clock, "grace@example.com")
    await delivery(rt, clock, smtp_url=smtp.url).deliver_due()
    assert len(smtp.messages) == 1
    await signed_in(web, admin, clock)

    page = await web.get("/admin/mail?status=sent")
    assert page.status_code == 200 and "<h1>Sent mail</h1>" in page.text
    assert listed_ids(page) == [sent, logged]
    assert "ada@example.com" in page.text and "grace@example.com" in page.text
    assert "written to the log" in page.text
    assert TOKEN not in page.text and "password/reset" not in page.text
    assert "Hello Ada" not in page.text and "30 minutes" not in page.text


async def test_mail_page_pages_fifty_at_a_time(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    ids = [await queue(rt, clock, f"person{n}@example.com") for n in range(53)]
    dead = await delivery(rt, clock, smtp_url=None, env=Environment.PRODUCTION).deliver_all_due()
    assert dead == 53
    await signed_in(web, admin, clock)

    first = await web.get("/admin/mail?status=dead")
    assert listed_ids(first) == ids[::-1][:50]
    assert "First page" not in first.text
    more = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert more, first.text
    second = await web.get(html.unescape(more.group(1)))
    assert second.status_code == 200
    assert listed_ids(second) == ids[::-1][50:]
    assert 'rel="next"' not in second.text
    assert '<a href="/admin/mail?status=dead">First page</a>' in second.text


@pytest.mark.parametrize(
    ("query", "expected", "says"),
    [
        ({"status": "bogus", "cursor": "-1"}, 400, "Unknown state &#39;bogus&#39;"),
        ({"status": "a\x00b"}, 400, "control characters"),  # refused at the edge
        ({"status": "x" * 500}, 400, "choose dead, pending or sent"),
        ({"cursor": "-1"}, 400, "not a number"),
        ({"cursor": "abc"}, 400, "not a number"),
        ({"cursor": "²"}, 400, "not a number"),
        ({"cursor": "9" * 30}, 400, "not a number"),
        ({"status": "pending", "cursor": "0"}, 200, "No mail is waiting to be sent."),
        # Parameters the page does not have are ignored: the dead mail, first page.
        ({"state": "bogus", "page": "-1"}, 200, "<h1>Dead mail</h1>"),
    ],
)
async def test_mail_page_bad_parameters_get_a_page_never_a_500(
    web: httpx.AsyncClient,
    admin: AdminInfo,
    clock: FrozenClock,
    query: dict[str, str],
    expected: int,
    says: str,
) -> None:
    await signed_in(web, admin, clock)
    page = await web.get("/admin/mail", params=query)
    assert page.status_code == expected, page.text[:500]
    assert says in page.text
    assert "Traceback" not in page.text
    if expected == 400:
        assert "<table>" not in page.text
        if "\x00" not in query.get("status", ""):
            assert 'role="alert"' in page.text, "the console's page, saying why"


async def test_mail_page_speaks_korean_to_a_korean_browser(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    await queue(rt, clock, "grace@example.com")
    await delivery(rt, clock, smtp_url=None, env=Environment.PRODUCTION).deliver_due()
    await signed_in(web, admin, clock)
    page = await web.get("/admin/mail", headers=KOREAN)
    assert page.status_code == 200 and page.headers["content-language"] == "ko"
    assert '<html lang="ko">' in page.text
    assert "<h1>실패한 메일</h1>" in page.text and "받는 사람" in page.text
    assert "grace@example.com" in page.text and NO_SMTP in page.text, "the error as stored"
    bogus = await web.get("/admin/mail?status=bogus", headers=KOREAN)
    assert bogus.status_code == 400 and "알 수 없는 상태" in bogus.text


async def test_mail_page_is_refused_to_the_signed_out_and_to_people_who_are_not_administrators(
    web: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    for path in ("/admin/mail", "/admin/mail?status=pending"):
        response = await web.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/admin/login?" + urlencode({"next": path})

    ada = await make_user(rt, email="ada@example.com")
    account = await web.get("/account")
    signed = await web.post(
        "/account/login",
        data={**hidden_fields(account.text), "email": ada.email, "password": ada.password},
    )
    assert signed.status_code == 303, signed.text[:300]
    user_cookie = web.cookies.get("onepass_session")
    assert user_cookie
    assert (await web.get("/admin/mail")).status_code == 303, "no console session"
    as_console = {"cookie": f"onepass_admin={user_cookie}"}
    assert (await web.get("/admin/mail", headers=as_console)).status_code == 303
    refused = await sign_in(web, ada.email, ada.password, "123456", next_url="/admin/mail")
    assert refused.status_code == 401 and "Incorrect email, password or code." in refused.text
