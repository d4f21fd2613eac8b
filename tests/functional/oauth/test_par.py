"""Pushed authorization requests (RFC 9126): a client pushes its request to ``/par``
(authenticated as at ``/token``), checked as ``/authorize`` checks it, gets a
``request_uri`` that works once, for that client, within its life; bad pushes are
JSON errors and store nothing; a client (or a server) that requires PAR refuses plain
requests. The code is exchanged with Authlib's client. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, update

from onepass.app import OnePass, create_app
from onepass.oauth import pkce
from onepass.oauth.models import PushedAuthorizationRequest
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, Client, make_rp, make_user
from tests.flow import log_in_and_consent, submit_consent, submit_login
from tests.functional.oauth.test_code_flow import rp_client

VERIFIER = secrets.token_urlsafe(48)


def request_params(client: Client, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "s-123",
        "nonce": "n-456",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }


async def push(http: httpx.AsyncClient, client: Client, **extra: str) -> httpx.Response:
    assert client.client_secret is not None
    return await http.post(
        "/par",
        data=request_params(client, **extra),
        auth=(client.client_id, client.client_secret),
    )


def authorize_with(client: Client, request_uri: str) -> str:
    return "/authorize?" + urlencode({"client_id": client.client_id, "request_uri": request_uri})


async def stored(runtime: Runtime) -> int:
    async with runtime.database.session(readonly=True) as session:
        query = select(func.count()).select_from(PushedAuthorizationRequest)
        return int(await session.scalar(query) or 0)


async def test_discovery_names_the_endpoint(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["pushed_authorization_request_endpoint"] == f"{ISSUER}/par"
    assert document["require_pushed_authorization_requests"] is False


async def test_a_pushed_request_signs_in_once_and_its_code_is_exchanged(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    pushed = await push(http, client)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["cache-control"] == "no-store"
    body = pushed.json()
    assert body["expires_in"] == 60
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    url = authorize_with(client, body["request_uri"]) + "&redirect_uri=https://evil.example/"
    callback = await log_in_and_consent(http, url, user.email, user.password)
    assert callback.startswith(REDIRECT_URI + "?"), "the pushed redirect URI, not the query's"
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == ["s-123"] and query["iss"] == [ISSUER]
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=VERIFIER
        )
    assert token["token_type"] == "Bearer" and token["id_token"]
    again = await http.get(authorize_with(client, body["request_uri"]))
    assert again.status_code == 400 and "already used" in again.text


async def test_bad_pushes_get_json_errors_and_store_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    public = await make_rp(runtime, public=True, token_endpoint_auth_method="none")
    assert client.client_secret is not None
    cases: list[tuple[dict[str, object], int, str]] = [
        ({"data": request_params(client)}, 401, "invalid_client"),
        (
            {"data": request_params(client), "auth": (client.client_id, "wrong")},
            401,
            "invalid_client",
        ),
        (
            {
                "data": request_params(client, redirect_uri="https://evil.example/cb"),
                "auth": (client.client_id, client.client_secret),
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": request_params(client, scope="openid admin"),
                "auth": (client.client_id, client.client_secret),
            },
            400,
            "invalid_scope",
        ),
        (
            {
                "data": request_params(client, response_type="token"),
                "auth": (client.client_id, client.client_secret),
            },
            400,
            "unsupported_response_type",
        ),
        (
            {
                "data": request_params(client, request_uri="urn:x"),
                "auth": (client.client_id, client.client_secret),
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": request_params(client, client_id=public.client_id),
                "auth": (client.client_id, client.client_secret),
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": {
                    k: v
                    for k, v in request_params(public).items()
                    if not k.startswith("code_challenge")
                },
            },
            400,
            "invalid_request",
        ),
        (
            {
                "content": b"response_type=code&scope=a&scope=b",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
                "auth": (client.client_id, client.client_secret),
            },
            400,
            "invalid_request",
        ),
        (
            {"json": request_params(client), "auth": (client.client_id, client.client_secret)},
            400,
            "invalid_request",
        ),
    ]
    for kwargs, status, error in cases:
        response = await http.post("/par", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, (kwargs, response.text)
        assert response.json()["error"] == error, (kwargs, response.text)
        assert "traceback" not in response.text.lower()
    assert await stored(runtime) == 0
    ok = await http.post("/par", data=request_params(public))  # PKCE: a public client may push
    assert ok.status_code == 201


async def test_a_request_uri_is_its_clients_and_lives_a_minute(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client, other = await make_rp(runtime), await make_rp(runtime, name="Other")
    uri = (await push(http, client)).json()["request_uri"]
    foreign = await http.get(authorize_with(other, uri))
    assert foreign.status_code == 400 and "not valid" in foreign.text
    for bogus in (
        "urn:ietf:params:oauth:request_uri:nope",
        "urn:ietf:params:oauth:request_uri:" + "x" * 500,
    ):
        page = await http.get(authorize_with(client, bogus))
        assert page.status_code == 400, bogus
    # A request object by reference elsewhere (RFC 9101) is not supported: said at the
    # redirect URI, which the query names and the client registered.
    by_reference = await http.get(
        "/authorize?" + urlencode(request_params(client, request_uri="https://rp.example/r.jwt"))
    )
    assert by_reference.status_code == 303
    assert parse_qs(urlsplit(by_reference.headers["location"]).query)["error"] == [
        "request_uri_not_supported"
    ]
    async with runtime.database.session() as session:
        await session.execute(
            update(PushedAuthorizationRequest).values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    expired = await http.get(authorize_with(client, uri))
    assert expired.status_code == 400 and "expired" in expired.text
    unknown = await http.get("/authorize?" + urlencode({"client_id": "nobody", "request_uri": uri}))
    assert unknown.status_code == 400


async def test_a_client_that_requires_par_refuses_a_plain_request(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, require_pushed_authorization_requests=True)
    plain = await http.get("/authorize?" + urlencode(request_params(client)))
    assert plain.status_code == 303
    location = plain.headers["location"]
    assert location.startswith(REDIRECT_URI)
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s-123"]
    assert "PAR" in query["error_description"][0]
    unregistered = await http.get(
        "/authorize?" + urlencode(request_params(client, redirect_uri="https://evil.example/"))
    )
    assert unregistered.status_code == 400, "never a redirect to an unregistered address"
    uri = (await push(http, client)).json()["request_uri"]
    callback = await log_in_and_consent(
        http, authorize_with(client, uri), user.email, user.password
    )
    assert parse_qs(urlsplit(callback).query)["code"]


async def test_a_server_that_requires_par_says_so_and_refuses_plain_requests(
    runtime: Runtime,
) -> None:
    client = await make_rp(runtime)
    application = create_app(
        runtime.settings.model_copy(update={"require_pushed_authorization_requests": True})
    )
    async with (
        application.api.router.lifespan_context(application.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=ISSUER) as http,
    ):
        document = (await http.get("/.well-known/openid-configuration")).json()
        assert document["require_pushed_authorization_requests"] is True
        plain = await http.get("/authorize?" + urlencode(request_params(client)))
        assert plain.status_code == 303
        assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
        assert (await push(http, client)).status_code == 201


@pytest.mark.parametrize("mfa", ["acr_values", "client policy"])
async def test_enrolment_in_a_pushed_sign_in_continues_by_a_new_pushed_request(
    http: httpx.AsyncClient, runtime: Runtime, mfa: str
) -> None:
    """A person set up two-step verification in the middle of a PAR client's sign-in:
    "Continue" cannot be a plain /authorize URL (the client takes only pushed
    requests), so it is a request 1pass pushed again itself."""
    import pyotp

    user = await make_user(runtime)
    client = await make_rp(
        runtime,
        require_pushed_authorization_requests=True,
        require_second_factor=mfa == "client policy",
    )
    extra = {"acr_values": "urn:1pass:acr:mfa"} if mfa == "acr_values" else {}
    uri = (await push(http, client, **extra)).json()["request_uri"]
    setup = await submit_login(
        http, await http.get(authorize_with(client, uri)), user.email, user.password
    )
    assert 'action="/login/enrol"' in setup.text
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', setup.text)
    assert secret is not None
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', setup.text))
    fields = {k: html.unescape(v) for k, v in fields.items() if k != "credential"}
    codes = await http.post(
        "/login/enrol", data={**fields, "code": pyotp.TOTP(secret.group(1)).now()}
    )
    assert codes.status_code == 200 and "Your recovery codes" in codes.text
    link = re.search(r'<a id="continue" href="([^"]+)"', codes.text)
    assert link is not None
    continue_url = html.unescape(link.group(1))
    assert "request_uri=urn" in continue_url and "redirect_uri" not in continue_url
    consent = await http.get(continue_url)
    assert consent.status_code == 200 and "Allow" in consent.text, "signed in with both steps"
    done = await submit_consent(http, consent)
    assert done.status_code == 303
    assert parse_qs(urlsplit(done.headers["location"]).query)["state"] == ["s-123"]
