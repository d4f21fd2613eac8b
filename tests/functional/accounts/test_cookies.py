"""Cookie names and attributes, as a browser sees them: ``__Host-`` over https, plain
names over http (development). SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from onepass.app import OnePass, create_app
from onepass.runtime import Runtime
from tests.conftest import make_settings
from tests.cookies import browser_cookies, set_cookie_names
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, hidden_fields, submit_login

HTTPS_ISSUER = "https://id.example.com"


@pytest.fixture
async def https_app(runtime: Runtime) -> AsyncIterator[OnePass]:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, issuer=HTTPS_ISSUER
    )
    application = create_app(settings)
    async with application.api.router.lifespan_context(application.api):
        yield application


@pytest.fixture
async def https_browser(https_app: OnePass) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=https_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=HTTPS_ISSUER) as client:
        yield client


async def test_cookies_over_an_https_issuer_are_host_prefixed_and_kept_by_a_browser(
    https_browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)

    page = await https_browser.get(authorize_url(client))
    assert set_cookie_names(page) == ["__Host-onepass_csrf"]
    csrf = browser_cookies(page, secure_origin=True)["__Host-onepass_csrf"]
    assert csrf["secure"] is True and csrf["httponly"] is True and csrf["samesite"] == "lax"

    signed_in = await submit_login(https_browser, page, user.email, user.password)
    assert signed_in.status_code == 303
    assert set_cookie_names(signed_in) == ["__Host-onepass_session"]
    session = browser_cookies(signed_in, secure_origin=True)["__Host-onepass_session"]
    assert session["secure"] is True and session["httponly"] is True
    assert session["path"] == "/" and "domain" not in session

    # The browser sends it back under that name and 1pass reads it: no login form.
    again = await https_browser.get(authorize_url(client))
    assert again.status_code == 303 and "code=" in again.headers["location"]

    out = await https_browser.post(
        "/logout", data={"csrf_token": hidden_fields(page.text)["csrf_token"]}
    )
    assert "signed out" in out.text
    deleted = browser_cookies(out, secure_origin=True)
    assert "__Host-onepass_session" in deleted, "a deletion the browser would ignore"
    assert deleted["__Host-onepass_session"]["max-age"] == "0"


async def test_a_plain_named_session_cookie_is_not_read_over_https(
    https_app: OnePass, https_browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    """What a sibling host could plant (``Domain=example.com``) carries no session."""
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    page = await https_browser.get(authorize_url(client))
    signed_in = await submit_login(https_browser, page, user.email, user.password)
    token = browser_cookies(signed_in, secure_origin=True)["__Host-onepass_session"]["value"]

    transport = httpx.ASGITransport(app=https_app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=HTTPS_ISSUER) as elsewhere:
        planted = await elsewhere.get(
            authorize_url(client), headers={"cookie": f"onepass_session={token}"}
        )
        assert planted.status_code == 200 and 'action="/login"' in planted.text
        prefixed = await elsewhere.get(
            authorize_url(client), headers={"cookie": f"__Host-onepass_session={token}"}
        )
        assert prefixed.status_code == 303


async def test_cookies_over_http_development_keep_plain_names_without_secure(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    page = await http.get(authorize_url(client))
    signed_in = await submit_login(http, page, user.email, user.password)
    assert set_cookie_names(page) == ["onepass_csrf"]
    assert set_cookie_names(signed_in) == ["onepass_session"]
    kept = browser_cookies(signed_in, secure_origin=False)
    assert "secure" not in kept["onepass_session"], "a browser drops Secure cookies over http"
