"""The FAPI 2.0 Security Profile as a per-client switch (``--profile fapi2``,
``clients.profiles``). Registration sets what the profile demands (PAR, DPoP-bound
tokens, private_key_jwt, an ES256 ID token) and refuses what it forbids with a message
saying what to give (a public client, a secret, an http redirect URI, RS256); leaving
the profile keeps its flags. Every request asks again: a profile client's request
without PAR or PKCE is refused, its codes live at most 60 s whatever the server's
setting, its assertions name the issuer alone as ``aud``, and a row edited by hand
(a secret, RS256, the flags off) does not weaken it. SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import select, update

from onepass.app import OnePass, create_app
from onepass.clients import registry
from onepass.clients.models import OAuthApplication
from onepass.clients.registry import ClientChanges, InvalidClientSettings
from onepass.oauth import pkce
from onepass.oauth.models import AuthorizationCode
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.dpop import USERINFO_URL, Holder
from tests.factories import REDIRECT_URI, Client, make_rp, make_user
from tests.flow import log_in_and_consent
from tests.oidc import verify_access_token

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
VERIFIER = secrets.token_urlsafe(48)


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256", {"kid": "fapi-1"})


def public_set(key: ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False)]}


async def fapi2_client(runtime: Runtime, key: ECKey, **options: Any) -> Client:
    return await make_rp(runtime, profile="fapi2", jwks=public_set(key), **options)


def assertion(client_id: str, key: ECKey, aud: Any = ISSUER) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": now + 60,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])


def request_params(client: Client, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "s-fapi",
        "nonce": "n-fapi",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }
    return {k: v for k, v in params.items() if v}


async def push(
    http: httpx.AsyncClient, client: Client, key: ECKey, aud: Any = ISSUER, **extra: str
) -> httpx.Response:
    return await http.post(
        "/par",
        data={
            **request_params(client, **extra),
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(client.client_id, key, aud),
        },
    )


async def application(runtime: Runtime, client_id: str) -> OAuthApplication:
    async with runtime.database.session(readonly=True) as session:
        app = await session.scalar(
            select(OAuthApplication).where(OAuthApplication.client_id == client_id)
        )
        assert app is not None
        return app


# -- registration -----------------------------------------------------------------------


async def test_registering_under_fapi2_sets_what_the_profile_demands(
    runtime: Runtime, key: ECKey
) -> None:
    client = await fapi2_client(runtime, key)
    assert client.client_secret is None, "private_key_jwt by default: no secret is made"
    app = await application(runtime, client.client_id)
    shown = registry.describe_client(app)
    assert shown["profile"] == "fapi2"
    assert shown["token_endpoint_auth_method"] == "private_key_jwt"
    assert shown["require_pushed_authorization_requests"] is True
    assert shown["dpop_bound_access_tokens"] is True
    assert shown["id_token_signed_response_alg"] == "ES256"
    assert shown["require_signed_request_object"] is False, "JAR is allowed, not required"


async def test_registering_under_fapi2_refuses_what_the_profile_forbids(
    runtime: Runtime, key: ECKey
) -> None:
    refusals: dict[str, tuple[dict[str, Any], str]] = {
        "public": ({"public": True, "token_endpoint_auth_method": "none"}, "public client"),
        "a secret": ({"token_endpoint_auth_method": "client_secret_basic"}, "private_key_jwt"),
        "no keys": ({"jwks": None}, "jwks"),
        "http redirect URI": ({"redirect_uris": ["http://rp.example/cb"]}, "https"),
        "RS256 ID tokens": ({"id_token_signed_response_alg": "RS256"}, "--id-token-alg ES256"),
        "an unknown profile": ({"profile": "fapi3"}, "unknown profile"),
    }
    for name, (options, said) in refusals.items():
        with pytest.raises(InvalidClientSettings) as refused:
            await make_rp(runtime, **{"profile": "fapi2", "jwks": public_set(key), **options})
        assert said in str(refused.value), (name, str(refused.value))
    loopback = {"redirect_uris": ["http://127.0.0.1:8000/cb"]}
    assert await fapi2_client(runtime, key, **loopback), "loopback http outside production"
    with pytest.raises(InvalidClientSettings, match="https"):
        await fapi2_client(runtime, key, production=True, **loopback)


async def test_updating_to_fapi2_refuses_or_sets_and_leaving_it_keeps_the_flags(
    runtime: Runtime, key: ECKey
) -> None:
    client = await make_rp(runtime)

    async def change(**changes: Any) -> list[str]:
        async with runtime.database.session() as session:
            app = await registry.find_client(session, client.client_id)
            return await registry.update_client(
                session, runtime.clock, app, ClientChanges(**changes)
            )

    with pytest.raises(InvalidClientSettings, match="private_key_jwt"):
        await change(profile="fapi2")
    with pytest.raises(InvalidClientSettings, match="--id-token-alg ES256"):
        await change(
            profile="fapi2", token_endpoint_auth_method="private_key_jwt", jwks=public_set(key)
        )
    changed = await change(
        profile="fapi2",
        token_endpoint_auth_method="private_key_jwt",
        jwks=public_set(key),
        id_token_signed_response_alg="ES256",
    )
    assert {"profile", "require_pushed_authorization_requests", "dpop_bound_access_tokens"} <= set(
        changed
    )
    with pytest.raises(InvalidClientSettings, match="requires PAR"):
        await change(require_pushed_authorization_requests=False)
    with pytest.raises(InvalidClientSettings, match="ES256"):
        await change(id_token_signed_response_alg="RS256")
    assert await change(profile="default") == ["profile"], "the flags stay as they are"
    app = await application(runtime, client.client_id)
    assert app.profile is None and app.require_pushed_authorization_requests
    assert app.dpop_bound_access_tokens
    assert await change(require_pushed_authorization_requests=False) == [
        "require_pushed_authorization_requests"
    ]


# -- at request time ----------------------------------------------------------------------


async def test_a_fapi2_client_signs_in_through_par_with_an_assertion_naming_the_issuer(
    http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    user = await make_user(runtime)
    client = await fapi2_client(runtime, key)
    plain = await http.get("/authorize?" + urlencode(request_params(client)))
    assert plain.status_code == 303, "PAR required: said at the registered redirect URI"
    query = parse_qs(urlsplit(plain.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "PAR" in query["error_description"][0]
    for aud in (f"{ISSUER}/par", f"{ISSUER}/token", [ISSUER], [ISSUER, f"{ISSUER}/par"]):
        refused = await push(http, client, key, aud=aud)
        assert refused.status_code == 401, aud
        assert refused.json()["error"] == "invalid_client", aud
    no_pkce = await push(http, client, key, code_challenge="", code_challenge_method="")
    assert no_pkce.status_code == 400 and no_pkce.json()["error"] == "invalid_request"
    assert "PKCE" in no_pkce.json()["error_description"]
    plain_method = await push(http, client, key, code_challenge_method="plain")
    assert plain_method.status_code == 400
    pushed = await push(http, client, key)
    assert pushed.status_code == 201, pushed.text
    url = "/authorize?" + urlencode(
        {"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]}
    )
    callback = await log_in_and_consent(http, url, user.email, user.password)
    query = parse_qs(urlsplit(callback).query)
    assert query["iss"] == [ISSUER], "RFC 9207: iss in the authorization response"
    assert query["code"] and query["state"] == ["s-fapi"]


@pytest.fixture
async def long_codes_http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app with codes that live ten minutes (ONEPASS_AUTHORIZATION_CODE_TTL=600)."""
    served: OnePass = create_app(
        runtime.settings.model_copy(update={"authorization_code_ttl": 600})
    )
    async with (
        served.api.router.lifespan_context(served.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url=ISSUER) as http,
    ):
        yield http


async def test_a_fapi2_clients_codes_live_at_most_60_seconds(
    long_codes_http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    http = long_codes_http
    user = await make_user(runtime)
    fapi = await fapi2_client(runtime, key)
    other = await make_rp(runtime, name="Other")
    pushed = await push(http, fapi, key)
    assert pushed.status_code == 201, pushed.text
    await log_in_and_consent(
        http,
        "/authorize?"
        + urlencode({"client_id": fapi.client_id, "request_uri": pushed.json()["request_uri"]}),
        user.email,
        user.password,
    )
    await log_in_and_consent(
        http, "/authorize?" + urlencode(request_params(other)), user.email, user.password
    )
    async with runtime.database.session(readonly=True) as session:
        codes = {
            row.oauth_application_id: (row.expires_at - row.created_at).total_seconds()
            for row in await session.scalars(select(AuthorizationCode))
        }
    assert codes[fapi.id] == 60
    assert codes[other.id] == 600, "other clients keep the server's setting"


async def test_a_fapi2_row_edited_by_hand_does_not_weaken_the_profile(
    http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    # A client registered with a secret and RS256, then moved to fapi2 by hand, flags off.
    edited = await make_rp(runtime, name="Edited")
    async with runtime.database.session() as session:
        await session.execute(
            update(OAuthApplication)
            .where(OAuthApplication.client_id == edited.client_id)
            .values(profile="fapi2")
        )
    assert edited.client_secret is not None
    plain = await http.get("/authorize?" + urlencode(request_params(edited)))
    assert plain.status_code == 303
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
    by_secret = await http.post(
        "/par", data=request_params(edited), auth=(edited.client_id, edited.client_secret)
    )
    assert by_secret.status_code == 401, "a secret does not authenticate a fapi2 client"
    async with runtime.database.session(readonly=True) as session:
        record = await registry.load_record(session, edited.client_id)
    assert record is not None
    assert record.require_pushed_authorization_requests and record.dpop_bound_access_tokens
    # private_key_jwt, but RS256 ID tokens and the flags off: the push is refused.
    rs256 = await fapi2_client(runtime, key, name="RS256")
    async with runtime.database.session() as session:
        await session.execute(
            update(OAuthApplication)
            .where(OAuthApplication.client_id == rs256.client_id)
            .values(
                id_token_signed_response_alg="RS256",
                require_pushed_authorization_requests=False,
                dpop_bound_access_tokens=False,
            )
        )
    refused = await push(http, rs256, key)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "unauthorized_client"
    assert "RS256" in refused.json()["error_description"]


async def test_a_fapi2_clients_assertions_and_request_objects_are_never_rs256(
    http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    rsa = RSAKey.generate_key(2048, {"kid": "rsa-1"})
    client = await make_rp(
        runtime,
        profile="fapi2",
        jwks={"keys": [key.as_dict(private=False), rsa.as_dict(private=False)]},
    )
    now = int(time.time())

    def signed(claims: dict[str, Any], alg: str) -> str:
        signer = rsa if alg.startswith(("RS", "PS")) else key
        return jwt.encode({"alg": alg, "kid": signer.kid}, claims, signer, algorithms=[alg])

    def client_assertion(alg: str) -> dict[str, str]:
        claims = {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": ISSUER,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(8),
        }
        return {"client_assertion_type": JWT_BEARER, "client_assertion": signed(claims, alg)}

    def request_object(alg: str) -> str:
        claims = {"iss": client.client_id, "aud": ISSUER, "exp": now + 60, **request_params(client)}
        return signed(claims, alg)

    rs256 = await http.post("/par", data={**request_params(client), **client_assertion("RS256")})
    assert rs256.status_code == 401 and rs256.json()["error"] == "invalid_client"
    ps256 = await http.post("/par", data={**request_params(client), **client_assertion("PS256")})
    assert ps256.status_code == 201, ps256.text
    for alg, status in (("RS256", 400), ("PS256", 201), ("ES256", 201)):
        pushed = await http.post(
            "/par", data={"request": request_object(alg), **client_assertion("ES256")}
        )
        assert pushed.status_code == status, (alg, pushed.text)
        if status == 400:
            assert pushed.json()["error"] == "invalid_request_object"
    no_redirect = await push(http, client, key, redirect_uri="")
    assert no_redirect.status_code == 400, "§5.3: redirect_uri required in the pushed request"
    assert no_redirect.json()["error"] == "invalid_request"


# -- the whole flow, with DPoP ---------------------------------------------------------------


async def test_a_fapi2_client_gets_dpop_bound_tokens_and_refreshes_without_rotation(
    http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    """PAR with an assertion naming the issuer, PKCE S256, a code exchanged with a DPoP
    proof (none: refused, the code kept); the access tokens carry the proof key's
    ``cnf.jkt`` (checked with joserfc against the JWKS) and the ID token is ES256. The
    refresh token is not rotated (FAPI 2.0 §5.3.2.1 #10): a refresh answers without a new
    one, and the same token refreshes again, as a client that lost a response would."""
    user = await make_user(runtime)
    client = await fapi2_client(runtime, key, scope="openid email offline_access")
    holder = Holder()
    pushed = await push(http, client, key, scope="openid email offline_access")
    assert pushed.status_code == 201, pushed.text
    url = "/authorize?" + urlencode(
        {"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]}
    )
    callback = await log_in_and_consent(http, url, user.email, user.password)
    code = parse_qs(urlsplit(callback).query)["code"][0]

    def token_form(**grant: str) -> dict[str, str]:
        return {
            **grant,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion(client.client_id, key),
        }

    exchange = token_form(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT_URI,
        code_verifier=VERIFIER,
    )
    no_proof = await http.post("/token", data=exchange)
    assert no_proof.status_code == 400 and no_proof.json()["error"] == "invalid_dpop_proof"
    exchange["client_assertion"] = assertion(client.client_id, key)
    issued = await http.post("/token", data=exchange, headers={"DPoP": holder.proof()})
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "DPoP"
    jwks = (await http.get("/.well-known/jwks.json")).json()
    claims = verify_access_token(body["access_token"], jwks, issuer=ISSUER, audience=ISSUER)
    assert claims.claims["cnf"] == {"jkt": holder.jkt}
    header = jwt.decode(body["id_token"], KeySet.import_key_set(jwks), algorithms=["ES256"]).header
    assert header["alg"] == "ES256"
    refresh_token = body["refresh_token"]

    for _ in range(2):  # the same refresh token, twice: it was not rotated
        refreshed = await http.post(
            "/token",
            data=token_form(grant_type="refresh_token", refresh_token=refresh_token),
            headers={"DPoP": holder.proof()},
        )
        assert refreshed.status_code == 200, refreshed.text
        again = refreshed.json()
        assert "refresh_token" not in again, "no rotation: the client keeps its token"
        assert again["token_type"] == "DPoP"
        fresh = verify_access_token(again["access_token"], jwks, issuer=ISSUER, audience=ISSUER)
        assert fresh.claims["cnf"] == {"jkt": holder.jkt}
        assert fresh.claims["jti"] != claims.claims["jti"]

    # Revoking the token ends it, and the access token issued with the last refresh.
    revoked = await http.post(
        "/revoke", data=token_form(token=refresh_token, token_type_hint="refresh_token")
    )
    assert revoked.status_code == 200
    after = await http.post(
        "/token",
        data=token_form(grant_type="refresh_token", refresh_token=refresh_token),
        headers={"DPoP": holder.proof()},
    )
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    userinfo = await http.get(
        "/userinfo",
        headers={
            "Authorization": f"DPoP {again['access_token']}",
            "DPoP": holder.proof("GET", USERINFO_URL, access_token=again["access_token"]),
        },
    )
    assert userinfo.status_code == 401
