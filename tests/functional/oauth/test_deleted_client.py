"""Tokens of a deleted or disabled client stop working once the client cache has
forgotten it (``ONEPASS_CLIENT_CACHE_TTL``), not at their ``exp``. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError

from onepass.app import OnePass
from onepass.operators.audit import Actor
from onepass.playbook import clients as playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import Client, UserInfo, make_client, make_rp, make_user
from tests.flow import log_in_and_consent
from tests.functional.oauth.test_code_flow import rp_client


async def sign_in(
    app: OnePass, http: httpx.AsyncClient, client: Client, user: UserInfo
) -> dict[str, Any]:
    """The code flow with Authlib as the RP: its token response."""
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(http, url, user.email, user.password)
        return await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )


@pytest.fixture(params=["delete", "disable"])
def how(request: pytest.FixtureRequest) -> str:
    """``onepass clients delete`` or ``onepass clients disable``: the same effects."""
    return str(request.param)


async def remove_client(runtime: Runtime, client: Client, how: str = "delete") -> None:
    """``onepass clients delete`` (or ``disable``), then past every cached copy's TTL."""
    if how == "delete":
        await playbook.delete(runtime, Actor.cli(), client.client_id)
    else:
        await playbook.set_disabled(runtime, Actor.cli(), client.client_id, disabled=True)
    await asyncio.sleep(runtime.settings.client_cache_ttl + 0.1)


def userinfo(http: httpx.AsyncClient, access_token: str) -> Any:
    return http.get("/userinfo", headers={"authorization": f"Bearer {access_token}"})


async def test_userinfo_with_access_token_of_deleted_or_disabled_client_is_invalid_token(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, how: str
) -> None:
    client = await make_rp(runtime)
    token = await sign_in(app, http, client, await make_user(runtime))
    assert (await userinfo(http, token["access_token"])).status_code == 200

    await remove_client(runtime, client, how)
    refused = await userinfo(http, token["access_token"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


async def test_refresh_with_refresh_token_of_deleted_or_disabled_client_is_invalid_client(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, how: str
) -> None:
    client = await make_rp(runtime)
    token = await sign_in(app, http, client, await make_user(runtime))
    await remove_client(runtime, client, how)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        with pytest.raises(AuthlibOAuthError) as refused:
            await rp.refresh_token(f"{ISSUER}/token", refresh_token=token["refresh_token"])
    # RFC 6749 §5.2: the client no longer authenticates, so the request fails on that.
    assert refused.value.error == "invalid_client"


async def test_introspection_of_deleted_or_disabled_clients_tokens_is_inactive(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, how: str
) -> None:
    client = await make_rp(runtime)
    resource_server = await make_client(runtime)
    token = await sign_in(app, http, client, await make_user(runtime))
    await remove_client(runtime, client, how)
    for value in (token["access_token"], token["refresh_token"]):
        answer = await http.post(
            "/introspect",
            data={"token": value},
            auth=(resource_server.client_id, resource_server.client_secret),
        )
        assert answer.status_code == 200 and answer.json() == {"active": False}
        own = await http.post(
            "/introspect", data={"token": value}, auth=(client.client_id, client.client_secret)
        )
        assert own.status_code == 401 and own.json()["error"] == "invalid_client"


async def test_logout_with_id_token_hint_of_deleted_or_disabled_client_asks_before_signing_out(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, how: str
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    token = await sign_in(app, http, client, user)
    await remove_client(runtime, client, how)

    page = await http.get("/logout", params={"id_token_hint": token["id_token"]})
    assert page.status_code == 200 and "Sign out of 1pass?" in page.text
    assert "onepass_session" not in page.headers.get("set-cookie", "")
    # Still signed in: another RP's silent request gets a code.
    other = await make_rp(runtime, first_party=True)
    async with rp_client(app, other.client_id, other.client_secret) as rp:
        url, _ = rp.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=secrets.token_urlsafe(48), prompt="none"
        )
    silent = await http.get(url)
    assert silent.status_code == 303 and "code=" in silent.headers["location"]
