"""The login and consent pages: no enumeration, throttling, CSRF, cookies, prompts."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from onepass.accounts.models import User
from onepass.app import create_app
from onepass.runtime import Runtime
from tests.conftest import ISSUER, make_settings
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, hidden_fields, submit_consent, submit_login


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client))
    wrong = await submit_login(http, page, user.email, "not the password")
    unknown = await submit_login(http, page, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        "Incorrect email or password." in wrong.text
        and "Incorrect email or password." in unknown.text
    )
    assert "set-cookie" not in wrong.headers or "onepass_session" not in wrong.headers["set-cookie"]


async def test_login_is_throttled_per_account_with_retry_after(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client))
    for _ in range(runtime.settings.login_max_failures_per_account):
        assert (await submit_login(http, page, user.email, "wrong password")).status_code == 401
    blocked = await submit_login(http, page, user.email, user.password)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many failed attempts" in blocked.text
    other = await make_user(runtime, email="grace@example.com")
    assert (await submit_login(http, page, other.email, other.password)).status_code in (
        200,
        303,
    ), "other accounts unaffected"


async def test_login_is_throttled_per_client_ip(runtime: Runtime) -> None:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, login_max_failures_per_ip=3
    )
    client = await make_rp(runtime)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        page = await http.get(authorize_url(client))
        for i in range(3):
            await submit_login(http, page, f"user{i}@example.com", "wrong password")
        assert (
            await submit_login(http, page, "user9@example.com", "wrong password")
        ).status_code == 429


async def test_login_without_csrf_cookie_is_refused(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client))
    fields = hidden_fields(page.text)
    http.cookies.clear()
    response = await http.post(
        "/login", data={**fields, "email": user.email, "password": user.password}
    )
    assert response.status_code == 403
    assert "onepass_session" not in response.headers.get("set-cookie", "")


async def test_tampered_interaction_is_refused(http: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client))
    fields = hidden_fields(page.text)
    fields["interaction"] = fields["interaction"][:-2] + (
        "AA" if not fields["interaction"].endswith("AA") else "BB"
    )
    response = await http.post(
        "/login", data={**fields, "email": user.email, "password": user.password}
    )
    assert response.status_code == 400
    assert "altered" in response.text or "damaged" in response.text


@pytest.mark.parametrize("body", [b"", b"email=a", b"\xff\xfe", b"csrf_token=x&csrf_token=y"])
async def test_malformed_login_posts_get_an_error_page_not_a_500(
    body: bytes, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/login", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("text/html")
    json_post = await http.post("/login", json={"email": "a"})
    assert json_post.status_code == 400


async def test_session_cookie_flags(runtime: Runtime) -> None:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, issuer="https://id.example.com"
    )
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://id.example.com"
        ) as http,
    ):
        page = await http.get(authorize_url(client))
        response = await submit_login(http, page, user.email, user.password)
    assert response.status_code == 303
    cookie = next(
        c
        for c in response.headers.get_list("set-cookie")
        if c.startswith("__Host-onepass_session=")
    )
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag in cookie
    assert "Domain" not in cookie


async def test_consent_denied_returns_access_denied(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client))
    consent_page = await submit_login(http, page, user.email, user.password)
    assert "Allow" in consent_page.text and "See your email address" in consent_page.text
    denied = await submit_consent(http, consent_page, "deny")
    query = parse_qs(urlsplit(denied.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["xyz"]


async def test_prompt_login_and_prompt_consent_ask_again(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client))
    await submit_consent(http, await submit_login(http, page, user.email, user.password))
    assert (await http.get(authorize_url(client))).status_code == 303
    relogin = await http.get(authorize_url(client, prompt="login"))
    assert relogin.status_code == 200 and 'action="/login"' in relogin.text
    reconsent = await http.get(authorize_url(client, prompt="consent"))
    assert reconsent.status_code == 200 and 'action="/consent"' in reconsent.text
    silent = await http.get(authorize_url(client, prompt="none"))
    assert silent.status_code == 303 and "code=" in silent.headers["location"]


async def test_prompt_none_without_consent_is_consent_required(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    first = await make_rp(runtime, first_party=True)
    third = await make_rp(runtime)
    page = await http.get(authorize_url(first))
    assert (await submit_login(http, page, user.email, user.password)).status_code == 303
    silent = await http.get(authorize_url(third, prompt="none"))
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["consent_required"]


async def test_password_is_rehashed_when_argon2_parameters_change(runtime: Runtime) -> None:
    user = await make_user(runtime)
    async with runtime.database.session() as session:
        before = await session.scalar(select(User.password_hash).where(User.id == user.id))
    stronger = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, argon2_time_cost=2
    )
    client = await make_rp(runtime, first_party=True)
    app = create_app(stronger)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        page = await http.get(authorize_url(client))
        assert (await submit_login(http, page, user.email, user.password)).status_code == 303
    async with runtime.database.session() as session:
        after = await session.scalar(select(User.password_hash).where(User.id == user.id))
    assert before and after and before != after
    assert ",t=1," in before and ",t=2," in after
