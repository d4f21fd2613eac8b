"""Response modes at /authorize: ``fragment``, ``form_post`` (OAuth 2.0 Form Post
Response Mode) and JARM's ``query.jwt``, ``fragment.jwt``, ``form_post.jwt`` and
``jwt``. A code and every error go back in the mode asked for (through PAR too); an
unknown mode gets its error in ``query``; the form_post page submits under its own
CSP (a nonce'd script, forms only to the client's origin); JARM responses are verified
with joserfc (alg, iss, aud, exp). SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.clients import registry
from onepass.oauth import pkce
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, Client, make_rp, make_user
from tests.flow import VERIFIER, authorize_url, hidden_fields, submit_consent, submit_login

INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def posted_fields(page: str) -> dict[str, str]:
    """The fields a form_post page posts (its hidden inputs)."""
    return {name: html.unescape(value) for name, value in INPUT.findall(page)}


async def sign_in(
    http: httpx.AsyncClient, url: str, email: str, password: str, decision: str = "allow"
) -> httpx.Response:
    """From an authorization URL to 1pass's last answer (a 303 or a form_post page)."""
    page = await http.get(url)
    if page.status_code != 200 or 'action="/login"' not in page.text:
        return page
    response = await submit_login(http, page, email, password)
    if response.status_code == 200 and 'action="/consent"' in response.text:
        response = await submit_consent(http, response, decision)
    return response


def form_post_fields(response: httpx.Response) -> dict[str, str]:
    """Checks the page is a form_post page to the redirect URI under its CSP; its fields."""
    assert response.status_code == 200, response.text[:300]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "location" not in response.headers
    csp = response.headers["content-security-policy"]
    assert "form-action https://rp.example;" in csp + ";"
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]+)'", csp)
    assert nonce is not None, csp
    assert "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    assert f'<script nonce="{nonce.group(1)}">' in response.text
    assert f'<form method="post" action="{REDIRECT_URI}"' in response.text
    assert '<button type="submit">' in response.text  # works without JavaScript
    return posted_fields(response.text)


async def jwks(http: httpx.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())


async def verified_response(
    http: httpx.AsyncClient, token: str, client: Client, alg: str = "RS256"
) -> dict[str, Any]:
    """The JARM ``response`` JWT verified by joserfc: signature with 1pass's published
    key, ``alg``, ``iss``, ``aud`` (the client) and ``exp`` (10 minutes)."""
    decoded = jwt.decode(token, await jwks(http), algorithms=[alg])
    assert decoded.header["alg"] == alg
    claims = dict(decoded.claims)
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client.client_id},
        exp={"essential": True},
    ).validate(claims)
    assert 590 <= claims["exp"] - time.time() <= 610
    return claims


async def redeem(http: httpx.AsyncClient, client: Client, code: str) -> httpx.Response:
    assert client.client_secret is not None
    return await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        },
        auth=(client.client_id, client.client_secret),
    )


async def test_form_post_posts_the_code_state_and_iss_and_the_code_works(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    url = authorize_url(client, response_mode="form_post", state="s&<\"'>1")
    response = await sign_in(http, url, user.email, user.password)
    fields = form_post_fields(response)
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == "s&<\"'>1" and fields["iss"] == ISSUER
    assert response.headers["content-language"] == "en"
    assert "Returning to the application" in response.text
    token = await redeem(http, client, fields["code"])
    assert token.status_code == 200, token.text
    assert "id_token" in token.json()


async def test_form_post_page_is_in_korean_when_asked(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    url = authorize_url(client, response_mode="form_post", ui_locales="ko")
    response = await sign_in(http, url, user.email, user.password)
    fields = form_post_fields(response)
    assert "code" in fields
    assert response.headers["content-language"] == "ko"
    assert '<html lang="ko">' in response.text
    assert "계속" in response.text


async def test_every_form_post_page_has_a_new_nonce(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    url = authorize_url(client, response_mode="form_post", prompt="none")
    first = await http.get(url)
    second = await http.get(url)
    assert form_post_fields(first)["error"] == "login_required"
    nonces = {
        r.headers["content-security-policy"].split("'nonce-")[1][:24] for r in (first, second)
    }
    assert len(nonces) == 2


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"prompt": "none"}, "login_required"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"request_uri": "https://rp.example/r"}, "request_uri_not_supported"),
    ],
    ids=["login_required", "scope", "pkce", "response_type", "max_age", "request_uri"],
)
async def test_errors_are_form_posted_with_state_and_iss(
    changes: dict[str, str], error: str, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    response = await http.get(authorize_url(client, response_mode="form_post", **changes))
    fields = form_post_fields(response)
    assert fields["error"] == error
    assert fields["state"] == "xyz" and fields["iss"] == ISSUER
    assert set(fields) == {"error", "error_description", "state", "iss"}


async def test_denied_consent_is_form_posted(http: httpx.AsyncClient, runtime: Runtime) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    url = authorize_url(client, response_mode="form_post")
    response = await sign_in(http, url, user.email, user.password, decision="deny")
    assert form_post_fields(response)["error"] == "access_denied"


async def test_fragment_puts_the_response_in_the_fragment(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    response = await sign_in(
        http, authorize_url(client, response_mode="fragment"), user.email, user.password
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.query == ""
    fields = {k: v[0] for k, v in parse_qs(location.fragment).items()}
    assert fields["state"] == "xyz" and fields["iss"] == ISSUER
    assert (await redeem(http, client, fields["code"])).status_code == 200

    error = await http.get(authorize_url(client, response_mode="fragment", scope="openid admin"))
    assert error.status_code == 303
    fragment = parse_qs(urlsplit(error.headers["location"]).fragment)
    assert fragment["error"] == ["invalid_scope"] and fragment["state"] == ["xyz"]


def _jarm_token(response: httpx.Response, mode: str) -> str:
    """The ``response`` JWT, alone, where ``mode`` puts it."""
    if mode.startswith("form_post"):
        fields = form_post_fields(response)
    else:
        assert response.status_code == 303, response.text[:300]
        location = urlsplit(response.headers["location"])
        assert location.geturl().startswith(REDIRECT_URI)
        part = location.fragment if mode.startswith("fragment") else location.query
        assert (location.query if mode.startswith("fragment") else location.fragment) == ""
        fields = {k: v[0] for k, v in parse_qs(part).items()}
    assert set(fields) == {"response"}, fields
    return fields["response"]


@pytest.mark.parametrize("mode", ["query.jwt", "fragment.jwt", "form_post.jwt", "jwt"])
async def test_jarm_signs_the_code_and_state_for_the_client(
    mode: str, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    response = await sign_in(
        http, authorize_url(client, response_mode=mode), user.email, user.password
    )
    claims = await verified_response(http, _jarm_token(response, mode), client)
    assert set(claims) == {"iss", "aud", "exp", "code", "state"}
    assert claims["state"] == "xyz"
    assert (await redeem(http, client, claims["code"])).status_code == 200


@pytest.mark.parametrize("mode", ["query.jwt", "fragment.jwt", "form_post.jwt", "jwt"])
async def test_jarm_signs_errors_too(mode: str, http: httpx.AsyncClient, runtime: Runtime) -> None:
    client = await make_rp(runtime)
    response = await http.get(authorize_url(client, response_mode=mode, prompt="none"))
    claims = await verified_response(http, _jarm_token(response, mode), client)
    assert claims["error"] == "login_required" and claims["state"] == "xyz"
    assert "code" not in claims and claims["error_description"]


async def test_jarm_uses_the_clients_registered_algorithm(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, authorization_signed_response_alg="ES256")
    response = await sign_in(
        http, authorize_url(client, response_mode="jwt"), user.email, user.password
    )
    claims = await verified_response(http, _jarm_token(response, "jwt"), client, alg="ES256")
    assert "code" in claims
    with pytest.raises(Exception):  # noqa: B017  (joserfc refuses an alg not allowed)
        jwt.decode(_jarm_token(response, "jwt"), await jwks(http), algorithms=["RS256"])


async def test_jarm_without_a_key_for_the_clients_alg_is_refused_unsigned_before_a_code(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """PS256 is not in ONEPASS_SIGNING_ALGS here (RS256, ES256): nothing can sign."""
    client = await make_rp(runtime, authorization_signed_response_alg="PS256")
    response = await http.get(authorize_url(client, response_mode="query.jwt"))
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "PS256" in query["error_description"][0]


@pytest.mark.parametrize(
    "value", ["unknown", "FORM_POST", "query.jwt.jwt", "form_post ", "web_message", "x" * 300]
)
async def test_unknown_response_mode_gets_its_error_in_query(
    value: str, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    response = await http.get(authorize_url(client, response_mode=value))
    assert response.status_code == 303, response.text[:300]
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?") and "#" not in location
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["invalid_request"]
    assert "response_mode" in query["error_description"][0]
    assert query["state"] == ["xyz"] and query["iss"] == [ISSUER]


async def test_repeated_response_mode_gets_its_error_in_query(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    url = authorize_url(client, response_mode="form_post") + "&response_mode=fragment"
    response = await http.get(url)
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["xyz"]


async def test_form_post_to_an_untrusted_redirect_uri_is_the_error_page(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    url = authorize_url(client, response_mode="form_post", redirect_uri="https://evil.example/cb")
    response = await http.get(url)
    assert response.status_code == 400 and "<form" not in response.text
    assert "evil.example" not in response.headers["content-security-policy"]


async def test_form_post_to_a_native_apps_scheme_is_refused_in_query(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    native = "com.example.app:/callback"
    client = await make_rp(runtime, redirect_uris=[native])
    url = authorize_url(client, response_mode="form_post", redirect_uri=native)
    response = await http.get(url)
    assert response.status_code == 303
    assert response.headers["location"].startswith(native + "?error=invalid_request")


async def test_a_pushed_request_keeps_its_response_mode(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    assert client.client_secret is not None
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "pushed",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
        "response_mode": "form_post.jwt",
    }
    pushed = await http.post("/par", data=params, auth=(client.client_id, client.client_secret))
    assert pushed.status_code == 201, pushed.text
    url = "/authorize?" + urlencode(
        {"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]}
    )
    response = await sign_in(http, url, user.email, user.password)
    claims = await verified_response(http, _jarm_token(response, "form_post.jwt"), client)
    assert claims["state"] == "pushed"

    bad = await http.post(
        "/par",
        data={**params, "response_mode": "web_message"},
        auth=(client.client_id, client.client_secret),
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


async def test_a_client_that_requires_par_gets_its_refusal_in_its_mode(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime, require_pushed_authorization_requests=True)
    response = await http.get(authorize_url(client, response_mode="form_post"))
    fields = form_post_fields(response)
    assert fields["error"] == "invalid_request" and fields["state"] == "xyz"


async def test_the_login_form_carries_the_mode_through_the_sign_in(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The sealed interaction keeps the mode: the login and consent posts answer in it."""
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client, response_mode="form_post"))
    assert page.status_code == 200 and set(hidden_fields(page.text)) == {
        "csrf_token",
        "interaction",
    }
    assert "form-action" not in page.headers["content-security-policy"]


async def test_discovery_advertises_the_response_modes(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["response_modes_supported"] == [
        "query",
        "fragment",
        "form_post",
        "query.jwt",
        "fragment.jwt",
        "form_post.jwt",
        "jwt",
    ]
    assert document["authorization_signing_alg_values_supported"] == ["RS256", "ES256"]


async def test_the_registration_checks_the_response_signing_alg(runtime: Runtime) -> None:
    async with runtime.database.session() as session:
        for alg, message in [
            ("HS256", "must be one of"),
            ("none", "must be one of"),
            ("PS256", "has no signing key"),
        ]:
            with pytest.raises(registry.InvalidClientSettings, match=message):
                await registry.create_client(
                    session,
                    runtime.hasher,
                    runtime.clock,
                    name="rp",
                    redirect_uris=[REDIRECT_URI],
                    authorization_signed_response_alg=alg,
                    signing_algs=("RS256", "ES256"),
                )
        new = await registry.create_client(
            session, runtime.hasher, runtime.clock, name="rp", redirect_uris=[REDIRECT_URI]
        )
        assert registry.describe_client(new.application)["authorization_signed_response_alg"] == (
            "RS256"
        )
        changes = registry.ClientChanges(authorization_signed_response_alg="ES256")
        assert await registry.update_client(
            session, runtime.clock, new.application, changes, signing_algs=("RS256", "ES256")
        ) == ["authorization_signed_response_alg"]
        back = registry.ClientChanges(authorization_signed_response_alg="")
        await registry.update_client(session, runtime.clock, new.application, back)
        assert new.application.authorization_signed_response_alg is None


async def test_a_request_objects_mode_counts_and_an_outer_one_does_not(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """RFC 9101 §6.3: the object's ``response_mode`` is the one; a refused object's
    error goes back in the outer request's mode."""
    from tests.functional.oauth.test_request_object import jar_client, make_key, request_object

    user = await make_user(runtime)
    key = make_key("ES256")
    client = await jar_client(runtime, key)
    obj = request_object(client.client_id, key, "ES256", response_mode="form_post")
    outer = {"client_id": client.client_id, "request": obj, "response_mode": "fragment"}
    response = await sign_in(http, "/authorize?" + urlencode(outer), user.email, user.password)
    assert form_post_fields(response)["state"] == "inner-state"

    forged = obj[:-4] + ("AAAA" if not obj.endswith("AAAA") else "BBBB")
    refused = await http.get(
        "/authorize?"
        + urlencode(
            {
                "client_id": client.client_id,
                "request": forged,
                "redirect_uri": REDIRECT_URI,
                "state": "outer",
                "response_mode": "form_post",
            }
        )
    )
    fields = form_post_fields(refused)
    assert fields["error"] == "invalid_request_object" and fields["state"] == "outer"
