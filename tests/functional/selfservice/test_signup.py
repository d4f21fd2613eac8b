"""Creating an account: closed by default; open sign-up that proves the address before
the account exists and never tells whether an address has one; operators'
invitations. Over HTTP with a real SMTP server, on SQLite and on PostgreSQL with Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from onepass.accounts.models import User
from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.mail.delivery import MailDelivery
from onepass.operators.audit import Actor
from onepass.playbook import users
from onepass.refusals import Refusal
from onepass.runtime import Runtime
from tests.conftest import ISSUER, make_settings
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, hidden_fields, log_in_and_consent
from tests.functional.oauth.test_code_flow import rp_client
from tests.smtp import SmtpServer, link_in, text_of

PASSWORD = "lantern quietly orbits marble"

Site = tuple[OnePass, httpx.AsyncClient]


@pytest.fixture
def site(runtime: Runtime, smtp: SmtpServer) -> Callable[..., AbstractAsyncContextManager[Site]]:
    @asynccontextmanager
    async def start(clock: FrozenClock | None = None, **settings: object) -> AsyncIterator[Site]:
        app = create_app(
            make_settings(
                runtime.settings.database_url,
                runtime.settings.redis_url,
                smtp_url=smtp.url,
                **settings,
            ),
            clock=clock,
        )
        async with (
            app.api.router.lifespan_context(app.api),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
        ):
            yield app, http

    return start


async def deliver(runtime: Runtime, smtp: SmtpServer) -> None:
    settings = runtime.settings.model_copy(update={"smtp_url": smtp.url})
    await MailDelivery(settings, runtime.database, runtime.box, runtime.clock).deliver_all_due()


async def sign_up(http: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await http.get("/signup")
    assert page.status_code == 200, page.text[:300]
    values = {"email": "grace@example.com", "name": "Grace Hopper", "password": PASSWORD}
    values.update(fields)
    values.setdefault("password_again", values["password"])
    return await http.post("/signup", data={**hidden_fields(page.text), **values})


async def user_count(runtime: Runtime) -> int:
    async with runtime.database.session(readonly=True) as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_sign_up_is_closed_by_default(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client = await make_rp(runtime)
    login = await http.get(authorize_url(client))
    assert 'href="/signup"' not in login.text
    page = await http.get("/signup")
    assert page.status_code == 403 and "created by the operators" in page.text
    posted = await http.post("/signup", data={"email": "grace@example.com"})
    assert posted.status_code == 403
    assert await user_count(runtime) == 0


async def test_open_sign_up_creates_the_account_once_the_address_is_confirmed(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    client = await make_rp(runtime)
    async with site(signup="open") as (app, http):
        login = await http.get(authorize_url(client))
        assert 'href="/signup"' in login.text
        sent = await sign_up(http)
        assert sent.status_code == 200 and "Check your mail" in sent.text
        assert await user_count(runtime) == 0, "no account before the address is proved"

        await deliver(runtime, smtp)
        [mail] = smtp.messages
        assert mail["To"] == "grace@example.com"
        link = link_in(mail)
        assert link.startswith(f"{ISSUER}/signup/confirm?token=")
        assert PASSWORD not in mail.as_string()

        page = await http.get(link.removeprefix(ISSUER))
        assert page.status_code == 200 and "grace@example.com" in page.text
        assert await user_count(runtime) == 0, "opening the link (a mail scanner) creates nothing"
        done = await http.post("/signup/confirm", data=hidden_fields(page.text))
        assert done.status_code == 200 and "Your account is ready" in done.text
        again = await http.post("/signup/confirm", data=hidden_fields(page.text))
        assert again.status_code == 400 and "already confirmed" in again.text
        assert await user_count(runtime) == 1

        # The person signs in to an RP; the address is verified in what it receives.
        verifier = secrets.token_urlsafe(48)
        async with rp_client(app, client.client_id, client.client_secret) as rp:
            url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
            callback = await log_in_and_consent(http, url, "grace@example.com", PASSWORD)
            await rp.fetch_token(
                f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
            )
            info = (await rp.get(f"{ISSUER}/userinfo")).json()
        assert info["email"] == "grace@example.com" and info["email_verified"] is True
        assert info["name"] == "Grace Hopper"


async def test_an_address_that_has_an_account_gets_the_same_page_and_a_mail_saying_so(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    await make_user(runtime, email="ada@example.com")
    async with site(signup="open") as (_, http):
        taken = await sign_up(http, email="ada@example.com")
        free = await sign_up(http, email="grace@example.com")
    assert taken.status_code == free.status_code == 200
    assert taken.text.replace("ada@", "X@") == free.text.replace("grace@", "X@")
    await deliver(runtime, smtp)
    [exists] = smtp.to("ada@example.com")
    assert exists["Subject"] == "You already have a 1pass account"
    assert link_in(exists) == f"{ISSUER}/password/forgot", "no token, only the way to reset"
    assert await user_count(runtime) == 1


async def test_two_sign_ups_of_one_address_make_one_account(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    async with site(signup="open") as (_, http):
        await sign_up(http)
        await sign_up(http, password="another marble lantern orbit")
        await deliver(runtime, smtp)
        first, second = (link_in(m) for m in smtp.messages)
        for link in (first, second):
            page = await http.get(link.removeprefix(ISSUER))
            await http.post("/signup/confirm", data=hidden_fields(page.text))
    assert await user_count(runtime) == 1


async def test_what_cannot_make_an_account_is_refused_keeping_the_form(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    async with site(signup="open", signup_email_domains="example.com") as (_, http):
        form = await http.get("/signup")
        assert "for addresses at example.com" in form.text
        elsewhere = await sign_up(http, email="grace@elsewhere.org")
        assert elsewhere.status_code == 400 and "for addresses at example.com" in elsewhere.text
        weak = await sign_up(http, password="password1")
        assert weak.status_code == 400 and "too easy to guess" in weak.text
        assert 'value="grace@example.com"' in weak.text and 'value="Grace Hopper"' in weak.text
        personal = await sign_up(http, password="hopper-quiet-orbit")
        assert personal.status_code == 400 and "email address or name" in personal.text
        mistyped = await sign_up(http, password_again=PASSWORD + "!")
        assert mistyped.status_code == 400 and "not the same" in mistyped.text
        not_address = await sign_up(http, email="grace")
        assert not_address.status_code == 400 and "Enter an email address" in not_address.text
        long_name = await sign_up(http, name="G" * 201)
        assert long_name.status_code == 400 and "200 characters" in long_name.text
        control = await sign_up(http, name="Grace\x07")
        assert control.status_code == 400 and "control character" in control.text
        assert "<h1>Bad request</h1>" in control.text, "a page, in the pages' format"
        assert (await sign_up(http)).status_code == 200
    await deliver(runtime, smtp)
    assert len(smtp.messages) == 1 and await user_count(runtime) == 0


async def test_a_confirmation_link_expires(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    async with site(signup="open") as (_, http):
        await sign_up(http)
    await deliver(runtime, smtp)
    link = link_in(smtp.messages[0])
    later = FrozenClock(runtime.clock.now() + timedelta(hours=25))
    async with site(later, signup="open") as (_, http):
        page = await http.get(link.removeprefix(ISSUER))
    assert page.status_code == 400 and "expired" in page.text


async def test_sign_ups_are_limited_per_ip(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime
) -> None:
    async with site(signup="open", signup_max_per_ip=2) as (_, http):
        assert (await sign_up(http, email="a@example.com")).status_code == 200
        assert (await sign_up(http, email="b@example.com")).status_code == 200
        third = await sign_up(http, email="c@example.com")
    assert third.status_code == 429 and int(third.headers["retry-after"]) > 0


async def test_an_invitation_creates_the_invited_account_once(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    async with site(signup="invite") as (app, http):
        invited_runtime = app.services.runtime
        data = await users.invite_user(invited_runtime, Actor.cli(), "Grace@Example.com")
        assert data["email"] == "Grace@Example.com"
        assert data["link"].startswith(f"{ISSUER}/signup?invite=")
        await deliver(runtime, smtp)
        [mail] = smtp.messages
        assert mail["Subject"] == "You are invited to create a 1pass account"
        assert link_in(mail) == data["link"] and "7 days" in text_of(mail)

        assert (await http.get("/signup")).status_code == 403, "no open sign-up"
        page = await http.get(data["link"].removeprefix(ISSUER))
        assert page.status_code == 200 and "Grace@Example.com" in page.text
        assert 'name="email"' not in page.text, "the invited address is not editable"
        weak = await http.post(
            "/signup",
            data={
                **hidden_fields(page.text),
                "name": "Grace",
                "password": "grace123",
                "password_again": "grace123",
            },
        )
        assert weak.status_code == 400 and await user_count(runtime) == 0
        fields = {
            **hidden_fields(page.text),
            "name": "Grace",
            "password": PASSWORD,
            "password_again": PASSWORD,
            "email": "mallory@example.com",
        }
        done = await http.post("/signup", data=fields)
        assert done.status_code == 200 and "Grace@Example.com" in done.text
        again = await http.post("/signup", data=fields)
        assert again.status_code == 400 and "already used" in again.text
        wrong = await http.get("/signup", params={"invite": "x" * 43})
        assert wrong.status_code == 400 and "not valid" in wrong.text

        with pytest.raises(Refusal, match="already exists"):
            await users.invite_user(invited_runtime, Actor.cli(), "grace@example.com")
    async with runtime.database.session(readonly=True) as session:
        user = await session.scalar(select(User))
    assert user is not None and user.email == "Grace@Example.com" and user.email_verified


async def test_invitations_need_the_invite_policy(runtime: Runtime) -> None:
    with pytest.raises(Refusal, match="ONEPASS_SIGNUP=invite"):
        await users.invite_user(runtime, Actor.cli(), "grace@example.com")


async def test_sign_up_refuses_forms_without_csrf_and_bodies_too_large(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime
) -> None:
    async with site(signup="open") as (_, http):
        no_csrf = await http.post(
            "/signup",
            data={"email": "grace@example.com", "password": PASSWORD, "password_again": PASSWORD},
        )
        assert no_csrf.status_code == 403 and "security token" in no_csrf.text
        json = await http.post("/signup", json={"email": "grace@example.com"})
        assert json.status_code == 400
        huge = await http.post(
            "/signup",
            content=b"name=" + b"a" * 100_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert huge.status_code == 413
        confirm = await http.post("/signup/confirm", data={"token": "x"})
        assert confirm.status_code == 403
        for bad in ("", "x", "A" * 500, "토큰"):
            page = await http.get("/signup/confirm", params={"token": bad})
            assert page.status_code == 400 and "not valid" in page.text
    assert await user_count(runtime) == 0


async def test_sign_up_pages_and_mail_in_korean(
    site: Callable[..., AbstractAsyncContextManager[Site]], runtime: Runtime, smtp: SmtpServer
) -> None:
    korean = {"accept-language": "ko"}
    async with site(signup="open") as (_, http):
        form = await http.get("/signup", headers=korean)
        assert "계정 만들기" in form.text
        sent = await http.post(
            "/signup",
            data={
                **hidden_fields(form.text),
                "email": "grace@example.com",
                "password": PASSWORD,
                "password_again": PASSWORD,
            },
            headers=korean,
        )
        assert "메일을 보냈습니다" in sent.text
    await deliver(runtime, smtp)
    assert smtp.messages[0]["Subject"] == "1pass 계정을 만들려면 주소를 확인하세요"
