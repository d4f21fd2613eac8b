"""Two-step verification for the people who sign in: an authenticator app (TOTP)
enrolled on the account page with recovery codes, asked for after the password at
``/login`` and ``/account``, said in the ID token (``amr``, ``acr``), each code
accepted once, guesses throttled apart from passwords. Over HTTP, on SQLite and on
PostgreSQL with Redis."""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from onepass.app import OnePass
from onepass.mail.models import MailOutboxEntry
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import UserInfo, make_rp, make_user
from tests.flow import authorize_url, hidden_fields, submit_consent, submit_login
from tests.functional.oauth.test_code_flow import rp_client
from tests.functional.selfservice.test_account_page import post, sign_in

FIELD = re.compile(r'<input type="hidden" name="(pending|sealed)" value="([^"]*)">')


def fields(page: str) -> dict[str, str]:
    import html

    return {**hidden_fields(page), **{k: html.unescape(v) for k, v in FIELD.findall(page)}}


def code(secret: str, steps_ahead: int = 1) -> str:
    """A code of a later step than any used yet (each step's code is accepted once)."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30 * steps_ahead)


async def enrol(http: httpx.AsyncClient, user: UserInfo) -> tuple[str, list[str]]:
    """Turn two-step verification on from the account page: the secret and the codes."""
    await sign_in(http, user.email, user.password)
    refused = await post(http, "/account/totp/start")
    assert refused.status_code == 401, "a session alone adds no sign-in factor"
    setup = await post(http, "/account/totp/start", password=user.password)
    assert setup.status_code == 200 and "<svg" in setup.text
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', setup.text)
    assert secret is not None
    wrong = await http.post("/account/totp/confirm", data={**fields(setup.text), "code": "000000"})
    assert wrong.status_code == 400 and "not right" in wrong.text
    new_secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', wrong.text)
    assert new_secret is not None and new_secret.group(1) != secret.group(1)
    done = await http.post(
        "/account/totp/confirm",
        data={**fields(wrong.text), "code": pyotp.TOTP(new_secret.group(1)).now()},
    )
    assert done.status_code == 200 and "Your recovery codes" in done.text
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return new_secret.group(1), codes


async def password_step(
    http: httpx.AsyncClient, runtime: Runtime, user: UserInfo, password: str | None = None
) -> httpx.Response:
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client, prompt="login"))
    return await submit_login(http, page, user.email, password or user.password)


@pytest.fixture
async def ada(runtime: Runtime) -> UserInfo:
    return await make_user(runtime, name="Ada")


async def test_enrolment_turns_it_on_and_mails_the_person(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    await enrol(http, ada)
    page = await http.get("/account")
    assert "Recovery codes left: 10." in page.text and "Turn off two-step verification" in page.text
    async with runtime.database.session(readonly=True) as session:
        kinds = list(await session.scalars(select(MailOutboxEntry.kind)))
    assert kinds == ["factor_added"]


async def test_sign_in_asks_for_the_code_and_the_id_token_says_so(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ISSUER
    ) as setup_browser:
        secret, _ = await enrol(setup_browser, ada)
    client = await make_rp(runtime)
    jwks = None
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
        rp_client(app, client.client_id, client.client_secret) as rp,
    ):
        jwks = (await http.get("/.well-known/jwks.json")).json()
        verifier = secrets.token_urlsafe(48)
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        page = await http.get(url)
        step = await submit_login(http, page, ada.email, ada.password)
        assert step.status_code == 200 and 'action="/login/second-factor"' in step.text
        assert not any(c.endswith("onepass_session") for c in http.cookies), "no session yet"
        wrong = await http.post(
            "/login/second-factor", data={**fields(step.text), "code": "123456"}
        )
        assert wrong.status_code == 401 and "not right" in wrong.text
        right = await http.post(
            "/login/second-factor", data={**fields(wrong.text), "code": code(secret)}
        )
        if right.status_code == 200:
            right = await submit_consent(http, right)
        assert right.status_code == 303, right.text[:300]
        callback = right.headers["location"]
        assert parse_qs(urlsplit(callback).query)["code"]
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "urn:1pass:acr:mfa"


async def test_a_code_works_once_and_so_does_a_recovery_code(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    secret, codes = await enrol(http, ada)
    once = code(secret)
    first = await password_step(http, runtime, ada)
    assert (
        await http.post("/login/second-factor", data={**fields(first.text), "code": once})
    ).status_code in (200, 303)
    second = await password_step(http, runtime, ada)
    replay = await http.post("/login/second-factor", data={**fields(second.text), "code": once})
    assert replay.status_code == 401, "a TOTP code is accepted once"
    recovered = await http.post(
        "/login/second-factor", data={**fields(second.text), "code": codes[0].upper()}
    )
    assert recovered.status_code in (200, 303)
    third = await password_step(http, runtime, ada)
    again = await http.post("/login/second-factor", data={**fields(third.text), "code": codes[0]})
    assert again.status_code == 401, "a recovery code is accepted once"
    assert "Recovery codes left: 9." in (await http.get("/account")).text


async def test_code_guesses_are_throttled_and_a_right_password_does_not_reset_them(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    secret, _ = await enrol(http, ada)
    limit = runtime.settings.login_max_failures_per_account
    statuses = []
    for _ in range(limit):
        step = await password_step(http, runtime, ada)  # a right password each time
        guess = await http.post(
            "/login/second-factor", data={**fields(step.text), "code": "000000"}
        )
        statuses.append(guess.status_code)
    assert statuses == [401] * limit
    step = await password_step(http, runtime, ada)
    blocked = await http.post(
        "/login/second-factor", data={**fields(step.text), "code": code(secret)}
    )
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


async def test_a_pending_sign_in_cannot_be_altered_or_skipped(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    secret, _ = await enrol(http, ada)
    step = await password_step(http, runtime, ada)
    data = fields(step.text)
    altered = await http.post(
        "/login/second-factor",
        data={**data, "pending": data["pending"][:-4] + "AAAA", "code": code(secret)},
    )
    assert altered.status_code == 400 and "altered" in altered.text
    missing = await http.post("/login/second-factor", data={**data, "pending": "", "code": "1"})
    assert missing.status_code == 400
    assert 'action="/account/login"' not in (await http.get("/account")).text, (
        "the session made at enrolment is untouched"
    )


async def test_the_account_sign_in_asks_for_the_code_too(
    app: OnePass, runtime: Runtime, ada: UserInfo
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        secret, _ = await enrol(http, ada)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        step = await sign_in(http, ada.email, ada.password)
        assert step.status_code == 200 and 'action="/account/login/second-factor"' in step.text
        done = await http.post(
            "/account/login/second-factor", data={**fields(step.text), "code": code(secret)}
        )
        assert done.status_code == 303 and done.headers["location"] == "/account?done=signed-in"
        assert "Two-step verification" in (await http.get("/account")).text


async def test_turning_it_off_needs_the_password_and_new_codes_replace_the_old(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    _, codes = await enrol(http, ada)
    wrong = await post(http, "/account/recovery-codes", password="nope")
    assert wrong.status_code == 401
    fresh = await post(http, "/account/recovery-codes", password=ada.password)
    new_codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", fresh.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    step = await password_step(http, runtime, ada)
    old = await http.post("/login/second-factor", data={**fields(step.text), "code": codes[1]})
    assert old.status_code == 401, "the old codes stopped working"
    off = await post(http, "/account/totp/remove", password=ada.password)
    assert off.status_code == 303 and off.headers["location"] == "/account?done=factor-removed"
    step = await password_step(http, runtime, ada)
    assert 'action="/login/second-factor"' not in step.text, "the password alone signs in"
    async with runtime.database.session(readonly=True) as session:
        kinds = list(
            await session.scalars(select(MailOutboxEntry.kind).order_by(MailOutboxEntry.id))
        )
    assert kinds == ["factor_added", "factor_removed"]


async def test_an_operator_turns_it_off_for_a_person_who_lost_everything(
    http: httpx.AsyncClient, runtime: Runtime, ada: UserInfo
) -> None:
    from onepass.operators.audit import Actor
    from onepass.playbook import users

    await enrol(http, ada)
    done = await users.reset_second_factor(runtime, Actor.cli(), ada.email)
    assert done["had_second_factor"] is True and done["sessions_ended"] == 1
    step = await password_step(http, runtime, ada)
    assert 'action="/login/second-factor"' not in step.text
    again = await users.reset_second_factor(runtime, Actor.cli(), ada.email)
    assert again["had_second_factor"] is False
