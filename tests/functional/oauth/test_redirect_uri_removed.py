"""A redirect URI removed between ``/authorize`` and the form post gets nothing: the
login and consent forms re-check the sealed request against the registry and answer
with an error page, never a redirect (RFC 6749 §4.1.2.1). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from onepass.clients.models import OAuthApplication
from onepass.oauth.models import AuthorizationCode
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, Client, make_rp, make_user
from tests.flow import authorize_url, submit_consent, submit_login

OTHER_URI = "https://rp.example/other-callback"


async def remove_redirect_uri(runtime: Runtime, client: Client, uri: str) -> None:
    """Change the registration as ``clients update --remove-redirect-uri`` would, then
    wait until every cached copy of the client has expired."""
    async with runtime.database.session() as session:
        app = await session.get(OAuthApplication, client.id)
        assert app is not None
        app.redirect_uris = [u for u in app.redirect_uris if u != uri]
    await asyncio.sleep(runtime.settings.client_cache_ttl + 0.1)


async def codes_issued(runtime: Runtime) -> int:
    async with runtime.database.session(readonly=True) as session:
        return await session.scalar(select(func.count()).select_from(AuthorizationCode)) or 0


def assert_error_page(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text[:300]
    assert "location" not in response.headers
    assert "no longer registered" in response.text
    assert REDIRECT_URI not in response.text


async def test_login_form_after_redirect_uri_removed_shows_an_error_page_and_no_code(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True, redirect_uris=[REDIRECT_URI, OTHER_URI])
    page = await http.get(authorize_url(client))
    assert 'action="/login"' in page.text
    await remove_redirect_uri(runtime, client, REDIRECT_URI)

    response = await submit_login(http, page, user.email, user.password)
    assert_error_page(response)
    assert await codes_issued(runtime) == 0


async def test_consent_form_after_redirect_uri_removed_shows_an_error_page_for_allow_and_deny(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, redirect_uris=[REDIRECT_URI, OTHER_URI])
    page = await http.get(authorize_url(client))
    consent = await submit_login(http, page, user.email, user.password)
    assert 'action="/consent"' in consent.text
    await remove_redirect_uri(runtime, client, REDIRECT_URI)

    for decision in ("allow", "deny"):
        response = await submit_consent(http, consent, decision)
        assert_error_page(response)
    assert await codes_issued(runtime) == 0


async def test_consent_form_with_redirect_uri_still_registered_redirects_with_a_code(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Removing another URI of the client changes nothing for this request."""
    user = await make_user(runtime)
    client = await make_rp(runtime, redirect_uris=[REDIRECT_URI, OTHER_URI])
    page = await http.get(authorize_url(client))
    consent = await submit_login(http, page, user.email, user.password)
    await remove_redirect_uri(runtime, client, OTHER_URI)

    response = await submit_consent(http, consent)
    assert response.status_code == 303
    assert response.headers["location"].startswith(REDIRECT_URI + "?code=")
