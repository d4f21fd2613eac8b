"""The admin console (/admin): sign-in with password and TOTP, its own session and
cookie, CSRF, the outbox and audit pages, and retry / replay with step-up.
SQLite and PostgreSQL, real dispatcher against a real receiver, frozen clock."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from onepass.accounts import totp
from onepass.accounts.models import LoginSession
from onepass.app import create_app
from onepass.clock import FrozenClock
from onepass.oauth import pkce
from onepass.operators import audit
from onepass.operators.models import ActionRequestNonce, AuditLogEntry
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER
from tests.cookies import browser_cookies, set_cookie_names
from tests.factories import REDIRECT_URI, AdminInfo, make_admin, make_rp, make_user
from tests.flow import submit_login
from tests.webhook_helpers import (
    Receiver,
    WebhookApp,
    dispatch_once,
    enqueue,
    entry,
    make_webhook_app,
    status,
)

CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')
GENERIC = "Incorrect email, password or code."


@pytest.fixture
def web(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """The console, as a browser without JavaScript uses it."""
    return api


def csrf_token(page: httpx.Response) -> str:
    found = CSRF_FIELD.search(page.text)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def code_now(admin: AdminInfo, clock: FrozenClock) -> str:
    return totp.code_at(admin.totp_secret, clock.timestamp())


async def sign_in(
    web: httpx.AsyncClient,
    email: str,
    password: str,
    code: str,
    *,
    next_url: str | None = None,
) -> httpx.Response:
    page = await web.get("/admin/login")
    assert page.status_code == 200, page.text[:300]
    data = {"csrf_token": csrf_token(page), "email": email, "password": password, "totp_code": code}
    if next_url is not None:
        data["next"] = next_url
    return await web.post("/admin/login", data=data)


async def signed_in(web: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock) -> None:
    response = await sign_in(web, admin.email, admin.password, code_now(admin, clock))
    assert response.status_code == 303, response.text[:500]


async def dead_entry(rt: Runtime, receiver: Receiver, app: WebhookApp | None = None) -> int:
    """An entry dead-lettered by a real dispatcher: the receiver answers 400."""
    receiver.default = status(400, body=b"signature rejected")
    if app is None:
        app = await make_webhook_app(rt, receiver.url("/hook"), name="Example Notes")
    entry_id = await enqueue(rt, app.id, payload={"user_id": 42})
    await dispatch_once(rt)
    dead = await entry(rt, entry_id)
    assert dead.dlq_at is not None and dead.delivered_at is None
    return entry_id


async def audit_rows(rt: Runtime, action: str) -> list[AuditLogEntry]:
    async with rt.database.session() as session:
        return list(
            await session.scalars(
                select(AuditLogEntry)
                .where(AuditLogEntry.action == action)
                .order_by(AuditLogEntry.id)
            )
        )


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith(name + "=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


# -- sign-in --------------------------------------------------------------------------


async def test_console_login_with_password_and_code_opens_a_console_session(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    response = await sign_in(web, admin.email, admin.password, code_now(admin, clock))
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"
    cookie = cookie_header(response, "onepass_admin").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    assert "max-age=1800" in cookie
    assert "secure" not in cookie, "an http issuer: no Secure flag"
    async with rt.database.session() as session:
        login = await session.scalar(select(LoginSession).where(LoginSession.user_id == admin.id))
    assert login is not None
    assert login.acr == "urn:1pass:admin" and login.amr == ["pwd", "otp"]
    assert (login.expires_at - login.created_at).total_seconds() == 1800
    [row] = await audit_rows(rt, "console.login")
    assert row.outcome == "ok" and row.via == "console" and row.actor_user_id == admin.id

    page = await web.get("/admin")
    assert page.status_code == 200
    assert "Signed in as" in page.text and admin.email in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text


async def test_console_cookie_https_issuer_secure_prefixed_at_admin_path(
    settings: Settings, clock: FrozenClock
) -> None:
    secure = settings.model_copy(update={"issuer": "https://id.example.com"})
    runtime = Runtime.build(secure, clock)
    await prepare(runtime)
    try:
        admin = await make_admin(runtime)
        application = create_app(secure, clock)
        async with (
            application.api.router.lifespan_context(application.api),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
                base_url="https://id.example.com",
            ) as web,
        ):
            response = await sign_in(web, admin.email, admin.password, code_now(admin, clock))
            assert response.status_code == 303
            # __Secure-, not __Host-: the cookie keeps Path=/admin (onepass.cookies).
            assert set_cookie_names(response) == ["__Secure-onepass_admin"]
            cookie = browser_cookies(response, secure_origin=True)["__Secure-onepass_admin"]
            assert cookie["secure"] is True and cookie["path"] == "/admin"
            assert "domain" not in cookie
            home = await web.get("/admin")
            assert home.status_code == 200, "read back under that name"
            out = await web.post("/admin/logout", data={"csrf_token": csrf_token(home)})
            assert "__Secure-onepass_admin" in browser_cookies(out, secure_origin=True)
    finally:
        await runtime.close()


async def test_console_login_refusals_do_not_tell_which_part_was_wrong(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    user = await make_user(rt, email="ada@example.com")
    good = code_now(admin, clock)
    wrong_code = "000000" if good != "000000" else "111111"
    attempts = [
        (admin.email, "not the password", good),
        (admin.email, admin.password, wrong_code),
        ("nobody@example.com", admin.password, good),
        (user.email, user.password, good),  # a user, not an administrator
    ]
    for email, password, code in attempts:
        response = await sign_in(web, email, password, code)
        assert response.status_code == 401, (email, response.text[:300])
        assert GENERIC in response.text
        assert "onepass_admin" not in response.headers.get("set-cookie", "")
        assert password not in response.text
    denied = await audit_rows(rt, "console.login")
    assert [(r.outcome, r.message) for r in denied] == [
        ("denied", "wrong password"),
        ("denied", "wrong or reused TOTP code"),
    ], "refusals for an administrator's email are audited, others are not"

    empty = await sign_in(web, admin.email, admin.password, "")
    assert empty.status_code == 400 and "6-digit code" in empty.text
    nul = await sign_in(web, "ops\x00@example.com", admin.password, good)
    assert nul.status_code == 400 and "control character" in nul.text  # refused at the edge


async def test_console_login_code_is_not_accepted_twice(
    web: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    code = code_now(admin, clock)
    assert (await sign_in(web, admin.email, admin.password, code)).status_code == 303
    web.cookies.clear()
    again = await sign_in(web, admin.email, admin.password, code)
    assert again.status_code == 401 and GENERIC in again.text


async def test_console_login_is_throttled_with_retry_after(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    for _ in range(rt.settings.login_max_failures_per_account):
        response = await sign_in(web, admin.email, "wrong password", code_now(admin, clock))
        assert response.status_code == 401
    blocked = await sign_in(web, admin.email, admin.password, code_now(admin, clock))
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many failed attempts" in blocked.text
    assert "onepass_admin" not in blocked.headers.get("set-cookie", "")


def wrong_code(admin: AdminInfo, clock: FrozenClock) -> str:
    return "000000" if code_now(admin, clock) != "000000" else "111111"


async def test_console_code_guesses_lock_despite_end_user_logins_with_the_same_email(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    """The attack: a wrong console code, then the administrator's email and password at
    the end-user login (which reset the per-email counter), and again."""
    rp = await make_rp(rt)
    authorize = "/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": rp.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid email",
            "state": "xyz",
            "code_challenge": pkce.s256("v" * 43),
            "code_challenge_method": "S256",
        }
    )
    page = await web.get(authorize)
    for _ in range(rt.settings.admin_totp_max_failures):
        guess = await sign_in(web, admin.email, admin.password, wrong_code(admin, clock))
        assert guess.status_code in (401, 429), guess.text[:300]
        end_user = await submit_login(web, page, admin.email, admin.password)
        assert end_user.status_code in (401, 429), "an administrator signs in to no RP"
    right = await sign_in(web, admin.email, admin.password, code_now(admin, clock))
    assert right.status_code == 429
    assert "onepass_admin" not in right.headers.get("set-cookie", "")


async def test_console_code_failures_count_in_the_administrators_step_up_counter(
    rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    # The per-email login limit out of the way: only the TOTP counter can lock here.
    settings = rt.settings.model_copy(update={"login_max_failures_per_account": 1000})
    application = create_app(settings, clock)
    async with (
        application.api.router.lifespan_context(application.api),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),  # type: ignore[arg-type]
            base_url=ISSUER,
        ) as web,
    ):
        step_up = {"action": "signing_keys.rotate", "target": "jwks"}
        bearer = {"authorization": f"Bearer {admin.token}"}
        for _ in range(settings.admin_totp_max_failures - 1):
            guess = await sign_in(web, admin.email, admin.password, wrong_code(admin, clock))
            assert guess.status_code == 401 and GENERIC in guess.text
        wrong = await web.post(
            "/api/v1/admin/step-up",
            json={**step_up, "totp_code": wrong_code(admin, clock)},
            headers=bearer,
        )
        assert wrong.status_code == 401
        right = code_now(admin, clock)
        console = await sign_in(web, admin.email, admin.password, right)
        assert console.status_code == 429 and "Too many wrong codes" in console.text
        assert int(console.headers["retry-after"]) > 0
        api = await web.post(
            "/api/v1/admin/step-up", json={**step_up, "totp_code": right}, headers=bearer
        )
        assert api.status_code == 429 and api.json()["error"] == "too_many_attempts"
    denied = await audit_rows(rt, "console.login")
    assert denied[-1].message == "too many wrong TOTP codes"


async def test_console_login_without_csrf_token_is_refused(
    web: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    await web.get("/admin/login")  # the CSRF cookie, but no form token sent
    response = await web.post(
        "/admin/login",
        data={
            "email": admin.email,
            "password": admin.password,
            "totp_code": code_now(admin, clock),
        },
    )
    assert response.status_code == 403 and "This form has expired" in response.text
    assert "onepass_admin" not in response.headers.get("set-cookie", "")
    not_a_form = await web.post(
        "/admin/login", content=b"{}", headers={"content-type": "application/json"}
    )
    assert not_a_form.status_code == 400 and "not sent as a form" in not_a_form.text


async def test_console_pages_redirect_to_login_when_signed_out(web: httpx.AsyncClient) -> None:
    for path in ("/admin", "/admin/webhooks?status=dead", "/admin/webhooks/1", "/admin/audit"):
        response = await web.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/admin/login?" + urlencode({"next": path})
    posted = await web.post("/admin/webhooks/1/retry", data={"totp_code": "123456"})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/admin/login")


async def test_console_login_goes_on_to_the_page_asked_for_and_never_elsewhere(
    web: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    response = await sign_in(
        web, admin.email, admin.password, code_now(admin, clock), next_url="/admin/audit"
    )
    assert response.headers["location"] == "/admin/audit"
    clock.advance(30)
    web.cookies.clear()
    for evil in ("https://evil.example/", "//evil.example/admin", "/admin/\\evil"):
        clock.advance(30)
        response = await sign_in(
            web, admin.email, admin.password, code_now(admin, clock), next_url=evil
        )
        assert response.headers["location"] == "/admin", evil
        web.cookies.clear()


async def test_user_login_session_does_not_open_the_console_nor_the_reverse(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    user = await make_user(rt, email="ada@example.com")
    rp = await make_rp(rt)
    authorize = "/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": rp.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid email",
            "state": "xyz",
            "code_challenge": pkce.s256("v" * 43),
            "code_challenge_method": "S256",
        }
    )
    page = await web.get(authorize)
    signed = await submit_login(web, page, user.email, user.password)
    assert signed.status_code == 200 and 'action="/consent"' in signed.text
    user_cookie = web.cookies.get("onepass_session")
    assert user_cookie
    assert (await web.get("/admin")).status_code == 303, "a user's session is no console session"
    as_console = {"cookie": f"onepass_admin={user_cookie}"}
    assert (await web.get("/admin", headers=as_console)).status_code == 303, (
        "nor is its token as a console cookie"
    )

    web.cookies.clear()
    await signed_in(web, admin, clock)
    console_token = web.cookies.get("onepass_admin", path="/admin")
    assert console_token
    shown = await web.get(authorize, headers={"cookie": f"onepass_session={console_token}"})
    assert shown.status_code == 200
    assert 'action="/login"' in shown.text, "the console cookie signs nobody in at an RP"


async def test_console_session_ends_after_its_lifetime(
    web: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    await signed_in(web, admin, clock)
    assert (await web.get("/admin")).status_code == 200
    clock.advance(1801)
    assert (await web.get("/admin")).status_code == 303


async def test_logout_revokes_the_console_session(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    await signed_in(web, admin, clock)
    token = web.cookies.get("onepass_admin", path="/admin")
    page = await web.get("/admin")
    no_csrf = await web.post("/admin/logout", data={})
    assert no_csrf.status_code == 403
    response = await web.post("/admin/logout", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?signed_out=1"
    async with rt.database.session() as session:
        login = await session.scalar(select(LoginSession).where(LoginSession.user_id == admin.id))
    assert login is not None and login.revoked_at is not None
    assert [r.outcome for r in await audit_rows(rt, "console.logout")] == ["ok"]
    old = await web.get("/admin", headers={"cookie": f"onepass_admin={token}"})
    assert old.status_code == 303, "the old cookie no longer works"


# -- pages ----------------------------------------------------------------------------


async def test_overview_lists_dead_letters_per_application_and_the_backlog(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app = await make_webhook_app(rt, receiver.url("/hook"), name="Example Notes")
    await dead_entry(rt, receiver, app)
    await dead_entry(rt, receiver, app)
    await enqueue(rt, app.id)  # pending, due now
    clock.advance(125)
    await signed_in(web, admin, clock)
    page = await web.get("/admin")
    assert page.status_code == 200
    assert app.client_id in page.text and "Example Notes" in page.text
    assert re.search(r'<td class="num">2</td>', page.text)
    assert "due 2 min ago" in page.text, page.text


async def test_webhook_pages_list_filter_and_show_attempts(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app = await make_webhook_app(rt, receiver.url("/hook"), name="Example Notes")
    first = await dead_entry(rt, receiver, app)
    second = await dead_entry(rt, receiver, app)
    await signed_in(web, admin, clock)

    listed = await web.get(f"/admin/webhooks?status=dead&app={app.client_id}")
    assert listed.status_code == 200
    ids = [int(i) for i in re.findall(r'href="/admin/webhooks/(\d+)"', listed.text)]
    assert ids == [second, first], "newest first"
    oldest = await web.get(f"/admin/webhooks?status=dead&app={app.client_id}&order=oldest")
    assert [int(i) for i in re.findall(r'href="/admin/webhooks/(\d+)"', oldest.text)] == [
        first,
        second,
    ]

    shown = await web.get(f"/admin/webhooks/{first}")
    assert shown.status_code == 200
    assert "&#34;user_id&#34;: 42" in shown.text or '"user_id": 42' in shown.text
    assert app.kid in shown.text, "the attempt's signing kid"
    assert "signature rejected" in shown.text and "400" in shown.text
    assert "Replay all 2 dead entries" in shown.text

    for path, expected in (
        ("/admin/webhooks?status=bogus", 400),
        ("/admin/webhooks?app=no-such-app", 404),
        ("/admin/webhooks?cursor=abc", 400),
        ("/admin/webhooks/abc", 404),
        ("/admin/webhooks/999999", 404),
        ("/admin/audit?before=x", 400),
        ("/admin/applications/no-such-app/replay", 404),
        ("/admin/webhooks/%C2%B2", 404),
        ("/admin/webhooks?app=%00", 400),
        ("/admin/webhooks?cursor=%C2%B2", 400),
        ("/admin/applications/x%00y/replay", 400),
    ):
        response = await web.get(path)
        assert response.status_code == expected, (path, response.text[:300])
        assert 'role="alert"' in response.text and "Traceback" not in response.text


async def test_audit_page_lists_newest_first_and_pages(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    await signed_in(web, admin, clock)
    for n in range(55):
        await audit.record(
            rt.database, rt.clock, audit.Actor("cli:ops", "cli"), "test.action", str(n), audit.OK
        )
    page = await web.get("/admin/audit")
    assert page.status_code == 200
    targets = re.findall(r"<td><code>(\d+)</code></td>", page.text)
    assert targets[:2] == ["54", "53"]
    older = re.search(r'href="(/admin/audit\?before=\d+)" rel="next"', page.text)
    assert older
    second = await web.get(html.unescape(older.group(1)))
    assert "console.login" in second.text
    odd = await web.get("/admin/audit?before=%C2%B2")
    assert odd.status_code == 400 and "not a number" in odd.text
    nul = await web.get("/admin/audit?action=%00")
    assert nul.status_code == 400 and "control characters" in nul.text
    unknown = await web.get("/admin/applications/x/replay?replayed=%C2%B2")
    assert unknown.status_code == 404


# -- step-up actions ------------------------------------------------------------------


async def test_retry_with_a_fresh_code_requeues_the_dead_entry(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    entry_id = await dead_entry(rt, receiver)
    await signed_in(web, admin, clock)
    page = await web.get(f"/admin/webhooks/{entry_id}")
    assert "status-dead" in page.text and "Retry" in page.text
    clock.advance(30)  # the next TOTP step: a code not used to sign in
    response = await web.post(
        f"/admin/webhooks/{entry_id}/retry",
        data={"csrf_token": csrf_token(page), "totp_code": code_now(admin, clock)},
    )
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == f"/admin/webhooks/{entry_id}?retried=1"
    requeued = await entry(rt, entry_id)
    assert requeued.dlq_at is None and requeued.attempts == 0 and requeued.last_error is None
    assert requeued.enqueued_at == clock.now()
    shown = await web.get(response.headers["location"])
    assert "queued for delivery again" in shown.text and "status-pending" in shown.text
    assert '<meta http-equiv="refresh" content="5">' in shown.text  # until delivered or dead

    [step_up] = await audit_rows(rt, "step_up:webhook_outbox.retry")
    [done] = await audit_rows(rt, "webhook_outbox.retry")
    for row in (step_up, done):
        assert row.outcome == "ok" and row.via == "console" and row.target == str(entry_id)
        assert row.actor == f"admin:{admin.email}" and row.actor_user_id == admin.id
    async with rt.database.session() as session:
        [nonce] = list(await session.scalars(select(ActionRequestNonce)))
    assert nonce.used_at is not None and nonce.admin_token_id is None
    assert nonce.action == "webhook_outbox.retry" and nonce.target == str(entry_id)


async def test_retry_with_a_used_or_wrong_code_is_refused_and_changes_nothing(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    entry_id = await dead_entry(rt, receiver)
    login_code = code_now(admin, clock)
    await signed_in(web, admin, clock)
    page = await web.get(f"/admin/webhooks/{entry_id}")
    token = csrf_token(page)
    before = await entry(rt, entry_id)

    reused = await web.post(
        f"/admin/webhooks/{entry_id}/retry", data={"csrf_token": token, "totp_code": login_code}
    )
    assert reused.status_code == 401
    assert "already used" in reused.text and "Nothing was changed." in reused.text
    wrong = await web.post(
        f"/admin/webhooks/{entry_id}/retry", data={"csrf_token": token, "totp_code": "12345x"}
    )
    assert wrong.status_code == 401 and "Nothing was changed." in wrong.text
    no_csrf = await web.post(
        f"/admin/webhooks/{entry_id}/retry",
        data={"totp_code": totp.code_at(admin.totp_secret, clock.timestamp() + 30)},
    )
    assert no_csrf.status_code == 403 and "This form has expired" in no_csrf.text

    after = await entry(rt, entry_id)
    assert after.dlq_at == before.dlq_at and after.attempts == before.attempts == 1
    assert await audit_rows(rt, "webhook_outbox.retry") == []
    refused = await audit_rows(rt, "step_up:webhook_outbox.retry")
    assert [(r.outcome, r.message.split(":")[0]) for r in refused] == [
        ("denied", "invalid_totp"),
        ("denied", "invalid_totp"),
    ]
    async with rt.database.session() as session:
        assert list(await session.scalars(select(ActionRequestNonce))) == []

    # The code not used by the refused CSRF-less post still works.
    clock.advance(30)
    ok = await web.post(
        f"/admin/webhooks/{entry_id}/retry",
        data={"csrf_token": token, "totp_code": code_now(admin, clock)},
    )
    assert ok.status_code == 303


async def test_retry_of_a_delivered_entry_is_refused_and_audited(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app = await make_webhook_app(rt, receiver.url("/hook"))
    entry_id = await enqueue(rt, app.id)
    await dispatch_once(rt)  # 200: delivered
    await signed_in(web, admin, clock)
    page = await web.get(f"/admin/webhooks/{entry_id}")
    assert "status-delivered" in page.text and "/retry" not in page.text
    clock.advance(30)
    response = await web.post(
        f"/admin/webhooks/{entry_id}/retry",
        data={"csrf_token": csrf_token(page), "totp_code": code_now(admin, clock)},
    )
    assert response.status_code == 409 and "nothing to retry" in response.text
    [failed] = await audit_rows(rt, "webhook_outbox.retry")
    assert failed.outcome == "failed" and failed.via == "console"


async def test_replay_shows_a_dry_run_count_then_replays_with_step_up(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app = await make_webhook_app(rt, receiver.url("/hook"), name="Example Notes")
    ids = [await dead_entry(rt, receiver, app) for _ in range(3)]
    await signed_in(web, admin, clock)
    page = await web.get(f"/admin/applications/{app.client_id}/replay")
    assert page.status_code == 200
    assert "3 dead entries" in page.text and "Replay 3 entries" in page.text
    assert await audit_rows(rt, "webhook_outbox.replay_dlq") == [], "the dry run changes nothing"

    refused = await web.post(
        f"/admin/applications/{app.client_id}/replay",
        data={"csrf_token": csrf_token(page), "totp_code": code_now(admin, clock)},
    )
    assert refused.status_code == 401 and "Nothing was changed." in refused.text
    for i in ids:
        assert (await entry(rt, i)).dlq_at is not None

    clock.advance(30)
    response = await web.post(
        f"/admin/applications/{app.id}/replay",  # the internal id works too
        data={"csrf_token": csrf_token(page), "totp_code": code_now(admin, clock)},
    )
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == f"/admin/applications/{app.client_id}/replay?replayed=3"
    for i in ids:
        requeued = await entry(rt, i)
        assert requeued.dlq_at is None and requeued.attempts == 0
    shown = await web.get(response.headers["location"])
    assert "3 dead entries were queued" in shown.text and "nothing to replay" in shown.text
    [done] = await audit_rows(rt, "webhook_outbox.replay_dlq")
    assert done.outcome == "ok" and done.target == app.client_id and done.detail["replayed"] == 3
    step_ups = await audit_rows(rt, "step_up:webhook_outbox.replay_dlq")
    assert [r.outcome for r in step_ups] == ["denied", "ok"]
