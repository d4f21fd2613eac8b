"""RFC 9700 §4.2 and §4.11.2, as docs/security.md cites them: pages leak nothing
through the Referer or third-party content, and sign-out never redirects anywhere
that was not registered."""

from __future__ import annotations

import httpx
import pytest

from onepass.runtime import Runtime
from tests.factories import POST_LOGOUT_URI, REDIRECT_URI, make_rp


async def test_pages_send_no_referrer_and_load_nothing_from_elsewhere(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    page = await http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": "s",
        },
    )
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "http" not in policy  # no origin but our own may serve anything to the page


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/signed-out",
        POST_LOGOUT_URI + "/",
        POST_LOGOUT_URI + "?next=https://evil.example",
        POST_LOGOUT_URI.upper(),
        REDIRECT_URI,  # registered, but as a redirect_uri, not for sign-out
    ],
)
async def test_logout_to_an_unregistered_uri_shows_an_error_page_never_redirects(
    uri: str, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    answer = await http.get(
        "/logout",
        params={"client_id": client.client_id, "post_logout_redirect_uri": uri, "state": "x"},
    )
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "not registered" in answer.text
