"""The console's applications, users and administrators pages: search, detail, and each
change with a fresh TOTP code (the step-up and the change audited), refusals shown on
the page with the reason, bad input answered with a page, never a 500. English and
Korean. SQLite and PostgreSQL, frozen clock."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from onepass.accounts import service as accounts
from onepass.accounts.models import LoginSession, User
from onepass.accounts.passwords import PasswordHasher
from onepass.clients.models import OAuthApplication
from onepass.clock import FrozenClock
from onepass.oauth.models import Consent
from onepass.operators.models import ActionRequestNonce
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, AdminInfo, UserInfo, make_admin, make_rp, make_user
from tests.functional.admin.test_console import audit_rows, code_now, csrf_token, signed_in
from tests.webhook_helpers import Receiver, make_webhook_app

NEW_URI = "https://notes.example.com/callback-2"


@pytest.fixture
def web(api: httpx.AsyncClient) -> httpx.AsyncClient:
    return api


async def change(
    web: httpx.AsyncClient,
    admin: AdminInfo,
    clock: FrozenClock,
    page: httpx.Response,
    url: str,
    **fields: str,
) -> httpx.Response:
    """Post a change's form with the next TOTP step's code (never the sign-in's)."""
    clock.advance(30)
    data = {"csrf_token": csrf_token(page), "totp_code": code_now(admin, clock), **fields}
    return await web.post(url, data=data)


async def application(rt: Runtime, client_id: str) -> OAuthApplication:
    async with rt.database.session() as session:
        found = await session.scalar(
            select(OAuthApplication).where(OAuthApplication.client_id == client_id)
        )
        assert found is not None
        return found


async def outcomes(rt: Runtime, action: str) -> list[tuple[str, str]]:
    return [(r.outcome, r.target) for r in await audit_rows(rt, action)]


def as_form(app: OAuthApplication) -> dict[str, str]:
    """The edit form's fields as the page fills them in: the registration as it is."""
    return {
        "client_name": app.client_name,
        "redirect_uris": "\n".join(app.redirect_uris),
        "post_logout_redirect_uris": "\n".join(app.post_logout_redirect_uris),
        "grant_types": " ".join(app.grant_types),
        "scope": app.scope,
        "token_endpoint_auth_method": app.token_endpoint_auth_method,
        "webhook_url": app.webhook_url or "",
        "webhook_events": " ".join(app.webhook_events),
        **({"first_party": "on"} if app.first_party else {}),
    }


# -- applications ---------------------------------------------------------------------


async def test_applications_search_by_name_or_client_id_finds_the_application(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    notes = await make_rp(rt, name="Example Notes")
    other = await make_rp(rt, name="Billing")
    await signed_in(web, admin, clock)
    every = await web.get("/admin/applications")
    assert every.status_code == 200
    assert notes.client_id in every.text and other.client_id in every.text
    by_name = await web.get("/admin/applications", params={"q": "notes"})
    assert notes.client_id in by_name.text and other.client_id not in by_name.text
    by_id = await web.get("/admin/applications", params={"q": other.client_id})
    assert other.client_id in by_id.text and notes.client_id not in by_id.text
    none = await web.get("/admin/applications", params={"q": "nothing like it"})
    assert "No application matches." in none.text
    bad = await web.get("/admin/applications", params={"q": "x" * 300})
    assert bad.status_code == 400 and "Search by a name or a client_id" in bad.text


async def test_application_page_shows_registration_and_webhook_status(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    from tests.functional.admin.test_console import dead_entry

    app = await make_webhook_app(rt, receiver.url("/hook"), name="Example Notes")
    await dead_entry(rt, receiver, app)
    await signed_in(web, admin, clock)
    page = await web.get(f"/admin/applications/{app.client_id}")
    assert page.status_code == 200, page.text[:500]
    assert "Example Notes" in page.text and receiver.url("/hook") in page.text
    assert f"/admin/applications/{app.client_id}/replay" in page.text, "dead: replay link"
    assert f"/admin/webhooks?status=dead&amp;app={app.client_id}" in page.text
    by_id = await web.get(f"/admin/applications/{app.id}")
    assert by_id.status_code == 200 and app.client_id in by_id.text
    missing = await web.get("/admin/applications/no-such-app")
    assert missing.status_code == 404 and "No application with client_id or id" in missing.text
    rp = await make_rp(
        rt,
        name="Logged out",
        backchannel_logout_uri="https://rp.example/bcl",
        backchannel_logout_session_required=True,
    )
    shown = await web.get(f"/admin/applications/{rp.client_id}")
    assert "Back-channel logout URI" in shown.text and "https://rp.example/bcl" in shown.text
    assert "one logout token per session, with its sid" in shown.text
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", {"kid": "bank-key-1"})
    bank = await make_rp(
        rt, name="Bank", profile="fapi2", jwks={"keys": [key.as_dict(private=False)]}
    )
    fapi = await web.get(f"/admin/applications/{bank.client_id}")
    facts = fapi.text.replace("\n", "")
    assert "FAPI 2.0 (<code>fapi2</code>)" in facts and "bank-key-1" in facts
    for fact in (
        "Authorization requests only by PAR</dt><dd>yes",
        "Tokens only with a DPoP proof</dt><dd>yes",
        "Authorization requests only as signed request objects</dt><dd>no",
        "ID tokens signed with</dt><dd><code>ES256</code>",
        "<code>private_key_jwt</code>",
    ):
        assert fact in facts, fact
    plain = await web.get(f"/admin/applications/{rp.client_id}")
    assert "Tokens only with a DPoP proof</dt><dd>no" in plain.text
    assert "1pass default" in plain.text


async def test_application_edit_with_a_fresh_code_changes_redirect_uris_and_audits(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt, name="Example Notes")
    await signed_in(web, admin, clock)
    form = await web.get(f"/admin/applications/{rp.client_id}/edit")
    assert form.status_code == 200 and REDIRECT_URI in form.text
    fields = as_form(await application(rt, rp.client_id)) | {
        "client_name": "Example Notes 2",
        "redirect_uris": NEW_URI,
        "post_logout_redirect_uris": "",
    }
    url = f"/admin/applications/{rp.client_id}/edit"
    response = await change(web, admin, clock, form, url, **fields)
    assert response.status_code == 303, response.text[:800]
    assert response.headers["location"] == f"/admin/applications/{rp.client_id}?done=updated"
    changed = await application(rt, rp.client_id)
    assert changed.redirect_uris == [NEW_URI] and changed.client_name == "Example Notes 2"
    assert changed.post_logout_redirect_uris == []
    shown = await web.get(response.headers["location"])
    assert "The application was changed." in shown.text and NEW_URI in shown.text
    assert await outcomes(rt, "step_up:clients.update") == [("ok", rp.client_id)]
    [done] = await audit_rows(rt, "clients.update")
    assert done.outcome == "ok" and done.via == "console"
    assert set(done.detail["changed"]) == {
        "client_name",
        "redirect_uris",
        "post_logout_redirect_uris",
    }
    async with rt.database.session() as session:
        [nonce] = list(await session.scalars(select(ActionRequestNonce)))
    assert nonce.action == "clients.update" and nonce.target == rp.client_id
    assert nonce.used_at is not None


async def test_application_edit_sets_the_privacy_policy_and_terms_shown_on_its_page(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt, name="Example Notes", tos_uri="https://rp.example/terms")
    await signed_in(web, admin, clock)
    url = f"/admin/applications/{rp.client_id}/edit"
    form = await web.get(url)
    assert 'id="tos_uri" name="tos_uri" type="text" value="https://rp.example/terms"' in form.text
    fields = as_form(await application(rt, rp.client_id)) | {
        "policy_uri": "https://rp.example/privacy",
        "tos_uri": "",
    }
    response = await change(web, admin, clock, form, url, **fields)
    assert response.status_code == 303, response.text[:800]
    changed = await application(rt, rp.client_id)
    assert changed.policy_uri == "https://rp.example/privacy" and changed.tos_uri is None
    [done] = await audit_rows(rt, "clients.update")
    assert set(done.detail["changed"]) == {"policy_uri", "tos_uri"}
    shown = await web.get(response.headers["location"])
    assert "<dt>Privacy policy</dt><dd><code>https://rp.example/privacy</code></dd>" in shown.text
    assert "<dt>Terms of service</dt><dd>—</dd>" in shown.text


async def test_application_edit_refused_shows_the_form_again_with_the_reason(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    login_code = code_now(admin, clock)
    await signed_in(web, admin, clock)
    url = f"/admin/applications/{rp.client_id}/edit"
    form = await web.get(url)
    before = await application(rt, rp.client_id)
    same = as_form(before)

    nothing = await change(web, admin, clock, form, url, **same)
    assert nothing.status_code == 400 and "Nothing to change" in nothing.text
    bad_uri = await change(web, admin, clock, form, url, **(same | {"redirect_uris": "not a uri"}))
    assert bad_uri.status_code == 400, bad_uri.text[:500]
    assert "Nothing was changed." in bad_uri.text and "not a uri" in bad_uri.text, "kept"
    reused = await web.post(
        url,
        data={"csrf_token": csrf_token(form), "totp_code": login_code, **same, "client_name": "X"},
    )
    assert reused.status_code == 401 and "already used" in reused.text
    no_code = await web.post(url, data={"csrf_token": csrf_token(form), **same, "client_name": "X"})
    assert no_code.status_code == 400 and "6-digit code" in no_code.text
    no_csrf = await web.post(url, data={"totp_code": "123456", "client_name": "X"})
    assert no_csrf.status_code == 403 and "This form has expired" in no_csrf.text

    after = await application(rt, rp.client_id)
    assert after.redirect_uris == before.redirect_uris and after.client_name == before.client_name
    assert [o for o, _ in await outcomes(rt, "clients.update")] == ["failed"]
    assert [o for o, _ in await outcomes(rt, "step_up:clients.update")] == ["ok", "denied"]


async def test_application_rotate_secret_shows_it_once_with_the_grace(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    await signed_in(web, admin, clock)
    url = f"/admin/applications/{rp.client_id}/rotate_secret"
    page = await web.get(f"/admin/applications/{rp.client_id}")
    assert "Rotate the client secret" in page.text
    bad = await change(web, admin, clock, page, url, grace="forever")
    assert bad.status_code == 400 and "The grace is a duration" in bad.text
    too_long = await change(web, admin, clock, page, url, grace="31d")
    assert too_long.status_code == 400
    assert await audit_rows(rt, "step_up:clients.rotate_secret") == [], "no code spent"

    done = await change(web, admin, clock, page, url, grace="24h")
    assert done.status_code == 200, done.text[:500]
    assert done.headers["cache-control"] == "no-store"
    assert "shown this once" in done.text and "keeps verifying until" in done.text
    rotated = await application(rt, rp.client_id)
    assert rotated.previous_secret_expires_at is not None
    assert (rotated.previous_secret_expires_at - clock.now()).total_seconds() == 86400
    secret = done.text.split('<pre id="client-secret">')[1].split("</pre>")[0]
    assert rp.client_secret is not None and secret != rp.client_secret and len(secret) > 20
    # The new secret works at the token endpoint (client_credentials is not allowed to
    # this client, so the answer is about the grant, not the credentials).
    token = await web.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(rp.client_id, secret),
    )
    assert token.json().get("error") != "invalid_client", token.text
    [audited] = await audit_rows(rt, "clients.rotate_secret")
    assert audited.outcome == "ok" and audited.detail["grace_seconds"] == 86400
    assert secret not in str(audited.detail)


async def test_application_disable_then_enable_each_with_a_fresh_code(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    await signed_in(web, admin, clock)
    path = f"/admin/applications/{rp.client_id}"
    page = await web.get(path)
    off = await change(web, admin, clock, page, path + "/disable")
    assert off.status_code == 303 and off.headers["location"] == path + "?done=disabled"
    assert (await application(rt, rp.client_id)).disabled_at is not None
    shown = await web.get(off.headers["location"])
    assert "The application is disabled." in shown.text and "Enable this application" in shown.text
    listed = await web.get("/admin/applications")
    assert "status-dead" in listed.text
    on = await change(web, admin, clock, shown, path + "/enable")
    assert on.status_code == 303
    assert (await application(rt, rp.client_id)).disabled_at is None
    assert await outcomes(rt, "clients.disable") == [("ok", rp.client_id)]
    assert await outcomes(rt, "clients.enable") == [("ok", rp.client_id)]
    gone = await change(web, admin, clock, page, "/admin/applications/nope/disable")
    assert gone.status_code == 404 and "No application" in gone.text


# -- users ----------------------------------------------------------------------------


async def with_session_and_consent(rt: Runtime, user: UserInfo, client_id: str) -> None:
    async with rt.database.session() as session:
        row = await session.get(User, user.id)
        assert row is not None
        await accounts.create_login_session(
            session,
            rt.hasher,
            rt.clock,
            row,
            ttl=rt.settings.login_session_ttl,
            amr=["pwd"],
            acr=accounts.ACR_PASSWORD,
            ip_address="192.0.2.7",
            user_agent="Firefox",
        )
        app = await session.scalar(
            select(OAuthApplication).where(OAuthApplication.client_id == client_id)
        )
        assert app is not None
        session.add(
            Consent(
                user_id=user.id,
                oauth_application_id=app.id,
                scopes=["openid", "email"],
                granted_at=rt.clock.now(),
            )
        )


async def live_sessions(rt: Runtime, user_id: int) -> list[LoginSession]:
    async with rt.database.session() as session:
        return await accounts.live_sessions(session, rt.clock, user_id)


async def test_users_search_by_email_sub_or_id_and_detail_shows_sessions_and_consents(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    ada = await make_user(rt, email="ada@example.com")
    bob = await make_user(rt, email="bob@example.com")
    rp = await make_rp(rt, name="Example Notes")
    await with_session_and_consent(rt, ada, rp.client_id)
    await signed_in(web, admin, clock)
    for query in ("ada@", ada.sub, str(ada.id)):
        found = await web.get("/admin/users", params={"q": query})
        assert found.status_code == 200
        assert "ada@example.com" in found.text and "bob@example.com" not in found.text, query
    assert "No user matches." in (await web.get("/admin/users", params={"q": "zed"})).text
    bad = await web.get("/admin/users", params={"q": "x" * 400})
    assert bad.status_code == 400

    page = await web.get(f"/admin/users/{ada.id}")
    assert page.status_code == 200
    assert ada.sub in page.text and "192.0.2.7" in page.text and "Firefox" in page.text
    assert rp.client_id in page.text and "openid email" in page.text
    assert "this user" in page.text, "the canonical user is the user"
    by_email = await web.get(f"/admin/users/{quote(bob.email)}")
    assert by_email.status_code == 200 and bob.sub in by_email.text
    missing = await web.get("/admin/users/nobody@example.com")
    assert missing.status_code == 404 and "No user with id, sub or email" in missing.text


async def test_user_end_sessions_with_a_fresh_code_ends_them(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    ada = await make_user(rt)
    rp = await make_rp(rt)
    await with_session_and_consent(rt, ada, rp.client_id)
    await signed_in(web, admin, clock)
    path = f"/admin/users/{ada.id}"
    page = await web.get(path)
    done = await change(web, admin, clock, page, path + "/revoke_sessions")
    assert done.status_code == 303 and done.headers["location"] == path + "?done=sessions"
    assert await live_sessions(rt, ada.id) == []
    shown = await web.get(done.headers["location"])
    assert "sessions ended" in shown.text and "Firefox" not in shown.text
    [audited] = await audit_rows(rt, "users.revoke_sessions")
    assert audited.outcome == "ok" and audited.detail == {
        "sessions_ended": 1,
        "logouts_enqueued": 0,
    }
    assert await outcomes(rt, "step_up:users.revoke_sessions") == [("ok", str(ada.id))]
    assert len(await live_sessions(rt, admin.id)) == 1, "the console session is not the user's"


async def test_user_disable_and_enable_with_fresh_codes(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    ada = await make_user(rt)
    await signed_in(web, admin, clock)
    path = f"/admin/users/{ada.id}"
    page = await web.get(path)
    off = await change(web, admin, clock, page, path + "/disable")
    assert off.status_code == 303, off.text[:500]
    shown = await web.get(off.headers["location"])
    assert "The user is disabled" in shown.text and "Enable this user" in shown.text
    on = await change(web, admin, clock, shown, path + "/enable")
    assert on.status_code == 303
    async with rt.database.session() as session:
        row = await session.get(User, ada.id)
        assert row is not None and row.disabled_at is None
    assert await outcomes(rt, "users.disable") == [("ok", str(ada.id))]
    assert await outcomes(rt, "users.enable") == [("ok", str(ada.id))]


async def test_user_set_password_refusals_then_the_new_password_signs_in(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    ada = await make_user(rt)
    await signed_in(web, admin, clock)
    path = f"/admin/users/{ada.id}"
    url = path + "/set_password"
    page = await web.get(path)
    differ = await change(web, admin, clock, page, url, password="a" * 20, password_again="b")
    assert differ.status_code == 400 and "The two passwords differ." in differ.text
    weak = await change(web, admin, clock, page, url, password="tiny1", password_again="tiny1")
    assert weak.status_code == 400 and "at least" in weak.text
    assert "Nothing was changed." in weak.text and "tiny1" not in weak.text, "never shown"
    new = "a brand new passphrase"
    done = await change(web, admin, clock, page, url, password=new, password_again=new)
    assert done.status_code == 303 and done.headers["location"] == path + "?done=password"
    passwords = PasswordHasher(rt.settings)
    assert await accounts.check_password(rt.database, passwords, ada.email, new) is not None
    assert await accounts.check_password(rt.database, passwords, ada.email, ada.password) is None
    assert [o for o, _ in await outcomes(rt, "users.set_password")] == ["failed", "ok"]
    login = await web.get("/admin/audit", params={"action": "users.set_password"})
    assert "users.set_password" in login.text and new not in login.text


async def test_user_revoke_consent_with_a_fresh_code(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    ada = await make_user(rt)
    rp = await make_rp(rt)
    await with_session_and_consent(rt, ada, rp.client_id)
    await signed_in(web, admin, clock)
    path = f"/admin/users/{ada.id}"
    page = await web.get(path)
    assert "Revoke a consent" in page.text
    empty = await change(web, admin, clock, page, path + "/revoke_consent", client_id="")
    assert empty.status_code == 400 and "Choose the application" in empty.text
    unknown = await change(web, admin, clock, page, path + "/revoke_consent", client_id="nope")
    assert unknown.status_code == 404 and "Nothing was changed." in unknown.text
    done = await change(web, admin, clock, page, path + "/revoke_consent", client_id=rp.client_id)
    assert done.status_code == 303, done.text[:500]
    async with rt.database.session() as session:
        assert list(await session.scalars(select(Consent))) == []
    assert await outcomes(rt, "users.revoke_consent") == [("ok", f"{ada.id}/{rp.client_id}")]


# -- administrators -------------------------------------------------------------------


async def test_administrators_disable_enable_reset_totp_and_not_oneself(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    other = await make_admin(rt, email="second@example.com")
    await signed_in(web, admin, clock)
    listed = await web.get("/admin/administrators")
    assert listed.status_code == 200
    assert admin.email in listed.text and other.email in listed.text and "(you)" in listed.text

    mine = f"/admin/administrators/{admin.email}"
    own = await change(web, admin, clock, await web.get(mine), mine + "/disable")
    assert own.status_code == 409 and "your own account" in own.text
    assert "Nothing was changed." in own.text

    path = f"/admin/administrators/{other.email}"
    page = await web.get(path)
    off = await change(web, admin, clock, page, path + "/disable")
    assert off.status_code == 303 and off.headers["location"] == path + "?done=disabled"
    on = await change(web, admin, clock, page, path + "/enable")
    assert on.status_code == 303
    reset = await change(web, admin, clock, page, path + "/reset_totp")
    assert reset.status_code == 303
    shown = await web.get(reset.headers["location"])
    assert "second factor was removed" in shown.text and "Reset the second factor" not in shown.text
    async with rt.database.session() as session:
        row = await session.get(User, other.id)
        assert row is not None and row.disabled_at is None and row.totp_secret_encrypted is None
    assert [o for o, _ in await outcomes(rt, "admins.disable")] == ["failed", "ok"]
    assert await outcomes(rt, "admins.enable") == [("ok", "second@example.com")]
    assert await outcomes(rt, "admins.reset_totp") == [("ok", "second@example.com")]
    missing = await web.get("/admin/administrators/nobody@example.com")
    assert missing.status_code == 404


# -- language, signed out -------------------------------------------------------------


async def test_management_pages_speak_korean_to_a_korean_browser(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    ada = await make_user(rt)
    await signed_in(web, admin, clock)
    korean = {"accept-language": "ko-KR,ko;q=0.9,en;q=0.5"}
    for url, heading in (
        ("/admin/applications", "애플리케이션"),
        (f"/admin/applications/{rp.client_id}", "클라이언트 시크릿 교체"),
        (f"/admin/users/{ada.id}", "세션"),
        ("/admin/administrators", "관리자"),
    ):
        page = await web.get(url, headers=korean)
        assert page.status_code == 200, url
        assert '<html lang="ko">' in page.text and heading in page.text, url
        assert page.headers["content-language"] == "ko"
    english = await web.get("/admin/applications")
    assert '<html lang="en">' in english.text and "Applications" in english.text


async def test_management_pages_signed_out_go_to_the_sign_in(web: httpx.AsyncClient) -> None:
    for url in ("/admin/applications", "/admin/users/1", "/admin/administrators"):
        page = await web.get(url)
        assert page.status_code == 303 and page.headers["location"].startswith("/admin/login")
    posted = await web.post("/admin/users/1/disable", data={"totp_code": "123456"})
    assert posted.status_code == 303 and "/admin/login" in posted.headers["location"]


HUGE = "9" * 30


async def test_management_pages_hostile_references_are_pages_never_500(
    web: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    await signed_in(web, admin, clock)
    page = await web.get("/admin/applications")
    refs = (HUGE, "a%00b", "%C2%B2", "x" * 400, "%20")
    for ref in refs:
        for url in (
            f"/admin/applications/{ref}",
            f"/admin/applications/{ref}/edit",
            f"/admin/users/{ref}",
            f"/admin/administrators/{ref}",
        ):
            shown = await web.get(url)
            assert shown.status_code in (400, 404), (url, shown.status_code)
        for url in (
            f"/admin/applications/{ref}/edit",
            f"/admin/applications/{ref}/rotate_secret",
            f"/admin/applications/{ref}/disable",
            f"/admin/users/{ref}/disable",
            f"/admin/users/{ref}/set_password",
            f"/admin/users/{ref}/revoke_consent",
            f"/admin/administrators/{ref}/reset_totp",
        ):
            posted = await web.post(
                url, data={"csrf_token": csrf_token(page), "totp_code": "123456", "grace": HUGE}
            )
            assert posted.status_code in (400, 404), (url, posted.status_code)
    ada = await make_user(rt)
    repeated = await web.post(
        f"/admin/users/{ada.id}/disable",
        content=f"csrf_token={csrf_token(page)}&totp_code=1&totp_code=2",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 403 and "Nothing was changed." in repeated.text
    for query in ({"q": "a\x00b"}, {"q": HUGE}, {"q": "²"}):
        for url in ("/admin/users", "/admin/applications"):
            assert (await web.get(url, params=query)).status_code in (200, 400), (url, query)
    assert await audit_rows(rt, "users.disable") == []
