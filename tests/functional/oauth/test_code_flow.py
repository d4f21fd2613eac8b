"""The whole authorization code flow, driven by Authlib's client as an RP would."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.app import OnePass
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import POST_LOGOUT_URI, REDIRECT_URI, make_rp, make_user
from tests.flow import log_in_and_consent
from tests.oidc import verify_access_token

SCOPE = "openid profile email offline_access"


def rp_client(app: OnePass, client_id: str, secret: str | None, **kw: object) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id,
        secret,
        redirect_uri=REDIRECT_URI,
        scope=SCOPE,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
        **kw,
    )


def verify_id_token(token: str, jwks: dict, client_id: str) -> dict:
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        auth_time={"essential": True},
    ).validate(decoded.claims)
    return {"header": decoded.header, **decoded.claims}


async def test_code_flow_end_to_end_with_authlib(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime, name="Ada Lovelace")
    client = await make_rp(runtime)
    jwks = (await http.get("/.well-known/jwks.json")).json()
    verifier = secrets.token_urlsafe(48)
    nonce = "n-" + secrets.token_urlsafe(8)

    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, state = rp.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=verifier, nonce=nonce
        )
        callback = await log_in_and_consent(http, url, user.email, user.password)
        query = parse_qs(urlsplit(callback).query)
        assert callback.startswith(REDIRECT_URI + "?")
        assert query["state"] == [state] and query["iss"] == [ISSUER]

        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
        assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(token)
        assert set(token["scope"].split()) == set(SCOPE.split())

        id_token = verify_id_token(token["id_token"], jwks, client.client_id)
        assert id_token["header"]["alg"] == "RS256"
        assert id_token["sub"] == user.sub
        assert id_token["nonce"] == nonce
        assert id_token["acr"] and id_token["amr"] == ["pwd"] and id_token["sid"]
        from onepass.oauth.id_token import at_hash

        assert id_token["at_hash"] == at_hash(token["access_token"])
        access = verify_access_token(token["access_token"], jwks, issuer=ISSUER, audience=ISSUER)
        assert access.claims["sub"] == user.sub and access.claims["client_id"] == client.client_id

        info = (await rp.get(f"{ISSUER}/userinfo")).json()
        assert info == {
            "sub": user.sub,
            "email": user.email,
            "email_verified": False,
            "name": "Ada Lovelace",
            "updated_at": info["updated_at"],
        }

        first_refresh = token["refresh_token"]
        refreshed = await rp.refresh_token(f"{ISSUER}/token", refresh_token=first_refresh)
        assert refreshed["refresh_token"] != first_refresh
        assert verify_id_token(refreshed["id_token"], jwks, client.client_id)["sub"] == user.sub

        # Presenting the rotated token again revokes the whole family.
        with pytest.raises(AuthlibOAuthError) as replay:
            await rp.refresh_token(f"{ISSUER}/token", refresh_token=first_refresh)
        assert replay.value.error == "invalid_grant"
        with pytest.raises(AuthlibOAuthError) as after:
            await rp.refresh_token(f"{ISSUER}/token", refresh_token=refreshed["refresh_token"])
        assert after.value.error == "invalid_grant"
        revoked_access = await http.get(
            "/userinfo", headers={"authorization": f"Bearer {refreshed['access_token']}"}
        )
        assert revoked_access.status_code == 401

    # RP-initiated logout with id_token_hint: back to the registered URI with state.
    out = await http.get(
        "/logout",
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": POST_LOGOUT_URI,
            "state": "bye",
        },
    )
    assert out.status_code == 303
    assert out.headers["location"] == f"{POST_LOGOUT_URI}?state=bye"
    # The session is gone: a silent authorization now needs a login.
    silent = await http.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "prompt": "none",
            "state": "s",
        },
    )
    assert silent.status_code == 303
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["login_required"]


async def test_revoked_access_token_is_refused_by_userinfo_and_introspection(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(http, url, user.email, user.password)
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
        auth = (client.client_id, client.client_secret)
        active = (
            await http.post("/introspect", data={"token": token["access_token"]}, auth=auth)
        ).json()
        assert (
            active["active"] is True
            and active["sub"] == user.sub
            and active["client_id"] == client.client_id
        )
        refresh_info = (
            await http.post("/introspect", data={"token": token["refresh_token"]}, auth=auth)
        ).json()
        assert refresh_info["active"] is True and refresh_info["token_type"] == "refresh_token"

        await rp.revoke_token(
            f"{ISSUER}/revoke", token=token["access_token"], token_type_hint="access_token"
        )
        assert (
            await http.get(
                "/userinfo", headers={"authorization": f"Bearer {token['access_token']}"}
            )
        ).status_code == 401
        assert (
            await http.post("/introspect", data={"token": token["access_token"]}, auth=auth)
        ).json() == {"active": False}

        await rp.revoke_token(f"{ISSUER}/revoke", token=token["refresh_token"])
        assert (
            await http.post("/introspect", data={"token": token["refresh_token"]}, auth=auth)
        ).json() == {"active": False}


async def test_introspection_tells_a_client_nothing_about_another_clients_token(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    owner = await make_rp(runtime)
    other = await make_rp(runtime)
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, owner.client_id, owner.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(http, url, user.email, user.password)
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
    for value in (token["access_token"], token["refresh_token"]):
        response = await http.post(
            "/introspect", data={"token": value}, auth=(other.client_id, other.client_secret)
        )
        assert response.json() == {"active": False}
    # and another client's revocation of it does nothing
    await http.post(
        "/revoke",
        data={"token": token["access_token"]},
        auth=(other.client_id, other.client_secret),
    )
    assert (
        await http.get("/userinfo", headers={"authorization": f"Bearer {token['access_token']}"})
    ).status_code == 200


async def test_public_client_uses_pkce_and_no_secret(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, public=True, first_party=True)
    assert client.client_secret is None
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, None) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(
            http, url, user.email, user.password
        )  # first party: no consent page
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
    assert token["token_type"] == "Bearer" and "id_token" in token


async def test_second_authorization_skips_login_and_remembered_consent(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        await log_in_and_consent(http, url, user.email, user.password)
        url, state = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        again = await http.get(url)
    assert again.status_code == 303, "signed in and consented: straight back to the RP"
    assert parse_qs(urlsplit(again.headers["location"]).query)["state"] == [state]


async def test_es256_id_tokens_when_the_client_asks(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, id_token_signed_response_alg="ES256")
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await log_in_and_consent(http, url, user.email, user.password)
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
    jwks = (await http.get("/.well-known/jwks.json")).json()
    assert verify_id_token(token["id_token"], jwks, client.client_id)["header"]["alg"] == "ES256"
