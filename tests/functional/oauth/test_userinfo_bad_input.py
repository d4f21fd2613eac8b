"""UserInfo (OIDC Core §5.3) refuses every token it did not issue, or no longer honours,
with the protocol's error (RFC 6750 §3.1: 401 ``invalid_token`` with its
``WWW-Authenticate``; 400 ``invalid_request`` for a request that is not one), never a
500. Tokens are forged here with the provider's own keys or by hand. SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from onepass.app import OnePass, create_app
from onepass.keys.jwt import JWTSigner, b64url, generate_private_key
from onepass.keys.keyring import KEYRING
from onepass.oauth.revocation import revoke_access_token
from onepass.operators.audit import Actor
from onepass.playbook import users
from onepass.runtime import Runtime
from tests.conftest import ISSUER, database_stopped, make_settings
from tests.factories import Client, UserInfo, make_rp, make_user
from tests.functional.identity.test_merge import do_merge


def signer(app: OnePass, alg: str = "ES256") -> JWTSigner:
    return app.services.get(KEYRING).signer(alg)


def claims_for(user: UserInfo, client: Client, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user.sub,
        "aud": ISSUER,
        "client_id": client.client_id,
        "iat": now,
        "exp": now + 300,
        "jti": "jti-" + hashlib.sha256(str(overrides).encode()).hexdigest()[:16],
        "scope": "openid email profile",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def by_hand(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = b64url(orjson.dumps(header)) + b"." + b64url(orjson.dumps(claims))
    return (signing_input + b"." + b64url(sign(signing_input))).decode()


def get(http: httpx.AsyncClient, token: str) -> Any:
    return http.get("/userinfo", headers={"authorization": f"Bearer {token}"})


def assert_invalid_token(response: httpx.Response, description: str | None = None) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_token"
    if description is not None:
        assert body["error_description"] == description
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="1pass", error="invalid_token", error_description=')
    assert response.headers["cache-control"] == "no-store"


def assert_invalid_request(response: httpx.Response, description: str | None = None) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    if description is not None:
        assert body["error_description"] == description
    assert response.headers["cache-control"] == "no-store"


@pytest.fixture
async def party(runtime: Runtime) -> tuple[UserInfo, Client]:
    return await make_user(runtime, name="Ada Lovelace"), await make_rp(runtime)


async def test_a_good_token_of_either_algorithm_by_header_or_form(
    app: OnePass, http: httpx.AsyncClient, party: tuple[UserInfo, Client]
) -> None:
    user, client = party
    for alg in ("ES256", "RS256"):
        token = signer(app, alg).sign(claims_for(user, client, jti=alg), typ="at+jwt")
        by_header = await get(http, token)
        assert by_header.status_code == 200, by_header.text
        assert by_header.json() == {
            "sub": user.sub,
            "email": user.email,
            "email_verified": False,
            "name": "Ada Lovelace",
            "updated_at": by_header.json()["updated_at"],
        }
        assert by_header.headers["cache-control"] == "no-store"
        assert by_header.headers["pragma"] == "no-cache"
        by_form = await http.post("/userinfo", data={"access_token": token})
        assert by_form.status_code == 200 and by_form.json() == by_header.json()
    # The scope decides the claims: openid alone gives the subject only.
    only = signer(app).sign(claims_for(user, client, scope="openid", jti="o"), typ="at+jwt")
    assert (await get(http, only)).json() == {"sub": user.sub}


async def test_forged_signatures_and_algorithms_are_invalid_tokens(
    app: OnePass, http: httpx.AsyncClient, party: tuple[UserInfo, Client]
) -> None:
    user, client = party
    es, rs = signer(app, "ES256"), signer(app, "RS256")
    claims = claims_for(user, client)
    header = {"typ": "at+jwt"}
    rs_public_pem = rs.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = generate_private_key("ES256")
    assert isinstance(stranger, ec.EllipticCurvePrivateKey)

    def hmac_with(key: bytes) -> Callable[[bytes], bytes]:
        return lambda data: hmac.new(key, data, hashlib.sha256).digest()

    def es_signed(data: bytes) -> bytes:  # the ES256 key's own signature, r || s
        assert isinstance(es.key, ec.EllipticCurvePrivateKey)
        return _raw_es256(es.key, data)

    forged = {
        "alg none": by_hand({**header, "alg": "none", "kid": es.kid}, claims, lambda _: b""),
        "alg none, no kid": by_hand({**header, "alg": "none"}, claims, lambda _: b""),
        "RS256 header, ES256 key's kid": by_hand(
            {**header, "alg": "RS256", "kid": es.kid}, claims, es_signed
        ),
        "ES256 header, RS256 key's kid": by_hand(
            {**header, "alg": "ES256", "kid": rs.kid}, claims, es_signed
        ),
        "HS256 with the RSA public key as secret": by_hand(
            {**header, "alg": "HS256", "kid": rs.kid}, claims, hmac_with(rs_public_pem)
        ),
        "RS256 header, HMAC of the RSA public key": by_hand(
            {**header, "alg": "RS256", "kid": rs.kid}, claims, hmac_with(rs_public_pem)
        ),
        "unknown kid": by_hand({**header, "alg": "ES256", "kid": "nope"}, claims, es_signed),
        "no kid": by_hand({**header, "alg": "ES256"}, claims, es_signed),
        "another key, our kid": by_hand(
            {**header, "alg": "ES256", "kid": es.kid},
            claims,
            lambda data: _raw_es256(stranger, data),
        ),
        "critical header": by_hand(
            {**header, "alg": "ES256", "kid": es.kid, "crit": ["exp"]}, claims, es_signed
        ),
        "DER signature": by_hand(
            {**header, "alg": "ES256", "kid": es.kid},
            claims,
            lambda data: es.key.sign(data, ec.ECDSA(hashes.SHA256())),
        ),
        "payload not an object": by_hand({**header, "alg": "ES256", "kid": es.kid}, [], es_signed),  # type: ignore[arg-type]
    }
    good = es.sign(claims, typ="at+jwt")
    head, payload, signature = good.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    forged |= {
        "signature altered": f"{head}.{payload}.{flipped}",
        "payload altered": f"{head}.{b64url(orjson.dumps({**claims, 'sub': 'x'})).decode()}.{signature}",
        "padded base64": f"{head}.{payload}.{signature}==",
        "not base64": f"{head}.{payload}.{signature[:-2]}!!",
        "header not JSON": f"{b64url(b'{nope').decode()}.{payload}.{signature}",
        "empty parts": "..",
    }
    for name, token in forged.items():
        assert_invalid_token(await get(http, token)), name
    assert (await get(http, good)).status_code == 200


def _raw_es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("expired", "the access token has expired"),
        ("wrong typ", "not an access token"),
        ("no typ", "not an access token"),
        ("other issuer", "the access token is from another issuer"),
        ("no jti", "the access token is invalid"),
        ("sub not a string", "the access token is invalid"),
        ("exp not a number", "the access token has expired"),
        ("no openid", "the access token was not issued for openid"),
        ("unknown user", "the user of this token no longer exists"),
        ("huge", "the access token is malformed"),
        ("two dots short", "the access token is malformed"),
    ],
)
async def test_claims_it_does_not_honour_are_invalid_tokens(
    app: OnePass,
    http: httpx.AsyncClient,
    party: tuple[UserInfo, Client],
    case: str,
    description: str,
) -> None:
    user, client = party
    es = signer(app)
    now = int(time.time())
    token = {
        "expired": lambda: es.sign(claims_for(user, client, exp=now - 31), typ="at+jwt"),
        "wrong typ": lambda: es.sign(claims_for(user, client), typ="JWT"),
        "no typ": lambda: es.sign(claims_for(user, client), typ=None),
        "other issuer": lambda: es.sign(claims_for(user, client, iss="https://x"), typ="at+jwt"),
        "no jti": lambda: es.sign({**claims_for(user, client), "jti": None}, typ="at+jwt"),
        "sub not a string": lambda: es.sign(claims_for(user, client, sub=7), typ="at+jwt"),
        "exp not a number": lambda: es.sign(claims_for(user, client, exp="later"), typ="at+jwt"),
        "no openid": lambda: es.sign(claims_for(user, client, scope="email"), typ="at+jwt"),
        "unknown user": lambda: es.sign(claims_for(user, client, sub="nobody"), typ="at+jwt"),
        "huge": lambda: es.sign(claims_for(user, client, pad="x" * 9000), typ="at+jwt"),
        "two dots short": lambda: "a.b",
    }[case]()
    assert_invalid_token(await get(http, token), description)


async def test_expiry_has_its_leeway(
    app: OnePass, http: httpx.AsyncClient, party: tuple[UserInfo, Client]
) -> None:
    user, client = party
    token = signer(app).sign(claims_for(user, client, exp=int(time.time()) - 20), typ="at+jwt")
    assert (await get(http, token)).status_code == 200


async def test_revoked_token_and_disabled_user_are_invalid_tokens(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, party: tuple[UserInfo, Client]
) -> None:
    user, client = party
    claims = claims_for(user, client, jti="to-revoke")
    token = signer(app).sign(claims, typ="at+jwt")
    assert (await get(http, token)).status_code == 200
    async with runtime.database.session() as session:
        await revoke_access_token(
            session, runtime.clock, "to-revoke", datetime.fromtimestamp(claims["exp"], UTC), "x"
        )
    assert_invalid_token(await get(http, token), "the access token was revoked")

    other = signer(app).sign(claims_for(user, client, jti="kept"), typ="at+jwt")
    assert (await get(http, other)).status_code == 200
    await users.disable_user(runtime, Actor.cli(), user.email)
    assert_invalid_token(await get(http, other))
    await users.enable_user(runtime, Actor.cli(), user.email)


@pytest.mark.parametrize("enforce", [True, False])
async def test_merged_user_is_refused_only_with_enforcement(
    runtime: Runtime, enforce: bool
) -> None:
    source = await make_user(runtime, email="old@example.com")
    target = await make_user(runtime, email="new@example.com")
    client = await make_rp(runtime)
    settings = make_settings(
        runtime.settings.database_url,
        runtime.settings.redis_url,
        enforce_canonical_resolution=enforce,
    )
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        token = signer(app).sign(claims_for(source, client), typ="at+jwt")
        assert (await get(http, token)).json()["sub"] == source.sub
        await do_merge(app, source.id, target.id)
        after = await get(http, token)
        if enforce:
            assert_invalid_token(after, "the user of this token was merged into another account")
        else:
            assert after.status_code == 200 and after.json()["sub"] == source.sub


async def test_requests_that_are_not_one_are_invalid_requests(
    app: OnePass, http: httpx.AsyncClient, party: tuple[UserInfo, Client]
) -> None:
    user, client = party
    token = signer(app).sign(claims_for(user, client), typ="at+jwt")
    bearer = {"authorization": f"Bearer {token}"}
    form = {"content-type": "application/x-www-form-urlencoded"}
    once = "send the access token once"
    assert_invalid_request(
        await http.post("/userinfo", data={"access_token": token}, headers=bearer), once
    )
    two_headers = [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
    assert_invalid_request(await http.get("/userinfo", headers=two_headers), once)
    assert_invalid_request(
        await http.post("/userinfo", content=b"access_token=a&access_token=b", headers=form),
        "parameter 'access_token' is repeated",
    )
    assert_invalid_request(
        await http.post("/userinfo", content=b"access_token=\xff", headers=form),
        "the request body is not valid UTF-8",
    )
    assert_invalid_request(
        await http.post("/userinfo", content=b"access_token=a%00b", headers=form),
        "parameter 'access_token' contains a control character",
    )
    assert_invalid_request(
        await http.post("/userinfo", content=b"access_token=" + b"a" * 5000, headers=form),
        "parameter 'access_token' is too long",
    )
    assert_invalid_request(
        await http.post("/userinfo", json={"access_token": token}),
        "the body must be application/x-www-form-urlencoded",
    )
    huge = await http.post("/userinfo", content=b"a=" + b"x" * 20000, headers=form)
    assert huge.status_code == 413 and huge.json()["error"] == "invalid_request"
    assert huge.headers["connection"] == "close"
    # No token at all, or another scheme: invalid_token (RFC 6750 §3.1).
    assert_invalid_token(await http.get("/userinfo"), "an access token is required")
    assert_invalid_token(
        await http.get("/userinfo", headers={"authorization": f"Basic {token}"}),
        "use the Bearer or DPoP scheme",
    )
    assert_invalid_token(await http.post("/userinfo", content=b"", headers=form))


async def test_other_methods_are_not_allowed(http: httpx.AsyncClient) -> None:
    for method in ("PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        answer = await http.request(method, "/userinfo")
        assert answer.status_code == 405, method
        assert answer.headers["allow"] == "GET, POST"


async def test_database_away_gives_503_temporarily_unavailable(
    app: OnePass, http: httpx.AsyncClient, party: tuple[UserInfo, Client]
) -> None:
    user, client = party
    token = signer(app).sign(claims_for(user, client), typ="at+jwt")
    assert (await get(http, token)).status_code == 200
    served = app.services.runtime
    async with database_stopped(served.database):
        await served.direct.close()  # SQLite: its connections would keep the old file
        answer = await get(http, token)
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "error": "temporarily_unavailable",
            "error_description": "the database is unavailable; try again shortly",
        }
        assert answer.headers["retry-after"] == "5"
        assert answer.headers["cache-control"] == "no-store"
    await served.direct.close()
    assert (await get(http, token)).status_code == 200
