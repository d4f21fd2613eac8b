"""Dynamic Client Registration (RFC 7591, RFC 7592, OpenID Connect Dynamic Client
Registration 1.0) over HTTP through the app: ``POST /register`` with an initial access
token (or open registration), the registered client getting tokens with Authlib's
client, ``GET``/``PUT``/``DELETE /register/{client_id}`` with the registration access
token, every bad input answered in RFC 7591 §3.2.2's format, and the audit rows.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import select, update

from onepass.app import OnePass, create_app
from onepass.clients.models import InitialAccessToken, OAuthApplication
from onepass.clients.registry import describe_client, find_client
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook import registration as playbook
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI

SERVICE = {"client_name": "Inventory service", "grant_types": ["client_credentials"]}
RP = {
    "client_name": "Photo app",
    "redirect_uris": [REDIRECT_URI],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
}


async def initial_token(runtime: Runtime, **options: Any) -> dict[str, Any]:
    options.setdefault("ttl", timedelta(hours=1))
    options.setdefault("max_uses", None)
    return await playbook.create_initial_token(runtime, Actor.cli(), **options)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def register(
    http: httpx.AsyncClient, metadata: dict[str, Any], token: str | None
) -> httpx.Response:
    return await http.post("/register", json=metadata, headers=bearer(token) if token else {})


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["error_description"]
    assert response.headers["cache-control"] == "no-store"


async def audit_rows(runtime: Runtime, action: str) -> list[audit.AuditLogEntry]:
    async with runtime.database.session(readonly=True) as session:
        return await audit.entries(session, action=action)


async def test_discovery_advertises_the_registration_endpoint(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["registration_endpoint"] == f"{ISSUER}/register"


async def test_registered_service_gets_a_token_with_authlib(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    issued = await initial_token(runtime)
    response = await register(
        http, {**SERVICE, "scope": "api:read", "contacts": ["ops@example.com"]}, issued["token"]
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["client_name"] == "Inventory service"
    assert body["grant_types"] == ["client_credentials"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["scope"] == "api:read"
    assert body["client_secret_expires_at"] == 0
    assert isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
    assert body["registration_access_token"].startswith("orat_")
    assert "contacts" not in body  # not a setting 1pass has: ignored (RFC 7591 §2)

    async with AsyncOAuth2Client(
        body["client_id"],
        body["client_secret"],
        transport=httpx.ASGITransport(app=http._transport.app),  # type: ignore[attr-defined]
        base_url=ISSUER,
    ) as rp:
        token = await rp.fetch_token(f"{ISSUER}/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "api:read"

    async with runtime.database.session(readonly=True) as session:
        app = await find_client(session, body["client_id"])
        shown = describe_client(app)
        stored = await session.get(InitialAccessToken, issued["id"])
        assert app.registration_access_token_hash != body["registration_access_token"]
        assert app.client_secret_hash != body["client_secret"]
    assert shown["registered_dynamically"] is True
    assert shown["registration_source"] == "initial_access_token"
    assert shown["initial_access_token_id"] == issued["id"]
    assert stored is not None and stored.uses == 1
    assert stored.token_hash != issued["token"]
    [row] = await audit_rows(runtime, playbook.REGISTER)
    assert row.actor == f"initial_access_token:{issued['id']}"
    assert row.via == "registration"
    assert row.ip_address == "127.0.0.1"
    assert row.target == body["client_id"]


async def test_registered_rp_gets_oidc_defaults(http: httpx.AsyncClient, runtime: Runtime) -> None:
    issued = await initial_token(runtime)
    response = await register(http, RP, issued["token"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["redirect_uris"] == [REDIRECT_URI]
    assert body["response_types"] == ["code"]
    assert body["id_token_signed_response_alg"] == "RS256"
    assert body["scope"] == "openid profile email offline_access"


async def test_public_client_gets_no_secret(http: httpx.AsyncClient, runtime: Runtime) -> None:
    issued = await initial_token(runtime)
    response = await register(http, {**RP, "token_endpoint_auth_method": "none"}, issued["token"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in body
    assert "client_secret_expires_at" not in body


async def test_private_key_jwt_client_registers_its_keys(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    from joserfc.jwk import ECKey

    public = ECKey.generate_key("P-256").as_dict(private=False)
    issued = await initial_token(runtime)
    response = await register(
        http,
        {**SERVICE, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public]}},
        issued["token"],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["jwks"] == {"keys": [public]}
    assert "client_secret" not in body


async def test_registration_without_a_token_is_refused_when_closed(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await register(http, SERVICE, None)
    assert_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer ")
    async with runtime.database.session(readonly=True) as session:
        assert list(await session.scalars(select(OAuthApplication))) == []


@pytest.mark.parametrize(
    "authorization",
    ["Bearer oiat_not-a-token", "Bearer someone-elses", "Basic dXNlcjpwYXNz", "Bearer "],
)
async def test_unknown_or_malformed_tokens_are_refused(
    http: httpx.AsyncClient, authorization: str
) -> None:
    response = await http.post("/register", json=SERVICE, headers={"authorization": authorization})
    assert_error(response, 401, "invalid_token")


async def test_expired_revoked_and_used_up_tokens_are_refused(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    expired = await initial_token(runtime)
    async with runtime.database.session() as session:
        await session.execute(
            update(InitialAccessToken)
            .where(InitialAccessToken.id == expired["id"])
            .values(expires_at=runtime.clock.now() - timedelta(seconds=1))
        )
    revoked = await initial_token(runtime)
    await playbook.revoke_initial_token(runtime, Actor.cli(), revoked["id"])
    once = await initial_token(runtime, max_uses=1)
    assert (await register(http, SERVICE, once["token"])).status_code == 201

    for token, why in (
        (expired["token"], "expired"),
        (revoked["token"], "revoked"),
        (once["token"], "as many times"),
    ):
        response = await register(http, SERVICE, token)
        assert_error(response, 401, "invalid_token")
        assert why in response.json()["error_description"]
    listed = {row["id"]: row["state"] for row in await playbook.list_initial_tokens(runtime)}
    assert listed == {expired["id"]: "expired", revoked["id"]: "revoked", once["id"]: "used_up"}


async def test_concurrent_registrations_never_exceed_max_uses(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    issued = await initial_token(runtime, max_uses=2)
    responses = await asyncio.gather(
        *(register(http, {**SERVICE, "client_name": f"s{i}"}, issued["token"]) for i in range(6))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 401, 401, 401, 401], [r.text for r in responses]
    async with runtime.database.session(readonly=True) as session:
        assert len(list(await session.scalars(select(OAuthApplication)))) == 2
        stored = await session.get(InitialAccessToken, issued["id"])
        assert stored is not None and stored.uses == 2


async def test_refused_registration_uses_none_of_the_token(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    issued = await initial_token(runtime, max_uses=1)
    bad = await register(http, {**SERVICE, "grant_types": ["password"]}, issued["token"])
    assert_error(bad, 400, "invalid_client_metadata")
    assert (await register(http, SERVICE, issued["token"])).status_code == 201


@pytest.mark.parametrize(
    ("metadata", "error", "says"),
    [
        (
            {**RP, "redirect_uris": ["https://rp.example/cb#frag"]},
            "invalid_redirect_uri",
            "fragment",
        ),
        ({**RP, "redirect_uris": "https://rp.example/cb"}, "invalid_redirect_uri", "array"),
        ({**RP, "redirect_uris": ["not a url"]}, "invalid_redirect_uri", "absolute"),
        ({**RP, "redirect_uris": []}, "invalid_redirect_uri", "redirect URI"),
        ({**SERVICE, "grant_types": ["password"]}, "invalid_client_metadata", "grant type"),
        ({**SERVICE, "grant_types": "client_credentials"}, "invalid_client_metadata", "array"),
        (
            {**SERVICE, "token_endpoint_auth_method": "tls_client_auth"},
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            {**SERVICE, "token_endpoint_auth_method": "none"},
            "invalid_client_metadata",
            "public client",
        ),
        ({**SERVICE, "token_endpoint_auth_method": 7}, "invalid_client_metadata", "string"),
        (
            {**SERVICE, "token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
            "jwks",
        ),
        (
            {**SERVICE, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
            "invalid_client_metadata",
            "public",
        ),
        ({**SERVICE, "jwks": ["x"]}, "invalid_client_metadata", "object"),
        (
            {**SERVICE, "jwks_uri": "http://169.254.169.254/keys"},
            "invalid_client_metadata",
            "jwks_uri",
        ),
        (
            {**RP, "backchannel_logout_uri": "http://10.0.0.1/logout"},
            "invalid_client_metadata",
            "private address",
        ),
        ({**RP, "id_token_signed_response_alg": "none"}, "invalid_client_metadata", "alg"),
        ({**RP, "response_types": ["token"]}, "invalid_client_metadata", "response_type"),
        ({**SERVICE, "response_types": ["code"]}, "invalid_client_metadata", "authorization_code"),
        ({**RP, "policy_uri": "javascript:alert(1)"}, "invalid_client_metadata", "policy"),
        ({**SERVICE, "client_name": ""}, "invalid_client_metadata", "name"),
        ({**SERVICE, "client_name": "x" * 3000}, "invalid_client_metadata", "client_name"),
        ({**SERVICE, "scope": 'bad"scope'}, "invalid_client_metadata", "scope"),
        ({**SERVICE, "dpop_bound_access_tokens": "yes"}, "invalid_client_metadata", "true"),
        ({**SERVICE, "client_secret": "mine"}, "invalid_client_metadata", "issued by the server"),
        ({**SERVICE, "software_statement": "eyJ.x.y"}, "unapproved_software_statement", "no"),
        ({**SERVICE, "software_statement": 12}, "invalid_software_statement", "JWT"),
    ],
)
async def test_bad_metadata_is_refused_in_rfc7591_form(
    http: httpx.AsyncClient,
    runtime: Runtime,
    metadata: dict[str, Any],
    error: str,
    says: str,
) -> None:
    issued = await initial_token(runtime)
    response = await register(http, metadata, issued["token"])
    assert_error(response, 400, error)
    assert says in response.json()["error_description"]
    async with runtime.database.session(readonly=True) as session:
        assert list(await session.scalars(select(OAuthApplication))) == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"client_name": ', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"client_name=x", "application/x-www-form-urlencoded"),
        (b'{"client_name": "x"}', "text/plain"),
        (b'{"client_name": "a\\u0000b"}', "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
async def test_malformed_bodies_are_clear_400s(
    http: httpx.AsyncClient, runtime: Runtime, content: bytes, content_type: str
) -> None:
    issued = await initial_token(runtime)
    response = await http.post(
        "/register",
        content=content,
        headers={**bearer(issued["token"]), "content-type": content_type},
    )
    assert_error(response, 400, "invalid_client_metadata")


async def test_huge_body_is_refused_with_413(http: httpx.AsyncClient, runtime: Runtime) -> None:
    issued = await initial_token(runtime)
    response = await register(http, {**SERVICE, "contacts": ["x" * 1000] * 100}, issued["token"])
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


# -- RFC 7592 ----------------------------------------------------------------------------


async def registered(http: httpx.AsyncClient, runtime: Runtime, metadata: dict[str, Any]) -> Any:
    issued = await initial_token(runtime)
    response = await register(http, metadata, issued["token"])
    assert response.status_code == 201, response.text
    return response.json()


async def test_read_returns_the_registration(http: httpx.AsyncClient, runtime: Runtime) -> None:
    client = await registered(http, runtime, RP)
    response = await http.get(
        f"/register/{client['client_id']}", headers=bearer(client["registration_access_token"])
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == client["client_id"]
    assert body["redirect_uris"] == [REDIRECT_URI]
    assert "client_secret" not in body and "registration_access_token" not in body


async def test_another_clients_token_is_refused(http: httpx.AsyncClient, runtime: Runtime) -> None:
    first = await registered(http, runtime, SERVICE)
    second = await registered(http, runtime, SERVICE)
    uri = f"/register/{first['client_id']}"
    for method in ("GET", "PUT", "DELETE"):
        response = await http.request(
            method, uri, json=SERVICE, headers=bearer(second["registration_access_token"])
        )
        assert_error(response, 401, "invalid_token")
    assert_error(await http.get(uri), 401, "invalid_token")
    assert_error(
        await http.get("/register/nope", headers=bearer(first["registration_access_token"])),
        401,
        "invalid_token",
    )
    # An initial access token manages nothing.
    issued = await initial_token(runtime)
    assert_error(await http.get(uri, headers=bearer(issued["token"])), 401, "invalid_token")


async def test_operator_registered_client_cannot_be_managed(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tests.factories import make_client

    client = await make_client(runtime)
    response = await http.get(f"/register/{client.client_id}", headers=bearer("orat_guess"))
    assert_error(response, 401, "invalid_token")


async def test_update_replaces_metadata_and_rotates_the_token(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await registered(http, runtime, RP)
    uri = f"/register/{client['client_id']}"
    old = client["registration_access_token"]
    changed = {
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "client_name": "Photo app 2",
        "redirect_uris": ["https://photos.example/cb"],
        "grant_types": ["authorization_code"],
    }
    response = await http.put(uri, json=changed, headers=bearer(old))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_name"] == "Photo app 2"
    assert body["redirect_uris"] == ["https://photos.example/cb"]
    assert body["grant_types"] == ["authorization_code"]
    assert body["scope"] == "openid profile email"  # omitted: the default again
    new = body["registration_access_token"]
    assert new != old
    assert_error(await http.get(uri, headers=bearer(old)), 401, "invalid_token")
    assert (await http.get(uri, headers=bearer(new))).json()["client_name"] == "Photo app 2"
    [row] = await audit_rows(runtime, playbook.UPDATE_REGISTRATION)
    assert row.actor == f"registration_access_token:{client['client_id']}"
    assert row.ip_address == "127.0.0.1"
    assert "client_name" in row.detail["changed"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_secret": "chosen-by-the-client"}, "invalid_client_metadata"),
        ({"client_id": "someone-else"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://x.example/cb#f"]}, "invalid_redirect_uri"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"software_statement": "eyJ.x.y"}, "unapproved_software_statement"),
    ],
)
async def test_bad_updates_are_refused_and_change_nothing(
    http: httpx.AsyncClient, runtime: Runtime, change: dict[str, Any], error: str
) -> None:
    client = await registered(http, runtime, RP)
    uri = f"/register/{client['client_id']}"
    token = client["registration_access_token"]
    response = await http.put(uri, json={**RP, **change}, headers=bearer(token))
    assert_error(response, 400, error)
    after = await http.get(uri, headers=bearer(token))  # the token did not rotate
    assert after.status_code == 200
    assert after.json()["redirect_uris"] == [REDIRECT_URI]


async def test_delete_removes_the_client_everywhere(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await registered(http, runtime, SERVICE)
    uri = f"/register/{client['client_id']}"
    token = client["registration_access_token"]
    response = await http.delete(uri, headers=bearer(token))
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await http.get(uri, headers=bearer(token)), 401, "invalid_token")
    await asyncio.sleep(runtime.settings.client_cache_ttl + 0.1)
    refused = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    [row] = await audit_rows(runtime, playbook.DELETE_REGISTRATION)
    assert row.target == client["client_id"]


# -- open registration -------------------------------------------------------------------


@pytest.fixture
async def open_http(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    runtime = Runtime.build(
        settings.model_copy(update={"open_registration": True, "open_registration_max_per_ip": 2})
    )
    await prepare(runtime)
    application: OnePass = create_app(runtime.settings)
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client, runtime
    await runtime.close()


async def test_open_registration_needs_no_token_and_is_throttled_per_ip(
    open_http: tuple[httpx.AsyncClient, Runtime],
) -> None:
    http, runtime = open_http
    first = await register(http, SERVICE, None)
    assert first.status_code == 201, first.text
    assert (await register(http, SERVICE, None)).status_code == 201
    third = await register(http, SERVICE, None)
    assert_error(third, 429, "temporarily_unavailable")
    assert int(third.headers["retry-after"]) > 0
    # An initial access token is not throttled, and is still checked when sent.
    issued = await initial_token(runtime)
    assert (await register(http, SERVICE, issued["token"])).status_code == 201
    assert_error(await register(http, SERVICE, "oiat_wrong"), 401, "invalid_token")

    rows = await audit_rows(runtime, playbook.REGISTER)
    assert sorted(row.actor for row in rows) == [
        f"initial_access_token:{issued['id']}",
        "open registration",
        "open registration",
    ]
    async with runtime.database.session(readonly=True) as session:
        app = await find_client(session, first.json()["client_id"])
        assert describe_client(app)["registration_source"] == "open"


ODD_VALUES: list[Any] = [
    0,
    -1,
    1.5,
    True,
    "",
    " ",
    "\u202e",
    "x" * 1999,
    [],
    [None],
    [1, 2],
    [[]],
    ["a"] * 21,
    {},
    {"keys": "x"},
    {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]},
    "http://[::1",
    "https://h:99999/cb",
    "https://user:pw@rp.example/cb",
]


@pytest.mark.parametrize("member", [*playbook.registration.METADATA, "response_types"])
async def test_odd_values_of_every_member_are_400s_never_500s(
    http: httpx.AsyncClient, runtime: Runtime, member: str
) -> None:
    issued = await initial_token(runtime)
    for value in ODD_VALUES:
        response = await register(http, {**RP, member: value}, issued["token"])
        assert response.status_code in (201, 400), (member, value, response.text)
        if response.status_code == 400:
            body = response.json()
            assert body["error"] in ("invalid_client_metadata", "invalid_redirect_uri"), body
