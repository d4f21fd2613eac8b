"""``/account``: a person signs in to 1pass itself and changes their own account; each
change goes through the operator's procedure (audit log, webhooks to RPs). Over HTTP,
on SQLite and on PostgreSQL with Redis."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from sqlalchemy import select

from onepass.accounts.models import LoginSession, User
from onepass.app import OnePass
from onepass.mail.models import MailOutboxEntry
from onepass.operators.models import AuditLogEntry
from onepass.runtime import Runtime
from onepass.webhooks.models import WebhookOutboxEntry
from tests.conftest import ISSUER
from tests.factories import UserInfo, make_admin, make_rp, make_user
from tests.flow import authorize_url, hidden_fields, log_in_and_consent
from tests.functional.oauth.test_code_flow import rp_client

NEW = "lantern quietly orbits marble"
HOOK_EVENTS = ["user.updated", "user.deleted", "consent.revoked"]


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    page = await http.get("/account")
    assert page.status_code == 200 and 'action="/account/login"' in page.text
    return await http.post(
        "/account/login", data={**hidden_fields(page.text), "email": email, "password": password}
    )


async def post(http: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    page = await http.get("/account")
    return await http.post(path, data={**hidden_fields(page.text), **fields})


async def events(runtime: Runtime) -> list[tuple[str, dict[str, object]]]:
    async with runtime.database.session(readonly=True) as session:
        rows = await session.scalars(select(WebhookOutboxEntry).order_by(WebhookOutboxEntry.id))
        return [(r.event_type, r.payload) for r in rows]


async def audit(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.database.session(readonly=True) as session:
        rows = await session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id))
        return [(r.action, r.actor) for r in rows]


@pytest.fixture
async def ada(runtime: Runtime) -> UserInfo:
    return await make_user(runtime, name="Ada")


async def test_signing_in_at_account_shows_the_account_and_signs_in_for_rps(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    wrong = await sign_in(http, ada.email, "not it")
    assert wrong.status_code == 401 and "Incorrect email or password." in wrong.text
    done = await sign_in(http, ada.email, ada.password)
    assert done.status_code == 303 and done.headers["location"] == "/account?done=signed-in"
    page = await http.get(done.headers["location"])
    assert page.status_code == 200 and "You are signed in." in page.text
    assert ada.email in page.text and "This browser" in page.text
    assert "No application has access to your account." in page.text
    # The same session: an RP's authorization asks for no password.
    client = await make_rp(runtime)
    authorize = await http.get(authorize_url(client))
    assert 'action="/login"' not in authorize.text


async def test_an_administrator_cannot_sign_in_here(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await make_admin(runtime)
    refused = await sign_in(http, admin.email, admin.password)
    assert refused.status_code == 401 and "Incorrect email or password." in refused.text


async def test_changing_the_name_tells_the_rps_and_names_the_person_in_the_audit_log(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await make_rp(runtime, webhook_url="https://rp.example/hooks", webhook_events=HOOK_EVENTS)
    await sign_in(http, ada.email, ada.password)
    done = await post(http, "/account/profile", name="Ada Lovelace")
    assert done.status_code == 303 and done.headers["location"] == "/account?done=name"
    assert 'value="Ada Lovelace"' in (await http.get("/account")).text
    assert [e for e, _ in await events(runtime)] == ["user.updated"]
    assert ("users.update", f"user:{ada.sub}") in await audit(runtime)
    too_long = await post(http, "/account/profile", name="A" * 201)
    assert too_long.status_code == 400 and "200 characters" in too_long.text


async def test_changing_the_password_needs_the_current_one_and_signs_out_everywhere(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    async with other:
        await sign_in(other, ada.email, ada.password)
        await sign_in(http, ada.email, ada.password)
        wrong = await post(
            http, "/account/password", current_password="nope", password=NEW, password_again=NEW
        )
        assert wrong.status_code == 401 and "current password is not right" in wrong.text
        weak = await post(
            http,
            "/account/password",
            current_password=ada.password,
            password="password1",
            password_again="password1",
        )
        assert weak.status_code == 400 and "too easy to guess" in weak.text
        done = await post(
            http,
            "/account/password",
            current_password=ada.password,
            password=NEW,
            password_again=NEW,
        )
        assert done.status_code == 303 and done.headers["location"] == "/account?done=password"
        assert 'action="/account/login"' in (await http.get("/account")).text
        assert 'action="/account/login"' in (await other.get("/account")).text, "everywhere"
    assert (await sign_in(http, ada.email, ada.password)).status_code == 401
    assert (await sign_in(http, ada.email, NEW)).status_code == 303
    async with runtime.database.session(readonly=True) as session:
        kinds = list(await session.scalars(select(MailOutboxEntry.kind)))
    assert kinds == ["password_changed"]


async def test_wrong_current_passwords_are_throttled_like_sign_ins(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    statuses = []
    for _ in range(runtime.settings.login_max_failures_per_account + 1):
        answer = await post(
            http, "/account/password", current_password="guess", password=NEW, password_again=NEW
        )
        statuses.append(answer.status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}


async def test_signing_out_the_other_sessions_keeps_this_one(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    async with other:
        await sign_in(other, ada.email, ada.password)
        await sign_in(http, ada.email, ada.password)
        page = await http.get("/account")
        assert (
            len(re.findall(r"<li>", page.text.split('id="sessions-heading"')[1].split("</ul>")[0]))
            == 2
        )
        done = await post(http, "/account/sessions/sign-out-others")
        assert done.headers["location"] == "/account?done=others"
        assert "This browser" in (await http.get("/account")).text
        assert 'action="/account/login"' in (await other.get("/account")).text
        out = await post(http, "/account/sign-out")
        assert out.headers["location"] == "/account?done=signed-out"
        assert 'action="/account/login"' in (await http.get("/account")).text
    async with runtime.database.session(readonly=True) as session:
        live = await session.scalars(select(LoginSession).where(LoginSession.revoked_at.is_(None)))
        assert list(live) == []


async def test_removing_an_applications_access_revokes_its_tokens_and_tells_it(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    client = await make_rp(
        runtime,
        webhook_url="https://rp.example/hooks",
        webhook_events=HOOK_EVENTS,
        name="Example Notes",
    )
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(http, url, ada.email, ada.password)
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
        page = await http.get("/account")
        assert "Example Notes" in page.text
        done = await post(http, "/account/applications/remove", client_id=client.client_id)
        assert done.headers["location"] == "/account?done=application"
        assert "No application has access" in (await http.get("/account")).text
        with pytest.raises(AuthlibOAuthError) as refused:
            await rp.refresh_token(f"{ISSUER}/token", refresh_token=token["refresh_token"])
        assert refused.value.error == "invalid_grant"
    [(event, payload)] = await events(runtime)
    assert event == "consent.revoked"
    assert payload["sub"] == ada.sub and payload["client_id"] == client.client_id
    unknown = await post(http, "/account/applications/remove", client_id="nope")
    assert unknown.status_code == 400 and "no such application" in unknown.text


async def test_deleting_the_account_needs_the_password_and_the_box(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await make_rp(runtime, webhook_url="https://rp.example/hooks", webhook_events=HOOK_EVENTS)
    await sign_in(http, ada.email, ada.password)
    unticked = await post(http, "/account/delete", password=ada.password)
    assert unticked.status_code == 400 and "Tick the box" in unticked.text
    wrong = await post(http, "/account/delete", password="nope", confirm="delete")
    assert wrong.status_code == 401
    done = await post(http, "/account/delete", password=ada.password, confirm="delete")
    assert done.status_code == 200 and "Your account is deleted" in done.text
    assert 'action="/account/login"' in (await http.get("/account")).text
    async with runtime.database.session(readonly=True) as session:
        user = await session.scalar(select(User).where(User.sub == ada.sub))
    assert user is not None and user.deleted_at is not None and user.email != ada.email
    assert [e for e, _ in await events(runtime)] == ["user.deleted"]
    assert ("users.delete", f"user:{ada.sub}") in await audit(runtime)
    assert (await sign_in(http, ada.email, ada.password)).status_code == 401


async def test_changes_need_the_form_token_and_a_session(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    forged = await http.post(
        "/account/delete", data={"password": ada.password, "confirm": "delete"}
    )
    assert forged.status_code == 403 and "security token" in forged.text
    page = await http.get("/account")
    http.cookies.delete(next(c for c in http.cookies if c.endswith("onepass_session")))
    signed_out = await http.post("/account/profile", data={**hidden_fields(page.text), "name": "X"})
    assert signed_out.status_code == 401 and 'action="/account/login"' in signed_out.text
    not_form = await http.post(
        "/account/profile", content=b"{}", headers={"content-type": "application/json"}
    )
    assert not_form.status_code == 400 and "<h1>" in not_form.text
    async with runtime.database.session(readonly=True) as session:
        user = await session.scalar(select(User).where(User.sub == ada.sub))
    assert user is not None and user.name == "Ada" and user.deleted_at is None


async def test_the_account_page_in_korean(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    page = await http.get("/account", headers={"accept-language": "ko"})
    assert '<html lang="ko">' in page.text and "내 계정" in page.text and "계정 삭제" in page.text


async def test_a_forged_form_token_with_any_characters_is_refused_not_an_error(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    for token in ("토큰", "\u00e9" * 64, "x" * 5000):
        forged = await http.post("/account/profile", data={"csrf_token": token, "name": "X"})
        assert forged.status_code == 403 and "security token" in forged.text, token[:10]


async def mails(runtime: Runtime) -> list[tuple[str, str]]:
    async with runtime.database.session(readonly=True) as session:
        rows = await session.scalars(select(MailOutboxEntry).order_by(MailOutboxEntry.id))
        return [(r.kind, r.to_address) for r in rows]


async def test_a_new_address_replaces_the_old_only_once_its_link_is_opened(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    from onepass.mail.delivery import MailDelivery

    await make_rp(runtime, webhook_url="https://rp.example/hooks", webhook_events=HOOK_EVENTS)
    await sign_in(http, ada.email, ada.password)
    wrong = await post(http, "/account/email", new_email="ada@lovelace.dev", password="nope")
    assert wrong.status_code == 401
    asked = await post(http, "/account/email", new_email="Ada@Lovelace.dev", password=ada.password)
    assert asked.headers["location"] == "/account?done=email-sent"
    assert await mails(runtime) == [
        ("email_change_confirm", "Ada@Lovelace.dev"),
        ("email_change_notice", ada.email),
    ]
    async with runtime.database.session(readonly=True) as session:
        user = await session.scalar(select(User).where(User.sub == ada.sub))
    assert user is not None and user.email == ada.email, "unchanged until the link is opened"

    # The link, as the mail carries it (written to the log in development).
    await MailDelivery(
        runtime.settings, runtime.database, runtime.box, runtime.clock
    ).deliver_all_due()
    async with runtime.database.session(readonly=True) as session:
        from onepass.mail import outbox

        entry = await session.scalar(
            select(MailOutboxEntry).where(MailOutboxEntry.kind == "email_change_confirm")
        )
        assert entry is not None
        text = outbox.describe(runtime.box, entry)["text"]
    [link] = re.findall(r"https?://\S+", text)
    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    async with elsewhere:  # opened on another device, not signed in
        page = await elsewhere.get(link.removeprefix(ISSUER))
        assert page.status_code == 200 and "Ada@Lovelace.dev" in page.text
        done = await elsewhere.post("/account/email/confirm", data=hidden_fields(page.text))
        assert done.status_code == 200 and "Ada@Lovelace.dev" in done.text
        again = await elsewhere.post("/account/email/confirm", data=hidden_fields(page.text))
        assert again.status_code == 400 and "already used" in again.text
    async with runtime.database.session(readonly=True) as session:
        user = await session.scalar(select(User).where(User.sub == ada.sub))
    assert user is not None and user.email == "Ada@Lovelace.dev" and user.email_verified
    [(event, payload)] = await events(runtime)
    assert event == "user.updated" and set(payload["changed"]) >= {"email"}
    fresh = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    async with fresh:
        assert (await sign_in(fresh, ada.email, ada.password)).status_code == 401
        assert (await sign_in(fresh, "ada@lovelace.dev", ada.password)).status_code == 303


async def test_a_new_address_that_is_taken_or_not_an_address_is_refused(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await make_user(runtime, email="grace@example.com")
    await sign_in(http, ada.email, ada.password)
    taken = await post(http, "/account/email", new_email="GRACE@example.com", password=ada.password)
    assert taken.status_code == 400 and "already has an account" in taken.text
    bad = await post(http, "/account/email", new_email="grace", password=ada.password)
    assert bad.status_code == 400 and "Enter an email address" in bad.text
    same = await post(http, "/account/email", new_email=ada.email.upper(), password=ada.password)
    assert same.status_code == 400 and "already your address" in same.text
    for token in ("", "x", "토큰", "A" * 500):
        page = await http.get("/account/email/confirm", params={"token": token})
        assert page.status_code == 400 and "not valid" in page.text
    assert await mails(runtime) == []
