"""Resource Indicators (RFC 8707): resource servers, a client's allowed resources, and
``resource`` at /authorize, /par and /token (code, refresh, client_credentials). The
tokens are verified with joserfc (aud, scope, exp, alg); Authlib's client asks for a
client_credentials token with ``resource``. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import select

from onepass.app import OnePass
from onepass.clients.registry import ClientChanges, InvalidClientSettings
from onepass.clients.resources import InvalidResource, ResourceExists, ResourceNotFound
from onepass.operators.audit import Actor
from onepass.operators.models import AuditLogEntry
from onepass.playbook import clients as client_playbook
from onepass.playbook import resources as playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, Client, UserInfo, make_client, make_rp, make_user
from tests.flow import VERIFIER, authorize_url, log_in_and_consent
from tests.oidc import verify_access_token

ORDERS = "https://orders.example/api"
BILLING = "urn:example:billing"
RP_SCOPE = "openid email offline_access orders:read orders:write"


async def register(
    runtime: Runtime,
    identifier: str = ORDERS,
    scopes: tuple[str, ...] = ("orders:read",),
    **kw: Any,
) -> dict[str, Any]:
    return await playbook.create(runtime, Actor.cli(), identifier=identifier, scopes=scopes, **kw)


async def jwks(http: httpx.AsyncClient) -> dict[str, Any]:
    return (await http.get("/.well-known/jwks.json")).json()


def assert_refused(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert response.headers["cache-control"] == "no-store"


async def code_for(http: httpx.AsyncClient, client: Client, user: UserInfo, **extra: str) -> str:
    extra.setdefault("scope", RP_SCOPE)
    callback = await log_in_and_consent(
        http, authorize_url(client, **extra), user.email, user.password
    )
    query = parse_qs(urlsplit(callback).query)
    assert "code" in query, callback
    return query["code"][0]


def redeem(http: httpx.AsyncClient, client: Client, code: str, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
        **extra,
    }
    return http.post("/token", data=data, auth=(client.client_id, client.client_secret or ""))


def refresh(http: httpx.AsyncClient, client: Client, token: str, **extra: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return http.post("/token", data=data, auth=(client.client_id, client.client_secret or ""))


# ---------------------------------------------------------------- client_credentials


async def test_client_credentials_with_resource_is_audience_restricted(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(
        runtime,
        scopes=("orders:read", "orders:write"),
        access_token_ttl=900,
        signing_alg="RS256",
    )
    client = await make_client(
        runtime, scope="api:read orders:read orders:write", allowed_resources=[ORDERS]
    )
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": ORDERS},
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 900
    token = verify_access_token(
        body["access_token"], await jwks(http), issuer=ISSUER, audience=ORDERS
    )
    assert token.header["alg"] == "RS256"
    assert token.claims["aud"] == ORDERS
    # Only the scopes the resource defines: api:read is not one of them.
    assert token.claims["scope"] == "orders:read orders:write" == body["scope"]
    assert token.claims["exp"] - token.claims["iat"] == 900


async def test_client_credentials_without_resource_is_unchanged(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime)
    client = await make_client(runtime, scope="api:read orders:read", allowed_resources=[ORDERS])
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 200, response.text
    token = verify_access_token(
        response.json()["access_token"], await jwks(http), issuer=ISSUER, audience=ISSUER
    )
    assert token.claims["aud"] == runtime.settings.audience
    assert token.claims["scope"] == "api:read orders:read"
    assert token.header["alg"] == runtime.settings.access_token_alg


async def test_authlib_client_fetches_a_token_for_a_resource(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Authlib's OAuth2 client, an independent implementation, sends ``resource``."""
    await register(runtime)
    client = await make_client(runtime, scope="orders:read", allowed_resources=[ORDERS])
    async with AsyncOAuth2Client(
        client.client_id,
        client.client_secret,
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as oauth:
        token = await oauth.fetch_token(
            f"{ISSUER}/token", grant_type="client_credentials", resource=ORDERS
        )
    claims = verify_access_token(
        token["access_token"], await jwks(http), issuer=ISSUER, audience=ORDERS
    ).claims
    assert claims["scope"] == "orders:read"


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        (BILLING, "registered, not allowed for this client"),
        ("https://unknown.example/", "not registered"),
        ("https://orders.example/api#frag", "a fragment"),
        ("orders", "not an absolute URI"),
    ],
)
async def test_client_credentials_refuses_a_resource_it_may_not_use(
    http: httpx.AsyncClient, runtime: Runtime, resource: str, why: str
) -> None:
    await register(runtime)
    await register(runtime, BILLING, ("billing:read",))
    client = await make_client(runtime, scope="orders:read", allowed_resources=[ORDERS])
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": resource},
        auth=(client.client_id, client.client_secret),
    )
    assert_refused(response, "invalid_target")


async def test_a_deleted_resource_server_is_invalid_target_and_leaves_the_clients(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime)
    client = await make_client(runtime, scope="orders:read", allowed_resources=[ORDERS])
    deleted = await playbook.delete(runtime, Actor.cli(), ORDERS)
    assert deleted["clients"] == [client.client_id]
    shown = await client_playbook.update(
        runtime, Actor.cli(), client.client_id, ClientChanges(name="renamed")
    )
    assert shown["allowed_resources"] == []
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": ORDERS},
        auth=(client.client_id, client.client_secret),
    )
    assert_refused(response, "invalid_target")


# ---------------------------------------------------------------- the code flow


async def test_code_and_refresh_remember_the_resource(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime, access_token_ttl=600)
    user = await make_user(runtime)
    rp = await make_rp(runtime, scope=RP_SCOPE, allowed_resources=[ORDERS])
    code = await code_for(http, rp, user, resource=ORDERS)
    response = await redeem(http, rp, code)
    assert response.status_code == 200, response.text
    body = response.json()
    keys = await jwks(http)
    token = verify_access_token(body["access_token"], keys, issuer=ISSUER, audience=ORDERS)
    # The resource's scopes only: no openid, email or offline_access in its token.
    assert token.claims["scope"] == "orders:read" == body["scope"]
    assert token.claims["exp"] - token.claims["iat"] == 600 == body["expires_in"]
    assert token.claims["sub"] == user.sub
    assert "id_token" in body and "refresh_token" in body

    # The refresh token remembers it; asking for it again narrows to the same.
    again = await refresh(http, rp, body["refresh_token"])
    assert again.status_code == 200, again.text
    renewed = verify_access_token(
        again.json()["access_token"], keys, issuer=ISSUER, audience=ORDERS
    )
    assert renewed.claims["scope"] == "orders:read"
    third = await refresh(http, rp, again.json()["refresh_token"], resource=ORDERS)
    assert third.status_code == 200, third.text

    # The token is not for userinfo; introspection says whom it is for.
    userinfo = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 401
    assert userinfo.json()["error"] == "invalid_token"
    info = await http.post(
        "/introspect",
        data={"token": third.json()["access_token"]},
        auth=(rp.client_id, rp.client_secret or ""),
    )
    assert info.json()["active"] is True and info.json()["aud"] == ORDERS


async def test_refresh_for_another_resource_is_invalid_target_and_spends_nothing(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime)
    await register(runtime, BILLING, ("billing:read",))
    user = await make_user(runtime)
    rp = await make_rp(runtime, scope=RP_SCOPE, allowed_resources=[ORDERS, BILLING])
    body = (await redeem(http, rp, await code_for(http, rp, user, resource=ORDERS))).json()
    assert_refused(
        await refresh(http, rp, body["refresh_token"], resource=BILLING), "invalid_target"
    )
    still = await refresh(http, rp, body["refresh_token"])
    assert still.status_code == 200, still.text


async def test_a_code_without_resource_cannot_gain_one_at_the_token_endpoint(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime)
    user = await make_user(runtime)
    rp = await make_rp(runtime, scope=RP_SCOPE, allowed_resources=[ORDERS])
    code = await code_for(http, rp, user)
    assert_refused(await redeem(http, rp, code, resource=ORDERS), "invalid_target")
    # The refused request left the code unused; without resource it is today's token.
    response = await redeem(http, rp, code)
    assert response.status_code == 200, response.text
    token = verify_access_token(
        response.json()["access_token"], await jwks(http), issuer=ISSUER, audience=ISSUER
    )
    assert "openid" in token.claims["scope"].split()
    userinfo = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert userinfo.status_code == 200


@pytest.mark.parametrize(
    "resource", [BILLING, "https://unknown.example/", "https://orders.example/api#x", "/relative"]
)
async def test_authorize_refuses_a_resource_by_redirect_with_invalid_target(
    http: httpx.AsyncClient, runtime: Runtime, resource: str
) -> None:
    await register(runtime)
    await register(runtime, BILLING, ("billing:read",))
    rp = await make_rp(runtime, scope=RP_SCOPE, allowed_resources=[ORDERS])
    response = await http.get(authorize_url(rp, scope=RP_SCOPE, resource=resource))
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    assert query["error"] == ["invalid_target"]
    assert query["state"] == ["xyz"]


async def test_par_refuses_a_resource_the_client_may_not_use(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime)
    rp = await make_rp(runtime, scope=RP_SCOPE)
    params = parse_qs(urlsplit(authorize_url(rp, scope=RP_SCOPE, resource=ORDERS)).query)
    form = {k: v[0] for k, v in params.items()}
    response = await http.post("/par", data=form, auth=(rp.client_id, rp.client_secret or ""))
    assert_refused(response, "invalid_target")


async def test_pushed_request_with_resource_gives_a_resource_token(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await register(runtime)
    user = await make_user(runtime)
    rp = await make_rp(runtime, scope=RP_SCOPE, allowed_resources=[ORDERS])
    params = parse_qs(urlsplit(authorize_url(rp, scope=RP_SCOPE, resource=ORDERS)).query)
    pushed = await http.post(
        "/par",
        data={k: v[0] for k, v in params.items()},
        auth=(rp.client_id, rp.client_secret or ""),
    )
    assert pushed.status_code == 201, pushed.text
    url = f"/authorize?client_id={rp.client_id}&request_uri={pushed.json()['request_uri']}"
    callback = await log_in_and_consent(http, url, user.email, user.password)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = await redeem(http, rp, code)
    assert response.status_code == 200, response.text
    verify_access_token(
        response.json()["access_token"], await jwks(http), issuer=ISSUER, audience=ORDERS
    )


# ---------------------------------------------------------------- registration rules


@pytest.mark.parametrize(
    ("identifier", "scopes", "options"),
    [
        ("https://api.example/#x", ("a",), {}),
        ("api.example", ("a",), {}),
        ("", ("a",), {}),
        ("https://api.example/", (), {}),
        ("https://api.example/", ("openid",), {}),
        ("https://api.example/", ("offline_access", "a"), {}),
        ("https://api.example/", ('a"b',), {}),
        ("https://api.example/", ("a",), {"access_token_ttl": 59}),
        ("https://api.example/", ("a",), {"access_token_ttl": 86401}),
        ("https://api.example/", ("a",), {"signing_alg": "HS256"}),
        ("https://api.example/", ("a",), {"signing_alg": "EdDSA"}),  # not in the ring
    ],
)
async def test_resource_registration_refuses_bad_settings(
    runtime: Runtime, identifier: str, scopes: tuple[str, ...], options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidResource):
        await register(runtime, identifier, scopes, **options)


async def test_resources_are_audited_and_unique(runtime: Runtime) -> None:
    created = await register(runtime, name="Orders", access_token_ttl=900, signing_alg="RS256")
    assert created["identifier"] == ORDERS and created["name"] == "Orders"
    assert created["scopes"] == ["orders:read"] and created["signing_alg"] == "RS256"
    with pytest.raises(ResourceExists):
        await register(runtime)
    updated = await playbook.update(
        runtime, Actor.cli(), ORDERS, scopes=["orders:read", "orders:write"], access_token_ttl=300
    )
    assert updated["scopes"] == ["orders:read", "orders:write"]
    assert updated["access_token_ttl"] == 300
    await playbook.delete(runtime, Actor.cli(), str(created["id"]))
    with pytest.raises(ResourceNotFound):
        await playbook.update(runtime, Actor.cli(), ORDERS, name="x")
    async with runtime.database.session() as session:
        rows = list(
            await session.scalars(
                select(AuditLogEntry.action).where(AuditLogEntry.target == ORDERS)
            )
        )
    assert rows == ["resources.create", "resources.update", "resources.delete"]


async def test_client_settings_name_only_registered_resources(runtime: Runtime) -> None:
    await register(runtime)
    with pytest.raises(InvalidClientSettings):
        await make_client(runtime, allowed_resources=["https://unknown.example/"])
    with pytest.raises(InvalidClientSettings):
        await make_client(runtime, allowed_resources=["not a uri"])
    client = await make_client(runtime)
    with pytest.raises(InvalidClientSettings):
        await client_playbook.update(
            runtime,
            Actor.cli(),
            client.client_id,
            ClientChanges(add_token_exchange_resources=("https://unknown.example/",)),
        )
    with pytest.raises(InvalidClientSettings):  # nothing to remove
        await client_playbook.update(
            runtime, Actor.cli(), client.client_id, ClientChanges(remove_resources=(ORDERS,))
        )
    shown = await client_playbook.update(
        runtime, Actor.cli(), client.client_id, ClientChanges(add_resources=(ORDERS,))
    )
    assert shown["allowed_resources"] == [ORDERS]


async def test_resource_inside_a_signed_request_object_counts_and_is_checked(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """RFC 9101: the object's ``resource`` is the request's; the outer one is ignored."""
    from urllib.parse import urlencode

    from tests.functional.oauth.test_request_object import (
        exchange as jar_exchange,
    )
    from tests.functional.oauth.test_request_object import (
        jar_client,
        make_key,
        request_object,
    )

    await register(runtime)
    await register(runtime, BILLING, ("billing:read",))
    user = await make_user(runtime)
    key = make_key("ES256")
    client = await jar_client(runtime, key, scope=RP_SCOPE, allowed_resources=[ORDERS])
    obj = request_object(client.client_id, key, scope="openid orders:read", resource=ORDERS)
    outer = {"client_id": client.client_id, "request": obj, "resource": BILLING}
    callback = await log_in_and_consent(
        http, "/authorize?" + urlencode(outer), user.email, user.password
    )
    body = await jar_exchange(http, client, key, "ES256", callback)
    token = verify_access_token(
        body["access_token"], await jwks(http), issuer=ISSUER, audience=ORDERS
    )
    assert token.claims["scope"] == "orders:read"

    refused = request_object(client.client_id, key, resource=BILLING)
    response = await http.get(
        "/authorize?" + urlencode({"client_id": client.client_id, "request": refused})
    )
    assert response.status_code == 303, response.text
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["invalid_target"]
