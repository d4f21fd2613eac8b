"""``max_age`` and ``prompt=login``: a login in this interaction satisfies them, once
(OIDC Core §3.1.2.1), and the ID token's ``auth_time`` is that login's time (§2).

Authlib's client is the RP; the app runs on a frozen clock that starts an hour ago
(so that the ID tokens it signs are valid on joserfc's own clock whatever the test
moves it by) and moves as a user would between pages.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, Client, UserInfo, make_rp, make_user
from tests.flow import log_in_and_consent, submit_consent, submit_login
from tests.functional.oauth.test_code_flow import SCOPE, verify_id_token


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))


@pytest.fixture
async def rt(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(settings, clock)
    await prepare(runtime)
    yield runtime
    await runtime.close()


@pytest.fixture
async def frozen_app(rt: Runtime, clock: FrozenClock) -> AsyncIterator[OnePass]:
    application = create_app(rt.settings, clock)
    async with application.api.router.lifespan_context(application.api):
        yield application


@pytest.fixture
async def browser(frozen_app: OnePass) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=frozen_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


def relying_party(app: OnePass, client: Client) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client.client_id,
        client.client_secret,
        redirect_uri=REDIRECT_URI,
        scope=SCOPE,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url=ISSUER,
    )


def is_login_form(response: httpx.Response) -> bool:
    return response.status_code in (200, 401) and 'action="/login"' in response.text


def is_consent_form(response: httpx.Response) -> bool:
    return response.status_code == 200 and 'action="/consent"' in response.text


VERIFIER = secrets.token_urlsafe(48)


def start(rp: AsyncOAuth2Client, **params: object) -> str:
    """An authorization URL of the RP's (PKCE with ``VERIFIER``, a nonce)."""
    url, _ = rp.create_authorization_url(
        f"{ISSUER}/authorize", code_verifier=VERIFIER, nonce=secrets.token_urlsafe(8), **params
    )
    return url


async def id_token_of(
    browser: httpx.AsyncClient, rp: AsyncOAuth2Client, client: Client, callback: str
) -> dict:
    """The RP redeems the code and verifies the ID token it gets."""
    token = await rp.fetch_token(
        f"{ISSUER}/token", authorization_response=callback, code_verifier=VERIFIER
    )
    jwks = (await browser.get("/.well-known/jwks.json")).json()
    return verify_id_token(token["id_token"], jwks, client.client_id)


async def sign_in_earlier(
    browser: httpx.AsyncClient, rp: AsyncOAuth2Client, user: UserInfo
) -> None:
    """A login session (and consent) from before, as a returning user has."""
    await log_in_and_consent(browser, start(rp), user.email, user.password)


async def test_max_age_zero_login_then_consent_issues_a_code_with_that_logins_auth_time(
    frozen_app: OnePass, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    client = await make_rp(rt)
    async with relying_party(frozen_app, client) as rp:
        page = await browser.get(start(rp, max_age="0"))
        assert is_login_form(page)
        clock.advance(20)  # typing the password
        logged_in_at = int(clock.timestamp())
        consent = await submit_login(browser, page, user.email, user.password)
        assert is_consent_form(consent), consent.text[:300]
        clock.advance(5)  # reading the consent page
        back = await submit_consent(browser, consent)
        assert back.status_code == 303, "the login just done satisfies max_age=0"
        callback = back.headers["location"]
        assert parse_qs(urlsplit(callback).query)["code"]
        id_token = await id_token_of(browser, rp, client, callback)
    assert id_token["auth_time"] == logged_in_at
    assert id_token["sub"] == user.sub


async def test_max_age_zero_with_a_session_asks_for_one_login_and_issues_a_code(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """On the real clock: time passes inside the login request itself."""
    user = await make_user(runtime)
    client = await make_rp(runtime)
    async with relying_party(app, client) as rp:
        await sign_in_earlier(http, rp, user)
        page = await http.get(start(rp, max_age="0"))
        assert is_login_form(page), "max_age=0: authenticate now, even when signed in"
        before = int(datetime.now(UTC).timestamp())
        back = await submit_login(http, page, user.email, user.password)
        after = int(datetime.now(UTC).timestamp())
        assert back.status_code == 303, "one login, then the code (consent is remembered)"
        id_token = await id_token_of(http, rp, client, back.headers["location"])
    assert before <= id_token["auth_time"] <= after


async def test_prompt_login_then_consent_issues_a_code_with_the_new_auth_time(
    frozen_app: OnePass, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    first = await make_rp(rt)
    second = await make_rp(rt)
    async with relying_party(frozen_app, first) as rp:
        await sign_in_earlier(browser, rp, user)
    clock.advance(300)
    async with relying_party(frozen_app, second) as rp:
        page = await browser.get(start(rp, prompt="login"))
        assert is_login_form(page)
        logged_in_at = int(clock.timestamp())
        consent = await submit_login(browser, page, user.email, user.password)
        assert is_consent_form(consent)
        clock.advance(3)
        back = await submit_consent(browser, consent)
        assert back.status_code == 303, "prompt=login is satisfied by the login just done"
        id_token = await id_token_of(browser, rp, second, back.headers["location"])
    assert id_token["auth_time"] == logged_in_at


async def test_session_older_than_max_age_asks_again_once_then_not(
    frozen_app: OnePass, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    client = await make_rp(rt)
    async with relying_party(frozen_app, client) as rp:
        await sign_in_earlier(browser, rp, user)
        clock.advance(120)
        fresh = await browser.get(start(rp, max_age="300"))
        assert fresh.status_code == 303, "a login 120 s old satisfies max_age=300"

        clock.advance(600)
        page = await browser.get(start(rp, max_age="300"))
        assert is_login_form(page), "a login 720 s old does not satisfy max_age=300"
        logged_in_at = int(clock.timestamp())
        back = await submit_login(browser, page, user.email, user.password)
        assert back.status_code == 303, "asked once: the new login gets the code"
        id_token = await id_token_of(browser, rp, client, back.headers["location"])
        assert id_token["auth_time"] == logged_in_at

        clock.advance(10)
        again = await browser.get(start(rp, max_age="300"))
        assert again.status_code == 303, "the new login now satisfies max_age=300"


async def test_consent_form_of_an_earlier_login_does_not_satisfy_max_age_for_another_session(
    frozen_app: OnePass, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    """The login carried by a consent form is that form's: once the browser holds
    another session, max_age is judged on that session again."""
    user = await make_user(rt)
    client = await make_rp(rt)
    other = await make_rp(rt)
    async with relying_party(frozen_app, client) as rp:
        page = await browser.get(start(rp, max_age="0"))
        consent = await submit_login(browser, page, user.email, user.password)
        assert is_consent_form(consent)
    clock.advance(30)
    async with relying_party(frozen_app, other) as rp:
        await log_in_and_consent(browser, start(rp, prompt="login"), user.email, user.password)
    clock.advance(30)
    stale = await submit_consent(browser, consent)
    assert is_login_form(stale), "max_age=0 and this session's login is 30 s old"
