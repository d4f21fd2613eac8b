"""A forgotten password, over HTTP as a browser without JavaScript, with the mail read
from a real SMTP server: no enumeration, a single-use link that expires, NIST rules for
the new password, every session and refresh token ended, a "password changed" mail,
quotas per address and per IP, and every bad input a clear page that loses nothing.
On SQLite, and on PostgreSQL with Redis."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError

from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.mail.delivery import MailDelivery
from onepass.runtime import Runtime
from onepass.settings import Settings
from tests.conftest import ISSUER, make_settings
from tests.factories import make_admin, make_rp, make_user
from tests.flow import authorize_url, hidden_fields, log_in_and_consent, submit_login
from tests.functional.oauth.test_code_flow import rp_client
from tests.smtp import SmtpServer, link_in, text_of

NEW_PASSWORD = "lantern quietly orbits marble"


@dataclass
class Site:
    app: OnePass
    http: httpx.AsyncClient
    runtime: Runtime
    smtp: SmtpServer
    settings: Settings

    async def deliver(self) -> None:
        """What the dispatcher does: hand the due mail to the SMTP server."""
        delivery = MailDelivery(
            self.settings, self.runtime.database, self.runtime.box, self.runtime.clock
        )
        await delivery.deliver_all_due()

    async def ask(self, email: str, **headers: str) -> httpx.Response:
        page = await self.http.get("/password/forgot", headers=headers)
        assert page.status_code == 200
        return await self.http.post(
            "/password/forgot",
            data={**hidden_fields(page.text), "email": email},
            headers=headers,
        )

    async def link_for(self, email: str) -> str:
        await self.deliver()
        mails = [m for m in self.smtp.to(email) if "/password/reset?token=" in text_of(m)]
        assert mails, f"no reset mail to {email}"
        return link_in(mails[-1])

    async def choose(
        self, link: str, password: str, again: str | None = None, **headers: str
    ) -> httpx.Response:
        form = await self.http.get(link.removeprefix(ISSUER), headers=headers)
        assert form.status_code == 200, form.text[:300]
        return await self.http.post(
            "/password/reset",
            data={
                **hidden_fields(form.text),
                "password": password,
                "password_again": password if again is None else again,
            },
            headers=headers,
        )


@pytest.fixture
async def site(runtime: Runtime, smtp: SmtpServer) -> AsyncIterator[Site]:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, smtp_url=smtp.url
    )
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        yield Site(app, http, runtime, smtp, settings)


def _text(page: httpx.Response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))


async def test_an_address_with_and_without_an_account_get_the_same_answer(site: Site) -> None:
    await make_user(site.runtime, email="ada@example.com")
    known = await site.ask("ada@example.com")
    unknown = await site.ask("nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert _text(known).replace("ada@example.com", "X") == _text(unknown).replace(
        "nobody@example.com", "X"
    )
    assert "Check your mail" in known.text
    await site.deliver()
    assert [m["To"] for m in site.smtp.messages] == ["ada@example.com"]


async def test_the_whole_reset_ends_every_session_and_token_and_says_so_by_mail(
    site: Site,
) -> None:
    user = await make_user(site.runtime, email="ada@example.com", name="Ada Lovelace")
    client = await make_rp(site.runtime)
    verifier = secrets.token_urlsafe(48)
    async with rp_client(site.app, client.client_id, client.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(site.http, url, user.email, user.password)
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )

        # The sign-in page links to the reset page.
        login = await site.http.get(authorize_url(client, prompt="login"))
        assert 'href="/password/forgot"' in login.text

        await site.ask(user.email)
        link = await site.link_for(user.email)
        [mail] = site.smtp.messages
        assert mail["Subject"] == "Reset your 1pass password"
        assert "Hello Ada Lovelace," in text_of(mail) and "30 minutes" in text_of(mail)
        assert user.password not in mail.as_string()

        done = await site.choose(link, NEW_PASSWORD)
        assert done.status_code == 200 and "Password changed" in done.text

        # Every refresh token is revoked, and the access token with it.
        with pytest.raises(AuthlibOAuthError) as refused:
            await rp.refresh_token(f"{ISSUER}/token", refresh_token=token["refresh_token"])
        assert refused.value.error == "invalid_grant"
        userinfo = await site.http.get(
            "/userinfo", headers={"authorization": f"Bearer {token['access_token']}"}
        )
        assert userinfo.status_code == 401

    # The browser's session ended: the next authorization asks for a password again,
    # the old one is refused and the new one works.
    page = await site.http.get(authorize_url(client))
    assert page.status_code == 200 and 'action="/login"' in page.text
    assert (await submit_login(site.http, page, user.email, user.password)).status_code == 401
    assert (await submit_login(site.http, page, user.email, NEW_PASSWORD)).status_code in (200, 303)

    await site.deliver()
    changed = [m for m in site.smtp.to(user.email) if "changed" in m["Subject"]]
    assert len(changed) == 1 and "every session was signed out" in text_of(changed[0])
    assert "http" not in text_of(changed[0]), "no link, so nothing to phish with"


async def test_a_link_works_once(site: Site) -> None:
    user = await make_user(site.runtime)
    await site.ask(user.email)
    link = await site.link_for(user.email)
    assert (await site.choose(link, NEW_PASSWORD)).status_code == 200
    again = await site.http.get(link.removeprefix(ISSUER))
    assert again.status_code == 400 and "already used" in again.text
    form = {"token": parse_qs(urlsplit(link).query)["token"][0]}
    page = await site.http.get("/password/forgot")
    posted = await site.http.post(
        "/password/reset",
        data={
            **hidden_fields(page.text),
            **form,
            "password": "another lantern marble orbit",
            "password_again": "another lantern marble orbit",
        },
    )
    assert posted.status_code == 400 and "already used" in posted.text
    page = await site.http.get(authorize_url(await make_rp(site.runtime)))
    assert (await submit_login(site.http, page, user.email, NEW_PASSWORD)).status_code in (200, 303)


async def test_a_link_expires(site: Site, runtime: Runtime) -> None:
    user = await make_user(site.runtime)
    await site.ask(user.email)
    link = await site.link_for(user.email)
    settings = make_settings(
        runtime.settings.database_url,
        runtime.settings.redis_url,
        smtp_url=site.smtp.url,
    )
    later = FrozenClock(runtime.clock.now() + timedelta(minutes=31))
    app = create_app(settings, clock=later)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        page = await http.get(link.removeprefix(ISSUER))
    assert page.status_code == 400 and "expired" in page.text


async def test_a_weak_or_mistyped_password_is_refused_and_the_link_still_works(
    site: Site,
) -> None:
    user = await make_user(site.runtime, email="ada.lovelace@example.com")
    await site.ask(user.email)
    link = await site.link_for(user.email)
    short = await site.choose(link, "k3#Zq")
    assert short.status_code == 400 and "at least 8 characters" in short.text
    common = await site.choose(link, "Password123!")
    assert common.status_code == 400 and "too easy to guess" in common.text
    personal = await site.choose(link, "lovelace-quiet-orbit")
    assert personal.status_code == 400 and "email address or name" in personal.text
    mistyped = await site.choose(link, NEW_PASSWORD, again=NEW_PASSWORD + "s")
    assert mistyped.status_code == 400 and "not the same" in mistyped.text
    assert (await site.choose(link, NEW_PASSWORD)).status_code == 200


async def test_a_password_changed_by_the_operator_voids_the_link(site: Site) -> None:
    from onepass.operators.audit import Actor
    from onepass.playbook import users

    user = await make_user(site.runtime)
    await site.ask(user.email)
    link = await site.link_for(user.email)
    await users.set_password(site.runtime, Actor.cli(), str(user.id), "operator chosen pass")
    page = await site.http.get(link.removeprefix(ISSUER))
    assert page.status_code == 400 and "password was changed since" in page.text


async def test_no_mail_for_disabled_deleted_or_administrator_accounts(site: Site) -> None:
    from onepass.operators.audit import Actor
    from onepass.playbook import users

    disabled = await make_user(site.runtime, email="disabled@example.com")
    await users.disable_user(site.runtime, Actor.cli(), str(disabled.id))
    deleted = await make_user(site.runtime, email="deleted@example.com")
    await users.delete_user(site.runtime, Actor.cli(), str(deleted.id))
    admin = await make_admin(site.runtime)
    for email in ("disabled@example.com", "deleted@example.com", admin.email):
        assert (await site.ask(email)).status_code == 200
    await site.deliver()
    assert site.smtp.messages == []


async def test_requests_are_limited_per_address_silently_and_per_ip_with_429(
    runtime: Runtime, smtp: SmtpServer
) -> None:
    settings = make_settings(
        runtime.settings.database_url,
        runtime.settings.redis_url,
        smtp_url=smtp.url,
        password_reset_max_per_address=2,
        password_reset_max_per_ip=4,
    )
    await make_user(runtime)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        site = Site(app, http, runtime, smtp, settings)
        answers = [await site.ask("ada@example.com") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200], "the same answer"
        await site.deliver()
        assert len(smtp.messages) == 2, "no third mail to the same address"
        assert (await site.ask("someone@example.com")).status_code == 200
        throttled = await site.ask("else@example.com")
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
        assert "Too many requests" in throttled.text


async def test_bad_input_gets_a_clear_page_and_never_a_500(site: Site) -> None:
    user = await make_user(site.runtime)
    await site.ask(user.email)
    link = await site.link_for(user.email)
    token = parse_qs(urlsplit(link).query)["token"][0]
    for bad in ("", "x", "A" * 5000, "토큰", token[:-1] + "?", "%00"):
        page = await site.http.get("/password/reset", params={"token": bad})
        assert page.status_code == 400 and "not a valid password reset link" in page.text, bad
    # A control character is refused before any route (onepass.edge), as everywhere.
    nul = await site.http.get("/password/reset", params={"token": "\x00"})
    assert nul.status_code == 400 and "<h1>Bad request</h1>" in nul.text, "a page, not JSON"
    # Without the CSRF token: refused, and the link still works.
    fresh = httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app), base_url=ISSUER)
    async with fresh:
        no_csrf = await fresh.post(
            "/password/reset",
            data={"token": token, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
        )
        assert no_csrf.status_code == 403 and "security token" in no_csrf.text
        assert (await fresh.post("/password/forgot", data={"email": user.email})).status_code == 403
    not_a_form = await site.http.post(
        "/password/reset", content=b'{"token": 1}', headers={"content-type": "application/json"}
    )
    assert not_a_form.status_code == 400
    huge = await site.http.post(
        "/password/forgot",
        content=b"email=" + b"a" * 100_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413
    empty = await site.ask("")
    assert empty.status_code == 400 and "Enter the email address" in empty.text
    long_address = await site.ask("a" * 400 + "@example.com")
    assert long_address.status_code == 200
    assert (await site.choose(link, NEW_PASSWORD)).status_code == 200


async def test_pages_and_mail_follow_the_browsers_language(site: Site) -> None:
    user = await make_user(site.runtime)
    korean = {"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"}
    form = await site.http.get("/password/forgot", headers=korean)
    assert '<html lang="ko">' in form.text and "비밀번호 재설정" in form.text
    sent = await site.ask(user.email, **korean)
    assert "메일을 확인하세요" in sent.text
    link = await site.link_for(user.email)
    assert site.smtp.messages[0]["Subject"] == "1pass 비밀번호 재설정"
    weak = await site.choose(link, "password", **korean)
    assert "자 이상으로 정하세요" in weak.text or "추측하기 너무 쉬운" in weak.text
    done = await site.choose(link, NEW_PASSWORD, **korean)
    assert "비밀번호가 변경되었습니다" in done.text
