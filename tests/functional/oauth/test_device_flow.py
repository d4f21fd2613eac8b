"""The Device Authorization Grant (RFC 8628) over HTTP through the app: the device
authorization endpoint, every answer of the token endpoint to a poll, and the
``/device`` pages (code, sign-in, confirmation, throttling), on a frozen clock that
starts half an hour ago (so that the tokens it signs verify on joserfc's own clock)
and moves as a device and a person would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.oauth.device import GRANT_TYPE
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER
from tests.factories import Client, UserInfo, make_client, make_user
from tests.flow import hidden_fields
from tests.functional.oauth.test_code_flow import verify_id_token
from tests.oidc import verify_access_token

USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30))


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


def _client(app: OnePass) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


@pytest.fixture
async def device(frozen_app: OnePass) -> AsyncIterator[httpx.AsyncClient]:
    """The TV or CLI: talks to /device_authorization and /token."""
    async with _client(frozen_app) as client:
        yield client


@pytest.fixture
async def browser(frozen_app: OnePass) -> AsyncIterator[httpx.AsyncClient]:
    """The person's phone: /device, /account (its own cookies)."""
    async with _client(frozen_app) as client:
        yield client


async def tv_app(rt: Runtime, **options: object) -> Client:
    """A public client (a TV app) with the device grant."""
    options.setdefault("name", "Living Room TV")
    options.setdefault("grant_types", [GRANT_TYPE])
    options.setdefault("public", True)
    options.setdefault("scope", "openid email")
    return await make_client(rt, **options)


async def start(device: httpx.AsyncClient, client: Client, **form: str) -> dict:
    data = {"client_id": client.client_id, **form}
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    response = await device.post("/device_authorization", data=data, auth=auth)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.json()


async def poll(device: httpx.AsyncClient, client: Client, device_code: str) -> httpx.Response:
    data = {"grant_type": GRANT_TYPE, "device_code": device_code, "client_id": client.client_id}
    auth = (client.client_id, client.client_secret) if client.client_secret else None
    return await device.post("/token", data=data, auth=auth)  # type: ignore[arg-type]


def assert_error(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert response.headers["cache-control"] == "no-store"


async def sign_in(browser: httpx.AsyncClient, user: UserInfo) -> None:
    page = await browser.get("/account")
    response = await browser.post(
        "/account/login",
        data={**hidden_fields(page.text), "email": user.email, "password": user.password},
    )
    assert response.status_code == 303, response.text


async def enter_code(browser: httpx.AsyncClient, typed: str) -> httpx.Response:
    page = await browser.get("/device")
    assert page.status_code == 200
    return await browser.post("/device", data={**hidden_fields(page.text), "user_code": typed})


async def decide(
    browser: httpx.AsyncClient, confirm: httpx.Response, decision: str
) -> httpx.Response:
    assert confirm.status_code == 200 and 'action="/device/decide"' in confirm.text, confirm.text
    code = re.search(r'name="user_code" value="([^"]+)"', confirm.text)
    assert code is not None
    return await browser.post(
        "/device/decide",
        data={**hidden_fields(confirm.text), "user_code": code.group(1), "decision": decision},
    )


async def test_device_authorization_answers_the_rfc8628_fields(
    device: httpx.AsyncClient, rt: Runtime
) -> None:
    client = await tv_app(rt)
    response = await device.post(
        "/device_authorization", data={"client_id": client.client_id, "scope": "openid email"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert USER_CODE.match(body["user_code"])
    assert len(body["device_code"]) >= 43
    assert body["verification_uri"] == f"{ISSUER}/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600
    assert body["interval"] == 5
    discovery = (await device.get("/.well-known/openid-configuration")).json()
    assert discovery["device_authorization_endpoint"] == f"{ISSUER}/device_authorization"
    assert GRANT_TYPE in discovery["grant_types_supported"]


async def test_verification_uri_complete_prefills_the_code(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime
) -> None:
    client = await tv_app(rt)
    started = await start(device, client)
    page = await browser.get(started["verification_uri_complete"].removeprefix(ISSUER))
    assert page.status_code == 200
    assert f'value="{started["user_code"]}"' in page.text
    assert "content-security-policy" in page.headers


async def test_device_flow_approved_issues_tokens_of_the_approving_user_once(
    device: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    rt: Runtime,
    clock: FrozenClock,
) -> None:
    user = await make_user(rt)
    client = await tv_app(rt)
    started = await start(device, client, scope="openid email")
    assert_error(await poll(device, client, started["device_code"]), "authorization_pending")

    clock.advance(20)
    await sign_in(browser, user)
    signed_in_at = int(clock.timestamp())
    clock.advance(10)
    # Lower case, no dash, spaces: normalised.
    typed = " " + started["user_code"].replace("-", " ").lower()
    confirm = await enter_code(browser, typed)
    assert "Living Room TV" in confirm.text and user.email in confirm.text
    assert started["user_code"] in confirm.text
    done = await decide(browser, confirm, "approve")
    assert done.status_code == 200 and "Your device is connected" in done.text

    clock.advance(5)
    response = await poll(device, client, started["device_code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid email"
    assert "refresh_token" not in body  # no offline_access, no refresh grant
    jwks = (await device.get("/.well-known/jwks.json")).json()
    access = verify_access_token(body["access_token"], jwks, issuer=ISSUER, audience=ISSUER)
    assert access.claims["sub"] == user.sub
    assert access.claims["client_id"] == client.client_id
    id_token = verify_id_token(body["id_token"], jwks, client.client_id)
    assert id_token["sub"] == user.sub
    assert id_token["auth_time"] == signed_in_at
    assert id_token["amr"] == ["pwd"]
    assert "nonce" not in id_token
    userinfo = await device.get(
        "/userinfo", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 200 and userinfo.json()["email"] == user.email

    clock.advance(5)
    assert_error(await poll(device, client, started["device_code"]), "invalid_grant")


async def test_device_flow_with_offline_access_gives_a_refresh_token_that_refreshes(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    client = await tv_app(
        rt,
        grant_types=[GRANT_TYPE, "refresh_token"],
        public=False,
        scope="openid offline_access",
    )
    assert client.client_secret
    started = await start(device, client, scope="openid offline_access")
    await sign_in(browser, user)
    await decide(browser, await enter_code(browser, started["user_code"]), "approve")
    response = await poll(device, client, started["device_code"])
    assert response.status_code == 200, response.text
    refresh_token = response.json()["refresh_token"]
    refreshed = await device.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client.client_id, client.client_secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    jwks = (await device.get("/.well-known/jwks.json")).json()
    claims = verify_id_token(refreshed.json()["id_token"], jwks, client.client_id)
    assert claims["sub"] == user.sub


async def test_polling_faster_than_the_interval_slows_down_by_five_seconds(
    device: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    client = await tv_app(rt)
    started = await start(device, client)
    code = started["device_code"]
    assert_error(await poll(device, client, code), "authorization_pending")
    clock.advance(2)
    slow = await poll(device, client, code)
    assert_error(slow, "slow_down")
    assert "10 seconds" in slow.json()["error_description"]
    clock.advance(9)  # the interval is now 10 s
    assert_error(await poll(device, client, code), "slow_down")
    clock.advance(15)  # and now 15
    assert_error(await poll(device, client, code), "authorization_pending")
    clock.advance(15)
    assert_error(await poll(device, client, code), "authorization_pending")


async def test_denied_device_code_answers_access_denied(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    client = await tv_app(rt)
    started = await start(device, client)
    await sign_in(browser, user)
    done = await decide(browser, await enter_code(browser, started["user_code"]), "deny")
    assert done.status_code == 200 and "Access denied" in done.text
    assert_error(await poll(device, client, started["device_code"]), "access_denied")
    # Decided: the code is no longer accepted at /device.
    again = await enter_code(browser, started["user_code"])
    assert again.status_code == 400 and "not valid" in again.text


async def test_device_code_expires_after_its_ttl(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    client = await tv_app(rt)
    started = await start(device, client)
    clock.advance(599)
    assert_error(await poll(device, client, started["device_code"]), "authorization_pending")
    clock.advance(2)
    assert_error(await poll(device, client, started["device_code"]), "expired_token")
    await sign_in(browser, user)
    late = await enter_code(browser, started["user_code"])
    assert late.status_code == 400


async def test_approved_but_expired_device_code_is_not_exchanged(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    user = await make_user(rt)
    client = await tv_app(rt)
    started = await start(device, client)
    await sign_in(browser, user)
    await decide(browser, await enter_code(browser, started["user_code"]), "approve")
    clock.advance(601)
    assert_error(await poll(device, client, started["device_code"]), "expired_token")


async def test_unknown_or_another_clients_device_code_is_invalid_grant(
    device: httpx.AsyncClient, rt: Runtime
) -> None:
    client = await tv_app(rt)
    other = await tv_app(rt, name="Other TV")
    started = await start(device, client)
    assert_error(await poll(device, client, "not-a-device-code"), "invalid_grant")
    assert_error(await poll(device, other, started["device_code"]), "invalid_grant")
    response = await device.post(
        "/token", data={"grant_type": GRANT_TYPE, "client_id": client.client_id}
    )
    assert_error(response, "invalid_request")
    assert_error(await poll(device, client, "x" * 300), "invalid_grant")
    assert_error(await poll(device, client, "x" * 5000), "invalid_request")


async def test_device_endpoints_refuse_clients_without_the_grant(
    device: httpx.AsyncClient, rt: Runtime
) -> None:
    web = await make_client(
        rt, grant_types=["client_credentials"], scope="api:read", name="service"
    )
    response = await device.post(
        "/device_authorization",
        data={"scope": "api:read"},
        auth=(web.client_id, web.client_secret),  # type: ignore[arg-type]
    )
    assert_error(response, "unauthorized_client")
    assert_error(await poll(device, web, "whatever"), "unauthorized_client")


async def test_device_authorization_bad_requests_are_rfc6749_errors(
    device: httpx.AsyncClient, rt: Runtime
) -> None:
    client = await tv_app(rt)
    assert_error(
        await device.post(
            "/device_authorization", data={"client_id": client.client_id, "scope": "admin"}
        ),
        "invalid_scope",
    )
    assert_error(
        await device.post("/device_authorization", data={"client_id": "nobody"}),
        "invalid_client",
        401,
    )
    assert_error(
        await device.post("/device_authorization", data={"scope": "openid"}), "invalid_client", 401
    )
    assert_error(
        await device.post(
            "/device_authorization",
            content=b'{"client_id": "x"}',
            headers={"content-type": "application/json"},
        ),
        "invalid_request",
    )
    confidential = await tv_app(rt, name="CLI", public=False)
    assert_error(
        await device.post(
            "/device_authorization",
            data={"scope": "openid"},
            auth=(confidential.client_id, "wrong secret"),
        ),
        "invalid_client",
        401,
    )


async def test_device_page_sends_a_signed_out_person_to_sign_in_and_back(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime
) -> None:
    user = await make_user(rt)
    client = await tv_app(rt)
    started = await start(device, client)
    response = await enter_code(browser, started["user_code"])
    assert response.status_code == 303 and response.headers["location"] == "/account"
    await sign_in(browser, user)
    back = await browser.get("/account")
    assert back.status_code == 303
    assert back.headers["location"] == f"/device?user_code={started['user_code']}"
    page = await browser.get(back.headers["location"])
    assert f'value="{started["user_code"]}"' in page.text and user.email in page.text
    # Once back, the account page is the account page again.
    assert (await browser.get("/account")).status_code == 200


async def test_device_decision_needs_the_csrf_token_and_a_sign_in(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime
) -> None:
    user = await make_user(rt)
    client = await tv_app(rt)
    started = await start(device, client)
    forged = await browser.post(
        "/device/decide", data={"user_code": started["user_code"], "decision": "approve"}
    )
    assert forged.status_code == 403
    await sign_in(browser, user)
    confirm = await enter_code(browser, started["user_code"])
    fields = hidden_fields(confirm.text)
    bad = await browser.post(
        "/device/decide",
        data={**fields, "user_code": started["user_code"], "decision": "maybe"},
    )
    assert bad.status_code == 400
    assert_error(await poll(device, client, started["device_code"]), "authorization_pending")


async def test_wrong_user_codes_are_throttled_and_the_page_says_so(
    device: httpx.AsyncClient, browser: httpx.AsyncClient, rt: Runtime
) -> None:
    client = await tv_app(rt)
    started = await start(device, client)
    limit = rt.settings.device_user_code_max_failures
    for guess in range(limit):
        wrong = await enter_code(browser, f"BCDF-{'GHJK' if guess % 2 else 'GHJL'}")
        assert wrong.status_code == 400 and "not valid" in wrong.text
    refused = await enter_code(browser, started["user_code"])
    assert refused.status_code == 429
    assert "Too many wrong codes" in refused.text and "15 minutes" in refused.text
    assert int(refused.headers["retry-after"]) == rt.settings.device_user_code_failure_window
    korean = await browser.post(
        "/device",
        data={**hidden_fields(refused.text), "user_code": started["user_code"]},
        headers={"accept-language": "ko"},
    )
    assert korean.status_code == 429
    # Not a code at all (too short, vowels) counts as wrong too.
    assert (await enter_code(browser, "AEIOU")).status_code == 429
