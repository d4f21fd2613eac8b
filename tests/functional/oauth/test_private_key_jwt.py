"""private_key_jwt (RFC 7523, OIDC Core §9): a client authenticates with an assertion
signed by joserfc with a key of its registered JWK set (inline, or fetched from its
jwks_uri on a real local server, again on an unknown kid) at /token, /par and
/introspect; every bad assertion (wrong aud, expired or long-lived, replayed jti,
alg none, HS256 with the public key as secret, another client's key, iss ≠ sub, two
methods at once) is ``invalid_client`` (or ``invalid_request``), never a 500, and
registration refuses private keys and missing keys. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from onepass.app import OnePass, create_app
from onepass.clients.registry import InvalidClientSettings
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import Client, make_client
from tests.webhook_helpers import Receiver, status

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
Key = ECKey | RSAKey | OKPKey


def public_set(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def assertion(
    client_id: str, key: Key, alg: str = "ES256", *, kid: str | None = None, **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/token",
        "exp": now + 60,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        **claims,
    }
    header = {"alg": alg, "kid": kid or key.kid}
    return jwt.encode(
        header, {k: v for k, v in body.items() if v is not None}, key, algorithms=[alg]
    )


def form(client_assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion,
        **extra,
    }


async def jwt_client(runtime: Runtime, **options: Any) -> Client:
    return await make_client(runtime, token_endpoint_auth_method="private_key_jwt", **options)


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256", {"kid": "k1"})


async def test_an_assertion_gets_a_token_and_works_once(
    http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    client = await jwt_client(runtime, jwks=public_set(key))
    assert client.client_secret is None, "its keys are its proof: no secret is made"
    signed = assertion(client.client_id, key)
    token = await http.post("/token", data=form(signed))
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"
    replay = await http.post("/token", data=form(signed))
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"
    for aud in (ISSUER, f"{ISSUER}/token", [ISSUER, "https://other.example"]):
        ok = await http.post("/token", data=form(assertion(client.client_id, key, aud=aud)))
        assert ok.status_code == 200, aud
    introspected = await http.post(
        "/introspect",
        data=form(
            assertion(client.client_id, key, aud=f"{ISSUER}/introspect"),
            token=token.json()["access_token"],
        ),
    )
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    assert "ES256" in document["token_endpoint_auth_signing_alg_values_supported"]


@pytest.mark.parametrize("kind", ["RSA-PS256", "RSA-RS256", "OKP-EdDSA"])
async def test_rsa_and_eddsa_keys_sign_assertions_too(
    http: httpx.AsyncClient, runtime: Runtime, kind: str
) -> None:
    kty, alg = kind.split("-")
    signer: Key = (
        RSAKey.generate_key(2048, {"kid": "r"})
        if kty == "RSA"
        else OKPKey.generate_key("Ed25519", {"kid": "o"})
    )
    client = await jwt_client(runtime, jwks=public_set(signer))
    response = await http.post("/token", data=form(assertion(client.client_id, signer, alg)))
    assert response.status_code == 200, response.text


async def test_bad_assertions_are_invalid_client_and_never_a_500(
    http: httpx.AsyncClient, runtime: Runtime, key: ECKey
) -> None:
    client = await jwt_client(runtime, jwks=public_set(key))
    other_key = ECKey.generate_key("P-256", {"kid": "k1"})
    secret_client = await make_client(runtime)
    now = int(time.time())
    public_pem_as_hmac = json.dumps(key.as_dict(private=False)).encode()
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    unsigned_body = (
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "iss": client.client_id,
                    "sub": client.client_id,
                    "aud": ISSUER,
                    "exp": now + 60,
                    "jti": "x",
                }
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    from joserfc.jwk import OctKey

    cases = {
        "wrong aud": assertion(client.client_id, key, aud="https://evil.example/token"),
        "expired": assertion(client.client_id, key, exp=now - 120),
        "lives an hour": assertion(client.client_id, key, exp=now + 3600),
        "no exp": assertion(client.client_id, key, exp=None),
        "no jti": assertion(client.client_id, key, jti=None),
        "iat in the future": assertion(client.client_id, key, iat=now + 600),
        "another key, same kid": assertion(client.client_id, other_key),
        "unknown kid": assertion(client.client_id, other_key, kid="nope"),
        "iss is not sub": assertion(client.client_id, key, sub="someone-else"),
        "unknown client": assertion("no-such-client", key),
        "a secret client": assertion(secret_client.client_id, key),
        "alg none": f"{unsigned_header}.{unsigned_body}.",
        "HS256 with the public key as secret": jwt.encode(
            {"alg": "HS256", "kid": "k1"},
            {
                "iss": client.client_id,
                "sub": client.client_id,
                "aud": ISSUER,
                "exp": now + 60,
                "jti": "h",
            },
            OctKey.import_key(public_pem_as_hmac),
        ),
        "garbage": "a.b.c",
        "not a JWT": "hello",
    }
    for name, value in cases.items():
        response = await http.post("/token", data=form(value))
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"] == "invalid_client", name
    oversized = await http.post("/token", data=form("a" * 9000 + ".b.c"))
    assert oversized.status_code == 400 and oversized.json()["error"] == "invalid_request"
    wrong_type = await http.post(
        "/token", data=form(assertion(client.client_id, key), client_assertion_type="urn:x")
    )
    assert wrong_type.status_code == 401
    both = await http.post(
        "/token",
        data=form(assertion(client.client_id, key)),
        auth=(client.client_id, "whatever"),
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    mismatch = await http.post(
        "/token", data=form(assertion(client.client_id, key), client_id=secret_client.client_id)
    )
    assert mismatch.status_code == 401
    secret_instead = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "guess")
    )
    assert secret_instead.status_code == 401, "a private_key_jwt client has no secret to use"


def test_registration_takes_only_public_keys_and_one_source() -> None:
    from onepass.clients.registry import check_client_keys

    key = ECKey.generate_key("P-256", {"kid": "a"})
    assert check_client_keys(public_set(key), None, "private_key_jwt", production=True)
    problems = {
        "private": ({"keys": [key.as_dict(private=True)]}, None),
        "both": (public_set(key), "https://rp.example/jwks"),
        "neither": (None, None),
        "not a set": ({"kty": "EC"}, None),
        "secret key": ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, None),
        "http in production": (None, "http://rp.example/jwks"),
        "credentials": (None, "https://u:p@rp.example/jwks"),
        "broken key": ({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}, None),
    }
    for name, (jwks, uri) in problems.items():
        with pytest.raises(InvalidClientSettings):
            check_client_keys(jwks, uri, "private_key_jwt", production=True)
        assert name


@pytest.fixture
async def keys_server() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def private_targets_app(runtime: Runtime) -> AsyncIterator[OnePass]:
    """The app with private fetch targets allowed (the JWK set is served on 127.0.0.1)."""
    application = create_app(
        runtime.settings.model_copy(update={"webhook_allow_private_targets": True})
    )
    async with application.api.router.lifespan_context(application.api):
        yield application


def serve(server: Receiver, *keys: Key) -> None:
    server.routes["/jwks.json"] = status(
        200,
        body=json.dumps(public_set(*keys)).encode(),
        headers={"content-type": "application/json"},
    )


async def test_keys_by_jwks_uri_are_fetched_and_fetched_again_for_a_new_kid(
    runtime: Runtime, private_targets_app: OnePass, keys_server: Receiver, key: ECKey
) -> None:
    client = await jwt_client(runtime, jwks_uri=keys_server.url("/jwks.json"))
    serve(keys_server, key)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=private_targets_app), base_url=ISSUER
    ) as http:
        first = await http.post("/token", data=form(assertion(client.client_id, key)))
        assert first.status_code == 200, first.text
        second = await http.post("/token", data=form(assertion(client.client_id, key)))
        assert second.status_code == 200
        assert len(keys_server.at("/jwks.json")) == 1, "the set is kept"
        rotated = ECKey.generate_key("P-256", {"kid": "k2"})
        serve(keys_server, key, rotated)
        third = await http.post("/token", data=form(assertion(client.client_id, rotated)))
        assert third.status_code == 200, "an unknown kid fetches the set again"
        assert len(keys_server.at("/jwks.json")) == 2
        stranger = ECKey.generate_key("P-256", {"kid": "k3"})
        for _ in range(3):
            refused = await http.post("/token", data=form(assertion(client.client_id, stranger)))
            assert refused.status_code == 401
        assert len(keys_server.at("/jwks.json")) == 2, "made-up kids fetch at most once a minute"


async def test_a_jwks_uri_on_a_private_address_is_not_fetched(
    http: httpx.AsyncClient, runtime: Runtime, keys_server: Receiver, key: ECKey
) -> None:
    client = await jwt_client(runtime, jwks_uri=keys_server.url("/jwks.json"))
    serve(keys_server, key)
    refused = await http.post("/token", data=form(assertion(client.client_id, key)))
    assert refused.status_code == 401
    assert keys_server.at("/jwks.json") == [], "the SSRF guard refused 127.0.0.1"


async def test_an_oversized_or_broken_key_set_authenticates_nobody(
    runtime: Runtime, private_targets_app: OnePass, keys_server: Receiver, key: ECKey
) -> None:
    big = await jwt_client(runtime, jwks_uri=keys_server.url("/big.json"))
    broken = await jwt_client(runtime, jwks_uri=keys_server.url("/broken.json"))
    keys_server.routes["/big.json"] = status(200, body=b'{"keys": [' + b" " * 70_000 + b"]}")
    keys_server.routes["/broken.json"] = status(200, body=b"<html>not json</html>")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=private_targets_app), base_url=ISSUER
    ) as http:
        for client in (big, broken):
            response = await http.post("/token", data=form(assertion(client.client_id, key)))
            assert response.status_code == 401, response.text
