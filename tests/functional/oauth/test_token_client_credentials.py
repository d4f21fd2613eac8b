"""POST /token with grant_type=client_credentials, driven over HTTP through the app."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from onepass.app import OnePass
from onepass.clients import registry as clients
from onepass.clients.registry import describe_client
from onepass.operators.audit import Actor
from onepass.playbook import clients as playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER, database_stopped
from tests.factories import make_client
from tests.oidc import verify_access_token


async def jwks(http: httpx.AsyncClient) -> dict:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response.json()


async def test_client_credentials_basic_returns_verifiable_access_token(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "api:read"},
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == runtime.settings.access_token_ttl
    assert body["scope"] == "api:read"
    token = verify_access_token(
        body["access_token"], await jwks(http), issuer=ISSUER, audience=ISSUER
    )
    assert token.header["alg"] == "ES256"
    assert token.claims["sub"] == client.client_id
    assert token.claims["client_id"] == client.client_id
    assert token.claims["scope"] == "api:read"
    assert token.claims["exp"] - token.claims["iat"] == runtime.settings.access_token_ttl
    assert abs(token.claims["iat"] - time.time()) < 60


async def test_client_credentials_without_scope_grants_every_allowed_scope(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
    )
    assert response.json()["scope"] == "api:read api:write"


async def test_client_secret_post_client_gets_token(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime, token_endpoint_auth_method="client_secret_post")
    response = await http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    verify_access_token(
        response.json()["access_token"], await jwks(http), issuer=ISSUER, audience=ISSUER
    )


async def test_authlib_client_fetches_token_with_basic_and_post(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Authlib's OAuth2 client, an independent implementation, gets tokens both ways."""
    keys = await jwks(http)
    for method in ("client_secret_basic", "client_secret_post"):
        client = await make_client(runtime, token_endpoint_auth_method=method)
        async with AsyncOAuth2Client(
            client.client_id,
            client.client_secret,
            token_endpoint_auth_method=method,
            scope="api:write",
            transport=httpx.ASGITransport(app=app),
            base_url=ISSUER,
        ) as oauth:
            token = await oauth.fetch_token(f"{ISSUER}/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        claims = verify_access_token(
            token["access_token"], keys, issuer=ISSUER, audience=ISSUER
        ).claims
        assert claims["scope"] == "api:write"


async def test_authlib_client_with_either_secret_method_gets_token_whichever_was_registered(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """As Keycloak does: a client holding a secret may send it in Basic or in the form
    (openid-client 6 posts it by default); ``clients show`` keeps what was registered."""
    keys = await jwks(http)
    for registered in ("client_secret_basic", "client_secret_post"):
        client = await make_client(runtime, token_endpoint_auth_method=registered)
        for used in ("client_secret_basic", "client_secret_post"):
            async with AsyncOAuth2Client(
                client.client_id,
                client.client_secret,
                token_endpoint_auth_method=used,
                transport=httpx.ASGITransport(app=app),
                base_url=ISSUER,
            ) as oauth:
                token = await oauth.fetch_token(f"{ISSUER}/token", grant_type="client_credentials")
            verify_access_token(token["access_token"], keys, issuer=ISSUER, audience=ISSUER)
            # A wrong secret is refused either way, with the same answer.
            async with AsyncOAuth2Client(
                client.client_id,
                "wrong",
                token_endpoint_auth_method=used,
                transport=httpx.ASGITransport(app=app),
                base_url=ISSUER,
            ) as oauth:
                with pytest.raises(AuthlibOAuthError) as refused:
                    await oauth.fetch_token(f"{ISSUER}/token", grant_type="client_credentials")
            assert refused.value.error == "invalid_client"
        async with runtime.database.session() as session:
            shown = describe_client(await clients.find_client(session, client.client_id))
        assert shown["token_endpoint_auth_method"] == registered


async def test_public_client_sending_a_secret_is_invalid_client(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(
        runtime,
        public=True,
        grant_types=["authorization_code"],
        redirect_uris=["https://rp.example/cb"],
    )
    answer = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, "made-up"),
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


async def test_secret_with_reserved_characters_is_form_decoded_in_basic(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding."""
    client = await make_client(runtime)
    encoded = base64.b64encode(
        f"{client.client_id}:{client.client_secret}".replace("-", "%2D").encode()
    ).decode()
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {encoded}"},
    )
    assert response.status_code == 200, response.text


async def test_rs256_access_tokens_when_configured(runtime: Runtime) -> None:
    from tests.conftest import make_settings

    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, access_token_alg="RS256"
    )
    client = await make_client(runtime)
    from onepass.app import create_app

    application = create_app(settings)
    async with (
        application.api.router.lifespan_context(application.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=ISSUER) as http,
    ):
        response = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret),
        )
        token = verify_access_token(
            response.json()["access_token"], await jwks(http), issuer=ISSUER, audience=ISSUER
        )
    assert token.header["alg"] == "RS256"


async def test_deleted_client_is_refused_on_every_process_within_cache_ttl(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    data = {"grant_type": "client_credentials"}
    auth = (client.client_id, client.client_secret)
    assert (await http.post("/token", data=data, auth=auth)).status_code == 200
    await playbook.delete(runtime, Actor.cli(), client.client_id)
    await _eventually_status(http, data, auth, 401)


async def test_rotated_secret_replaces_old_one_within_cache_ttl(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    data = {"grant_type": "client_credentials"}
    assert (
        await http.post("/token", data=data, auth=(client.client_id, client.client_secret))
    ).status_code == 200
    rotated = await playbook.rotate_secret(runtime, Actor.cli(), client.client_id)
    new_secret = rotated["client_secret"]
    await _eventually_status(http, data, (client.client_id, client.client_secret), 401)
    assert (
        await http.post("/token", data=data, auth=(client.client_id, new_secret))
    ).status_code == 200


async def _eventually_status(
    http: httpx.AsyncClient, data: dict, auth: tuple, status: int, within: float = 5.0
) -> None:
    import asyncio

    deadline = time.monotonic() + within
    while True:
        response = await http.post("/token", data=data, auth=auth)
        if response.status_code == status:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"still {response.status_code} after {within}s, expected {status}")
        await asyncio.sleep(0.05)


async def test_database_down_gives_503_temporarily_unavailable_for_uncached_client(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    cached = await make_client(runtime)
    uncached = await make_client(runtime)
    data = {"grant_type": "client_credentials"}
    assert (
        await http.post("/token", data=data, auth=(cached.client_id, cached.client_secret))
    ).status_code == 200
    async with database_stopped(app.services.runtime.database):
        response = await http.post(
            "/token", data=data, auth=(uncached.client_id, uncached.client_secret)
        )
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert response.headers["retry-after"]
    assert (
        await http.post("/token", data=data, auth=(uncached.client_id, uncached.client_secret))
    ).status_code == 200


async def test_client_cache_shares_one_load_and_survives_a_cancelled_loader(
    runtime: Runtime,
) -> None:
    import asyncio

    client = await make_client(runtime)
    cache = clients.ClientCache(runtime.database, ttl=60)
    loader = asyncio.create_task(cache.get(client.client_id))
    await asyncio.sleep(0)  # the loader has started its query
    waiters = [asyncio.create_task(cache.get(client.client_id)) for _ in range(5)]
    await asyncio.sleep(0)
    loader.cancel()
    results = await asyncio.gather(*waiters)
    assert all(r is not None and r.client_id == client.client_id for r in results)
    assert loader.cancelled()


async def test_a_client_in_use_is_read_again_before_its_entry_ends_and_never_older_than_ttl(
    runtime: Runtime,
) -> None:
    """Refresh-ahead: asked for in the last quarter of its life, an entry is served and
    read again in the background, so it never expires under use; what the background
    read saw (here, the deletion) is served from then on, within the ttl."""
    import asyncio

    now = [0.0]
    client = await make_client(runtime)
    cache = clients.ClientCache(runtime.database, ttl=10, monotonic=lambda: now[0])
    assert (await cache.get(client.client_id)) is not None  # loaded at 0, good until 10
    await playbook.delete(runtime, Actor.cli(), client.client_id)
    now[0] = 5.0
    assert (await cache.get(client.client_id)) is not None  # fresh: no reload yet
    assert not cache._reloads
    now[0] = 8.0
    assert (await cache.get(client.client_id)) is not None  # served, and read again
    await asyncio.gather(*cache._reloads)
    assert (await cache.get(client.client_id)) is None  # the deletion, before 10
    now[0] = 17.0
    assert (await cache.get(client.client_id)) is None  # the reload's entry, good until 18


async def test_requests_in_one_tick_of_the_refresh_ahead_window_start_one_reload(
    runtime: Runtime,
) -> None:
    """Many requests arriving together in an entry's last quarter start one background
    read, and all of them, and the requests after it, are answered. (Before, each
    started its own read before the first had begun; the second read's end found the
    first's gone, failed with a KeyError and left its waiters hanging: CI saw a grant
    test wait until its timeout.)"""
    import asyncio

    now = [0.0]
    client = await make_client(runtime)
    cache = clients.ClientCache(runtime.database, ttl=10, monotonic=lambda: now[0])
    assert (await cache.get(client.client_id)) is not None
    now[0] = 8.0
    answers = await asyncio.wait_for(
        asyncio.gather(*(cache.get(client.client_id) for _ in range(20))), timeout=10
    )
    assert all(a is not None and a.client_id == client.client_id for a in answers)
    assert len(cache._reloads) == 1
    await asyncio.wait_for(asyncio.gather(*cache._reloads), timeout=10)
    now[0] = 11.0  # past the first entry: served by what the reload read, at 8
    assert (await cache.get(client.client_id)) is not None
    assert not cache._loading


async def test_a_reload_cancelled_before_it_runs_leaves_no_request_waiting(
    runtime: Runtime,
) -> None:
    import asyncio

    now = [0.0]
    client = await make_client(runtime)
    cache = clients.ClientCache(runtime.database, ttl=10, monotonic=lambda: now[0])
    assert (await cache.get(client.client_id)) is not None
    now[0] = 8.0
    assert (await cache.get(client.client_id)) is not None  # starts the reload
    (reload,) = cache._reloads
    reload.cancel()  # e.g. the server shutting down, before the task's first step
    await asyncio.sleep(0)
    now[0] = 11.0  # expired: this request must load, not wait on the cancelled reload
    answer = await asyncio.wait_for(cache.get(client.client_id), timeout=10)
    assert answer is not None and answer.client_id == client.client_id
