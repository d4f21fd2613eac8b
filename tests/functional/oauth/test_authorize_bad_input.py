"""/authorize: every bad parameter gets the protocol's answer, and never an open redirect."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, make_rp

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 Appendix B

FATAL = [
    ("no_client_id", {"client_id": None}),
    ("unknown_client", {"client_id": "nope"}),
    ("no_redirect_uri", {"redirect_uri": None}),
    ("unregistered_redirect_uri", {"redirect_uri": "https://evil.example/cb"}),
    ("redirect_uri_trailing_slash", {"redirect_uri": REDIRECT_URI + "/"}),
    ("redirect_uri_extra_query", {"redirect_uri": REDIRECT_URI + "?x=1"}),
    ("redirect_uri_other_case", {"redirect_uri": REDIRECT_URI.upper()}),
]

REDIRECTED = [
    ("no_response_type", {"response_type": None}, "invalid_request"),
    ("token_response_type", {"response_type": "token"}, "unsupported_response_type"),
    ("hybrid_response_type", {"response_type": "code id_token"}, "unsupported_response_type"),
    ("unknown_response_mode", {"response_mode": "web_message"}, "invalid_request"),
    ("unknown_scope", {"scope": "openid admin"}, "invalid_scope"),
    ("plain_pkce", {"code_challenge_method": "plain"}, "invalid_request"),
    ("short_challenge", {"code_challenge": "abc"}, "invalid_request"),
    ("challenge_bad_alphabet", {"code_challenge": "+" * 43}, "invalid_request"),
    ("method_without_challenge", {"code_challenge": None}, "invalid_request"),
    ("unknown_prompt", {"prompt": "select_account"}, "invalid_request"),
    ("prompt_none_and_login", {"prompt": "none login"}, "invalid_request"),
    ("negative_max_age", {"max_age": "-1"}, "invalid_request"),
    ("text_max_age", {"max_age": "soon"}, "invalid_request"),
    ("superscript_max_age", {"max_age": "²"}, "invalid_request"),
    ("unsigned_request_object", {"request": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request_object"),
    ("request_uri", {"request_uri": "https://rp.example/r"}, "request_uri_not_supported"),
    ("oversized_nonce", {"nonce": "n" * 3000}, "invalid_request"),
    ("prompt_none_without_session", {"prompt": "none"}, "login_required"),
]


def params_for(client_id: str, changes: dict[str, str | None]) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "st4te",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v is not None}


@pytest.mark.parametrize(("name", "changes"), FATAL, ids=[f[0] for f in FATAL])
async def test_untrusted_client_or_redirect_shows_error_page_never_redirects(
    name: str, changes: dict, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    response = await http.get("/authorize", params=params_for(client.client_id, changes))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("name", "changes", "error"), REDIRECTED, ids=[r[0] for r in REDIRECTED])
async def test_bad_parameter_is_redirected_back_with_error_state_and_iss(
    name: str, changes: dict, error: str, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    response = await http.get("/authorize", params=params_for(client.client_id, changes))
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == [error]
    assert query["state"] == ["st4te"]
    assert query["iss"] == [ISSUER]
    assert all(0x20 <= ord(c) <= 0x7E for c in query["error_description"][0])


async def test_repeated_parameter_is_invalid_request(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    query = urlencode(params_for(client.client_id, {})) + "&scope=openid"
    response = await http.get(f"/authorize?{query}")
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


async def test_repeated_redirect_uri_is_never_redirected_to(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    query = (
        urlencode(params_for(client.client_id, {})) + "&redirect_uri=https%3A%2F%2Fevil.example%2F"
    )
    response = await http.get(f"/authorize?{query}")
    assert response.status_code == 400 and "location" not in response.headers


async def test_public_client_without_pkce_is_refused(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime, public=True)
    response = await http.get(
        "/authorize",
        params=params_for(
            client.client_id, {"code_challenge": None, "code_challenge_method": None}
        ),
    )
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_request"]


async def test_client_without_code_grant_gets_error_page(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.factories import make_client

    client = await make_client(runtime)  # client_credentials only
    response = await http.get("/authorize", params=params_for(client.client_id, {}))
    assert response.status_code == 400 and "location" not in response.headers


async def test_login_page_is_protected_and_usable_without_javascript(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    response = await http.get(
        "/authorize", params=params_for(client.client_id, {"login_hint": "ada@example.com"})
    )
    assert response.status_code == 200
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert '<label for="email">' in response.text and '<label for="password">' in response.text
    assert 'value="ada@example.com"' in response.text
    # The one script is the passkey ceremony's, same-origin, and its form is hidden
    # until it runs: the password form works without it.
    assert re.findall(r"<script[^>]*>", response.text) == [
        '<script src="/static/passkey.js" defer>'
    ]
    assert '<form method="post" action="/login" novalidate>' in response.text
    assert 'data-passkey="sign-in"' in response.text and 'class="passkey" hidden>' in response.text
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    cookie = headers["set-cookie"]
    assert "onepass_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_post_authorize_works_like_get(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client = await make_rp(runtime)
    response = await http.post("/authorize", data=params_for(client.client_id, {"prompt": "none"}))
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["login_required"]


async def test_too_many_query_parameters_get_an_error_page(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    query = urlencode(params_for(client.client_id, {})) + "".join(f"&x{i}=1" for i in range(60))
    response = await http.get(f"/authorize?{query}")
    assert response.status_code == 400 and "location" not in response.headers
    logout = await http.get("/logout?" + "&".join(f"x{i}=1" for i in range(60)))
    assert logout.status_code == 400


async def test_oversized_form_posts_are_refused_not_read(http: httpx.AsyncClient) -> None:
    big = b"a=" + b"x" * 100_000
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert (await http.post("/authorize", content=big, headers=headers)).status_code == 413
    assert (await http.post("/login", content=big, headers=headers)).status_code == 413
    revoke = await http.post("/revoke", content=big, headers=headers)
    assert revoke.status_code == 413 and revoke.json()["error"] == "invalid_request"
