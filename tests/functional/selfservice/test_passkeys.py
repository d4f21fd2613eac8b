"""Passkeys for the people who sign in: added on the account page (the first one
comes with recovery codes and a mail), signing in without a password at ``/login``
and ``/account``, or as the second step after one; each answer accepted once, a
counter that goes back refused, every bad answer a clear page; removed with the
password, and all of them by an operator's reset. Over HTTP with a software
authenticator (``tests.passkeys``), on SQLite and on PostgreSQL with Redis."""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from onepass.accounts.models import LoginSession, Passkey, RecoveryCode, UsedPasskeyChallenge
from onepass.app import OnePass
from onepass.mail.models import MailOutboxEntry
from onepass.operators.audit import Actor
from onepass.playbook import users as playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import UserInfo, make_rp, make_user
from tests.flow import authorize_url, hidden_fields, submit_consent, submit_login
from tests.functional.oauth.test_code_flow import rp_client
from tests.functional.selfservice.test_account_page import sign_in
from tests.passkeys import SoftAuthenticator, ceremony, origin_of


@pytest.fixture
async def ada(runtime: Runtime) -> UserInfo:
    return await make_user(runtime, name="Ada")


def browser(app: OnePass) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)


async def add_passkey(
    http: httpx.AsyncClient,
    authenticator: SoftAuthenticator,
    name: str = "my phone",
    password: str = "correct horse battery",
) -> httpx.Response:
    page = await http.get("/account")
    assert page.status_code == 200
    form = ceremony(page.text, "register")
    assert form.action == "/account/passkeys"
    answer = authenticator.create(form.options)
    return await http.post(
        form.action,
        data={**form.fields, "credential": answer, "name": name, "password": password},
    )


async def mail_kinds(runtime: Runtime) -> list[str]:
    async with runtime.database.session(readonly=True) as session:
        return list(
            await session.scalars(select(MailOutboxEntry.kind).order_by(MailOutboxEntry.id))
        )


async def count(runtime: Runtime, model: type, **where: object) -> int:
    async with runtime.database.session(readonly=True) as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def test_the_first_passkey_comes_with_recovery_codes_and_a_mail(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    page = await http.get("/account")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert '<script src="/static/passkey.js" defer></script>' in page.text
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    options = ceremony(page.text, "register").options
    assert options["rp"] == {"id": "testserver", "name": "1pass"}  # ONEPASS_BRAND_NAME
    assert options["authenticatorSelection"]["residentKey"] == "preferred"  # type: ignore[index]

    added = await add_passkey(http, authenticator, "  Ada's    phone  ")
    assert added.status_code == 200 and "Your recovery codes" in added.text, added.text[-1500:]
    account = await http.get("/account")
    assert "Ada&#39;s phone" in account.text and "Recovery codes left: 10." in account.text
    assert "signing in with the password asks for one of your passkeys" in account.text
    assert await mail_kinds(runtime) == ["passkey_added"]

    second = await add_passkey(http, SoftAuthenticator(origin_of(ISSUER)), "laptop")
    assert second.status_code == 303 and second.headers["location"] == "/account?done=passkey-added"
    assert await count(runtime, RecoveryCode, user_id=ada.id) == 10, "the codes it has stand"
    excluded = ceremony((await http.get("/account")).text, "register").options
    assert len(excluded["excludeCredentials"]) == 2  # type: ignore[arg-type]


async def test_a_passkey_signs_in_to_an_rp_without_a_password(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as setup:
        await sign_in(setup, ada.email, ada.password)
        assert (await add_passkey(setup, authenticator)).status_code == 200
    client = await make_rp(runtime)
    async with browser(app) as http, rp_client(app, client.client_id, client.client_secret) as rp:
        jwks = (await http.get("/.well-known/jwks.json")).json()
        verifier = secrets.token_urlsafe(48)
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        page = await http.get(url)
        form = ceremony(page.text, "sign-in")
        assert form.options["userVerification"] == "required"
        assert not form.options.get("allowCredentials")  # discoverable: no address typed
        done = await http.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        if done.status_code == 200:
            done = await submit_consent(http, done)
        assert done.status_code == 303, done.text[:300]
        callback = done.headers["location"]
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims
    assert claims["sub"] == ada.sub
    assert claims["amr"] == ["hwk", "user", "mfa"] and claims["acr"] == "urn:1pass:acr:mfa"
    async with runtime.database.session(readonly=True) as session:
        key = await session.scalar(select(Passkey).where(Passkey.user_id == ada.id))
    assert key is not None and key.sign_count == 1 and key.last_used_at is not None


async def test_a_synced_passkey_is_said_to_be_a_software_key(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER), synced=True)
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, authenticator)
        assert "synced to your other devices" in (await http.get("/account")).text
    async with browser(app) as http:
        page = await http.get("/account")
        form = ceremony(page.text, "sign-in")
        done = await http.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        assert done.status_code == 303 and done.headers["location"] == "/account?done=signed-in"
    async with runtime.database.session(readonly=True) as session:
        amr = await session.scalar(
            select(LoginSession.amr)
            .where(LoginSession.user_id == ada.id)
            .order_by(LoginSession.id.desc())
        )
    assert amr == ["swk", "user", "mfa"]


async def test_with_a_passkey_the_password_asks_for_it_next(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as setup:
        await sign_in(setup, ada.email, ada.password)
        await add_passkey(setup, authenticator)
    client = await make_rp(runtime)
    async with browser(app) as http:
        page = await http.get(authorize_url(client))
        step = await submit_login(http, page, ada.email, ada.password)
        assert step.status_code == 200 and "Two-step verification" in step.text
        assert "Enter one of your recovery codes." in step.text  # no authenticator app
        form = ceremony(step.text, "second-step")
        assert form.action == "/login/second-factor"
        assert len(form.options["allowCredentials"]) == 1  # type: ignore[arg-type]
        done = await http.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        if done.status_code == 200:
            done = await submit_consent(http, done)
        assert done.status_code == 303, done.text[:300]
        assert parse_qs(urlsplit(done.headers["location"]).query)["code"]
    async with runtime.database.session(readonly=True) as session:
        amr = await session.scalar(
            select(LoginSession.amr)
            .where(LoginSession.user_id == ada.id)
            .order_by(LoginSession.id.desc())
        )
    assert amr == ["pwd", "hwk", "mfa"]


async def test_an_answer_is_accepted_once(app: OnePass, runtime: Runtime, ada: UserInfo) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, authenticator)
    async with browser(app) as http:
        page = await http.get("/account")
        form = ceremony(page.text, "sign-in")
        data = {**form.fields, "credential": authenticator.get(form.options)}
        first = await http.post(form.action, data=data)
        assert first.status_code == 303
    before = await count(runtime, LoginSession, user_id=ada.id)
    async with browser(app) as attacker:
        await attacker.get("/account")  # a CSRF cookie of its own
        page = await attacker.get("/account")
        replay = await attacker.post(
            form.action,
            data={
                **ceremony(page.text, "sign-in").fields,
                "passkey_state": data["passkey_state"],
                "credential": data["credential"],
            },
        )
        assert replay.status_code == 401
        assert "That passkey was not accepted" in replay.text
    assert await count(runtime, LoginSession, user_id=ada.id) == before
    assert await count(runtime, UsedPasskeyChallenge) >= 1


async def test_bad_answers_get_a_clear_page_and_sign_in_nobody(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, authenticator)
    sessions = await count(runtime, LoginSession, user_id=ada.id)
    async with browser(app) as http:
        page = await http.get("/account")
        form = ceremony(page.text, "sign-in")
        good = authenticator.get(form.options)
        other_challenge = dict(
            form.options, challenge="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )
        cases = {
            "not JSON": "{{{",
            "a JSON list": "[]",
            "empty object": "{}",
            "bad base64": json.dumps({**json.loads(good), "rawId": "!!!", "id": "!!!"}),
            "unknown credential": json.dumps({**json.loads(good), "rawId": "AAAA", "id": "AAAA"}),
            "another challenge": authenticator.get(other_challenge),
            "another origin": authenticator.get(form.options, origin="https://evil.example"),
            "not verified on the device": authenticator.get(form.options, verified=False),
            "bad user handle": json.dumps(
                {
                    **json.loads(authenticator.get(form.options)),
                    "response": {
                        **json.loads(authenticator.get(form.options))["response"],
                        "userHandle": "%%%",
                    },
                }
            ),
        }
        for case, credential in cases.items():
            answer = await http.post(form.action, data={**form.fields, "credential": credential})
            assert answer.status_code == 401, case
            assert "That passkey was not accepted" in answer.text, case
        altered = await http.post(
            form.action,
            data={
                **form.fields,
                "passkey_state": form.fields["passkey_state"][:-3] + "AAA",
                "credential": good,
            },
        )
        assert altered.status_code == 401
        no_csrf = await http.post(
            form.action, data={"passkey_state": form.fields["passkey_state"], "credential": good}
        )
        assert no_csrf.status_code == 403
    assert await count(runtime, LoginSession, user_id=ada.id) == sessions


async def test_a_counter_that_goes_back_is_a_cloned_authenticator(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, authenticator)
    async with browser(app) as http:
        for _ in range(2):
            form = ceremony((await http.get("/account?done=signed-out")).text, "sign-in")
            ok = await http.post(
                form.action, data={**form.fields, "credential": authenticator.get(form.options)}
            )
            assert ok.status_code == 303
            http.cookies.clear()
        authenticator.credentials[0].sign_count = 0  # a copy made before those two
        form = ceremony((await http.get("/account")).text, "sign-in")
        clone = await http.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        assert clone.status_code == 401


async def test_the_second_step_takes_only_that_accounts_passkey(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    mallory = await make_user(runtime, email="mallory@example.com", name="Mallory")
    adas, mallorys = SoftAuthenticator(origin_of(ISSUER)), SoftAuthenticator(origin_of(ISSUER))
    for who, authenticator in ((ada, adas), (mallory, mallorys)):
        async with browser(app) as http:
            await sign_in(http, who.email, who.password)
            await add_passkey(http, authenticator)
    async with browser(app) as http:
        step = await sign_in(http, ada.email, ada.password)
        form = ceremony(step.text, "second-step")
        assert form.action == "/account/login/second-factor"
        wrong = await http.post(
            form.action,
            data={
                **form.fields,
                "credential": mallorys.get(form.options | {"allowCredentials": []}),
            },
        )
        assert wrong.status_code == 401 and "That passkey was not accepted" in wrong.text
        right = await http.post(
            form.action,
            data={
                **ceremony(wrong.text, "second-step").fields,
                "credential": adas.get(form.options),
            },
        )
        assert right.status_code == 401, "the first page's challenge, on the second page's form"
        form = ceremony(wrong.text, "second-step")
        right = await http.post(
            form.action, data={**form.fields, "credential": adas.get(form.options)}
        )
        assert right.status_code == 303 and right.headers["location"] == "/account?done=signed-in"


async def test_registration_refuses_bad_answers_and_keeps_nothing(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    page = await http.get("/account")
    form = ceremony(page.text, "register")
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    good = authenticator.create(form.options)
    foreign = SoftAuthenticator("https://evil.example").create(form.options)
    for credential in ("", "{}", "not json", "y" * 10_000, "[" * 1100 + "]" * 1100, foreign):
        refused = await http.post(
            form.action,
            data={**form.fields, "credential": credential, "name": "x", "password": ada.password},
        )
        assert refused.status_code == 400 and "The passkey was not added" in refused.text
    altered = await http.post(
        form.action,
        data={
            **form.fields,
            "passkey_state": "A" + form.fields["passkey_state"][1:],
            "credential": good,
            "password": ada.password,
        },
    )
    assert altered.status_code == 400
    assert await count(runtime, Passkey) == 0 and await mail_kinds(runtime) == []
    with_password = {**form.fields, "credential": good, "password": ada.password}
    no_password = await http.post(form.action, data={**with_password, "password": ""})
    assert no_password.status_code == 401, "a session alone adds no sign-in factor"
    assert (await http.post(form.action, data=with_password)).status_code == 200
    again = await http.post(form.action, data=with_password)
    assert again.status_code == 400, "one answer registers once"
    assert await count(runtime, Passkey) == 1
    async with browser_of(http) as signed_out:
        own = hidden_fields((await signed_out.get("/account")).text)
        refused = await signed_out.post(
            form.action, data={**form.fields, **own, "credential": good}
        )
        assert refused.status_code == 401 and "Sign in again" in refused.text


def browser_of(http: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=http._transport, base_url=ISSUER)


async def test_removing_needs_the_password_and_the_last_one_takes_the_codes(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    await add_passkey(http, authenticator)
    async with runtime.database.session(readonly=True) as session:
        key_id = await session.scalar(select(Passkey.id).where(Passkey.user_id == ada.id))
    page = await http.get("/account")
    csrf_token = ceremony(page.text, "register").fields["csrf_token"]
    wrong = await http.post(
        "/account/passkeys/remove",
        data={"csrf_token": csrf_token, "passkey_id": str(key_id), "password": "nope"},
    )
    assert wrong.status_code == 401 and "The current password is not right." in wrong.text
    for bogus in ("", "abc", "99999999", "1" * 40, "²", "١٢"):
        missing = await http.post(
            "/account/passkeys/remove",
            data={"csrf_token": csrf_token, "passkey_id": bogus, "password": ada.password},
        )
        assert missing.status_code == 400 and "There is no such passkey." in missing.text
    removed = await http.post(
        "/account/passkeys/remove",
        data={"csrf_token": csrf_token, "passkey_id": str(key_id), "password": ada.password},
    )
    assert removed.status_code == 303
    assert removed.headers["location"] == "/account?done=passkey-removed"
    assert await count(runtime, Passkey) == 0 and await count(runtime, RecoveryCode) == 0
    assert await mail_kinds(runtime) == ["passkey_added", "passkey_removed"]
    async with browser_of(http) as other:
        form = ceremony((await other.get("/account")).text, "sign-in")
        gone = await other.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        assert gone.status_code == 401


async def test_an_operators_reset_removes_the_passkeys_too(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await sign_in(http, ada.email, ada.password)
    await add_passkey(http, SoftAuthenticator(origin_of(ISSUER)))
    result = await playbook.reset_second_factor(runtime, Actor.cli(), ada.email)
    assert result["had_second_factor"] is True and result["sessions_ended"] >= 1
    assert await count(runtime, Passkey) == 0 and await count(runtime, RecoveryCode) == 0


async def test_an_administrator_cannot_sign_in_at_login_with_a_passkey(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    """An administrator is an account for the console only: a passkey it had before it
    was made one signs in nowhere on the end-user pages."""
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, authenticator)
    async with runtime.database.session() as session:
        from onepass.accounts.models import User

        user = await session.get(User, ada.id)
        assert user is not None
        user.is_admin = True
    async with browser(app) as http:
        form = ceremony((await http.get("/account")).text, "sign-in")
        refused = await http.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        assert refused.status_code == 401 and "That passkey was not accepted" in refused.text


async def test_an_issuer_on_an_ip_address_offers_no_passkeys(
    runtime: Runtime, ada: UserInfo
) -> None:
    """Browsers refuse an IP address as a WebAuthn RP ID: the pages say so and offer no
    ceremony (and load no script)."""
    from onepass.app import create_app

    issuer = "http://127.0.0.1:8000"
    application = create_app(runtime.settings.model_copy(update={"issuer": issuer}))
    async with (
        application.api.router.lifespan_context(application.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=issuer) as http,
    ):
        login = await http.get("/account")
        assert "data-passkey" not in login.text
        assert "script-src" not in login.headers["content-security-policy"]
        await sign_in(http, ada.email, ada.password)
        page = await http.get("/account")
        assert "data-passkey" not in page.text
        assert "Passkeys need 1pass to be served on a host name" in page.text


async def test_an_rp_that_asks_for_two_steps_lets_a_person_add_a_passkey_to_continue(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    import html as html_module
    import re

    authenticator = SoftAuthenticator(origin_of(ISSUER))
    client = await make_rp(runtime, name="Example Bank", require_second_factor=True)
    async with browser(app) as http, rp_client(app, client.client_id, client.client_secret) as rp:
        verifier = secrets.token_urlsafe(48)
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        setup = await submit_login(http, await http.get(url), ada.email, ada.password)
        assert 'action="/login/enrol"' in setup.text, "the authenticator app, as before"
        form = ceremony(setup.text, "register")
        assert form.action == "/login/enrol/passkey"
        bad = await http.post(form.action, data={**form.fields, "credential": "{}"})
        assert bad.status_code == 400 and "The passkey was not added" in bad.text
        form = ceremony(bad.text, "register")
        codes = await http.post(
            form.action,
            data={**form.fields, "credential": authenticator.create(form.options), "name": "x"},
        )
        assert codes.status_code == 200 and "Your recovery codes" in codes.text
        link = re.search(r'<a id="continue" href="([^"]+)"', codes.text)
        assert link is not None
        consent = await http.get(html_module.unescape(link.group(1)))
        done = await submit_consent(http, consent) if consent.status_code == 200 else consent
        assert done.status_code == 303, done.text[:300]
        token = await rp.fetch_token(
            f"{ISSUER}/token",
            authorization_response=done.headers["location"],
            code_verifier=verifier,
        )
        jwks = (await http.get("/.well-known/jwks.json")).json()
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims
    assert claims["acr"] == "urn:1pass:acr:mfa" and claims["amr"] == ["pwd", "hwk", "mfa"]
    assert await mail_kinds(runtime) == ["passkey_added"]


async def test_a_password_alone_cannot_enrol_a_factor_on_an_account_that_has_one(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    """The second step's pending sign-in (a right password) is no enrolment's: posted
    to the enrolment routes, it is refused, and nothing is added or replaced."""
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    await sign_in(http, ada.email, ada.password)
    await add_passkey(http, authenticator)
    http.cookies.delete("onepass_session")
    client = await make_rp(runtime, require_second_factor=True)
    step = await submit_login(http, await http.get(authorize_url(client)), ada.email, ada.password)
    form = ceremony(step.text, "second-step")
    attacker = SoftAuthenticator(origin_of(ISSUER))
    fake = attacker.create({"rp": {"id": "testserver"}, "user": {"id": "eA"}, "challenge": "AAAA"})
    for path, extra in (
        ("/login/enrol/passkey", {"credential": fake, "passkey_state": "x"}),
        ("/login/enrol", {"code": "000000", "sealed": "x"}),
    ):
        refused = await http.post(path, data={**form.fields, **extra})
        assert refused.status_code == 400, (path, refused.text[:300])
        assert "altered" in refused.text, path
    assert await count(runtime, Passkey) == 1
    assert not any(c.endswith("onepass_session") for c in http.cookies)


async def test_deeply_nested_answers_are_refused_not_a_500(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    nested = "[" * 1100 + "]" * 1100
    page = await http.get("/account")
    form = ceremony(page.text, "sign-in")
    answer = await http.post(form.action, data={**form.fields, "credential": nested})
    assert answer.status_code == 401
    client = await make_rp(runtime)
    login = await http.get(authorize_url(client))
    form = ceremony(login.text, "sign-in")
    answer = await http.post(form.action, data={**form.fields, "credential": nested})
    assert answer.status_code == 401
