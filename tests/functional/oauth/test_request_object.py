"""Signed request objects by value (JAR, RFC 9101), signed by joserfc with the client's
ES256, RS256, PS256 or EdDSA key: at /authorize and pushed to /par they sign a user in with the
parameters inside the object only (an outer redirect_uri, scope or state is not used);
every bad object (another key, alg none, HS256 with the public key as secret, wrong
iss/aud/client_id, expired, exp too far, nbf too old, encrypted, a nested request_uri)
is ``invalid_request_object``, redirected only to a registered outer redirect URI,
JSON at /par, never a 500; a client that requires signed objects refuses plain
requests. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from onepass.oauth import pkce
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, Client, make_rp, make_user
from tests.flow import log_in_and_consent

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OTHER_URI = "https://rp.example/other"
VERIFIER = secrets.token_urlsafe(48)
Key = ECKey | RSAKey | OKPKey


def public_set(*keys: Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def signed(payload: dict[str, Any], key: Key | OctKey, alg: str, kid: str | None) -> str:
    header = {"alg": alg, "typ": "oauth-authz-req+jwt", **({"kid": kid} if kid else {})}
    return jwt.encode(header, payload, key, algorithms=[alg])


def request_object(
    cid: str, key: Key, alg: str = "ES256", *, kid: str | None = None, **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": cid,
        "aud": ISSUER,
        "client_id": cid,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "inner-state",
        "nonce": "inner-nonce",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
        **claims,
    }
    return signed({k: v for k, v in body.items() if v is not None}, key, alg, kid or key.kid)


def assertion(client_id: str, key: Key, alg: str = "ES256", aud: Any = ISSUER) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": now + 60,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def authenticated(client: Client, key: Key, alg: str = "ES256", **form: str) -> dict[str, str]:
    return {
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(client.client_id, key, alg),
        **form,
    }


def make_key(alg: str) -> Key:
    if alg in ("RS256", "PS256"):
        return RSAKey.generate_key(2048, {"kid": "rsa-1"})
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", {"kid": "okp-1"})
    return ECKey.generate_key("P-256", {"kid": "ec-1"})


async def jar_client(runtime: Runtime, key: Key, **options: Any) -> Client:
    options.setdefault("redirect_uris", [REDIRECT_URI, OTHER_URI])
    return await make_rp(
        runtime, token_endpoint_auth_method="private_key_jwt", jwks=public_set(key), **options
    )


async def exchange(
    http: httpx.AsyncClient, client: Client, key: Key, alg: str, callback: str
) -> dict[str, Any]:
    code = parse_qs(urlsplit(callback).query)["code"][0]
    token = await http.post(
        "/token",
        data=authenticated(
            client,
            key,
            alg,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT_URI,
            code_verifier=VERIFIER,
        ),
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
async def test_a_request_object_at_authorize_signs_in_with_its_own_parameters_only(
    http: httpx.AsyncClient, runtime: Runtime, alg: str
) -> None:
    user = await make_user(runtime)
    key = make_key(alg)
    client = await jar_client(runtime, key)
    obj = request_object(client.client_id, key, alg)
    # RFC 9101 §6.3: beside the object, only client_id counts. The outer redirect URI is
    # registered too, the outer scope asks for more: neither is used.
    outer = {
        "client_id": client.client_id,
        "request": obj,
        "redirect_uri": OTHER_URI,
        "scope": "openid email profile offline_access",
        "state": "outer-state",
        "response_type": "code",
    }
    callback = await log_in_and_consent(
        http, "/authorize?" + urlencode(outer), user.email, user.password
    )
    assert callback.startswith(REDIRECT_URI + "?"), callback
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == ["inner-state"] and query["iss"] == [ISSUER]
    token = await exchange(http, client, key, alg, callback)
    assert token["scope"] == "openid email", "the object's scope, not the outer one"
    assert "refresh_token" not in token


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256"])
async def test_a_request_object_pushed_to_par_signs_in_with_its_own_parameters_only(
    http: httpx.AsyncClient, runtime: Runtime, alg: str
) -> None:
    user = await make_user(runtime)
    key = make_key(alg)
    client = await jar_client(runtime, key, require_signed_request_object=True)
    pushed = await http.post(
        "/par",
        data=authenticated(
            client,
            key,
            alg,
            request=request_object(client.client_id, key, alg),
            redirect_uri=OTHER_URI,
            state="outer-state",
        ),
    )
    assert pushed.status_code == 201, pushed.text
    url = "/authorize?" + urlencode(
        {"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]}
    )
    callback = await log_in_and_consent(http, url, user.email, user.password)
    assert callback.startswith(REDIRECT_URI + "?"), callback
    assert parse_qs(urlsplit(callback).query)["state"] == ["inner-state"]
    token = await exchange(http, client, key, alg, callback)
    assert token["token_type"] == "Bearer" and token["id_token"]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_objects(client: Client, key: ECKey, other: Client) -> dict[str, str]:
    now = int(time.time())
    cid = client.client_id
    stranger = ECKey.generate_key("P-256", {"kid": key.kid})
    claims = {"iss": cid, "aud": ISSUER, "client_id": cid, "exp": now + 60, "scope": "openid"}
    hmac_key = OctKey.import_key(json.dumps(key.as_dict(private=False)).encode())
    return {
        "another key, same kid": request_object(cid, stranger),
        "unknown kid": request_object(cid, stranger, kid="nope"),
        "alg none": f"{_b64({'alg': 'none'})}.{_b64(claims)}.",
        "HS256 with the public key as secret": signed(claims, hmac_key, "HS256", key.kid),
        "wrong iss": request_object(cid, key, iss=other.client_id),
        "no iss": request_object(cid, key, iss=None),
        "wrong aud": request_object(cid, key, aud=f"{ISSUER}/authorize"),
        "another client_id inside": request_object(cid, key, client_id=other.client_id),
        "expired": request_object(cid, key, exp=now - 120),
        "no exp": request_object(cid, key, exp=None),
        "exp two hours away": request_object(cid, key, exp=now + 7200),
        "nbf two hours old": request_object(cid, key, nbf=now - 7200, exp=now + 60),
        "nbf in the future": request_object(cid, key, nbf=now + 600),
        "a request_uri inside": request_object(cid, key, request_uri="https://rp.example/r"),
        "a parameter that is an object": request_object(cid, key, claims={"userinfo": {}}),
        "encrypted (five parts)": "a.b.c.d.e",
        "not a JWT": "hello",
        "garbage": "a.b.c",
    }


async def test_bad_request_objects_are_invalid_request_object_and_never_a_500(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = ECKey.generate_key("P-256", {"kid": "ec-1"})
    client = await jar_client(runtime, key)
    other = await jar_client(runtime, ECKey.generate_key("P-256", {"kid": "o"}), name="Other")
    for name, obj in bad_objects(client, key, other).items():
        # At /authorize, to the redirect URI the outer request names (registered)...
        outer = {"client_id": client.client_id, "request": obj}
        redirected = await http.get(
            "/authorize?" + urlencode({**outer, "redirect_uri": REDIRECT_URI, "state": "o"})
        )
        assert redirected.status_code == 303, (name, redirected.text[:300])
        location = redirected.headers["location"]
        assert location.startswith(REDIRECT_URI + "?"), name
        query = parse_qs(urlsplit(location).query)
        assert query["error"] == ["invalid_request_object"], (name, query)
        assert query["state"] == ["o"] and query["iss"] == [ISSUER], name
        # ...on the error page when it names none, or one not registered.
        for extra in ({}, {"redirect_uri": "https://evil.example/cb"}):
            page = await http.get("/authorize?" + urlencode({**outer, **extra}))
            assert page.status_code == 400, (name, extra, page.text[:300])
            assert "signed request was refused" in page.text, name
        # At /par, as JSON.
        pushed = await http.post("/par", data=authenticated(client, key, request=obj))
        assert pushed.status_code == 400, (name, pushed.text)
        assert pushed.json()["error"] == "invalid_request_object", (name, pushed.text)
    # A valid object still works after all that: nothing was consumed or cached wrongly.
    ok = await http.post(
        "/par", data=authenticated(client, key, request=request_object(client.client_id, key))
    )
    assert ok.status_code == 201, ok.text


async def test_a_valid_object_with_a_bad_request_inside_is_redirected_as_usual(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = ECKey.generate_key("P-256", {"kid": "ec-1"})
    client = await jar_client(runtime, key)
    obj = request_object(client.client_id, key, scope="openid admin")
    response = await http.get(
        "/authorize?" + urlencode({"client_id": client.client_id, "request": obj})
    )
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_scope"] and query["state"] == ["inner-state"]
    unregistered = request_object(client.client_id, key, redirect_uri="https://evil.example/")
    page = await http.get(
        "/authorize?" + urlencode({"client_id": client.client_id, "request": unregistered})
    )
    assert page.status_code == 400, "a signed but unregistered redirect URI is never used"


async def test_a_client_that_requires_signed_objects_refuses_plain_requests(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    key = ECKey.generate_key("P-256", {"kid": "ec-1"})
    client = await jar_client(runtime, key, require_signed_request_object=True)
    plain = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    refused = await http.get("/authorize?" + urlencode(plain))
    assert refused.status_code == 303
    query = parse_qs(urlsplit(refused.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s"]
    assert "signed request objects" in query["error_description"][0]
    unregistered = await http.get(
        "/authorize?" + urlencode({**plain, "redirect_uri": "https://evil.example/"})
    )
    assert unregistered.status_code == 400, "never a redirect to an unregistered address"
    by_reference = await http.get(
        "/authorize?" + urlencode({**plain, "request_uri": "https://rp.example/r.jwt"})
    )
    assert by_reference.status_code == 303
    assert parse_qs(urlsplit(by_reference.headers["location"]).query)["error"] == [
        "invalid_request"
    ]
    pushed = await http.post("/par", data=authenticated(client, key, **plain))
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"
    obj = request_object(client.client_id, key)
    callback = await log_in_and_consent(
        http,
        "/authorize?" + urlencode({"client_id": client.client_id, "request": obj}),
        user.email,
        user.password,
    )
    assert parse_qs(urlsplit(callback).query)["code"]


async def test_a_request_uri_by_reference_stays_refused(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = ECKey.generate_key("P-256", {"kid": "ec-1"})
    client = await jar_client(runtime, key)
    response = await http.get(
        "/authorize?"
        + urlencode(
            {
                "client_id": client.client_id,
                "request_uri": "https://rp.example/request.jwt",
                "redirect_uri": REDIRECT_URI,
                "response_type": "code",
                "state": "s",
            }
        )
    )
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["request_uri_not_supported"]


async def test_discovery_advertises_request_objects(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["request_parameter_supported"] is True
    algs = document["request_object_signing_alg_values_supported"]
    assert {"ES256", "RS256", "PS256", "EdDSA"} == set(algs)
    assert "none" not in algs and not any(a.startswith("HS") for a in algs)
