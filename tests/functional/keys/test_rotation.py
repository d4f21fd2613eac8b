"""Signing-key lifecycle: next → active → retired → removed, and the JWKS that publishes it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from joserfc.errors import BadSignatureError
from sqlalchemy import select, text

from onepass.app import OnePass
from onepass.clock import FrozenClock
from onepass.crypto import DecryptionError, SecretBox
from onepass.keys import service
from onepass.keys.keyring import KEYRING
from onepass.keys.models import KeyState, SigningKey
from onepass.keys.service import KEYS_LOCK
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import make_client
from tests.oidc import verify_access_token


async def states(runtime: Runtime) -> dict[str, dict[str, list[str]]]:
    async with runtime.database.session() as session:
        keys = await service.list_keys(session)
    result: dict[str, dict[str, list[str]]] = {}
    for key in keys:
        result.setdefault(key.alg, {}).setdefault(key.state, []).append(key.kid)
    return result


async def rotate(runtime: Runtime, clock: FrozenClock | None = None) -> list[service.Rotation]:
    async with runtime.database.session(exclusive=KEYS_LOCK) as session:
        return await service.rotate(
            session,
            runtime.box,
            clock or runtime.clock,
            algs=runtime.settings.signing_algorithms,
            max_token_ttl=runtime.settings.max_token_ttl,
            propagation_delay=runtime.settings.key_refresh_interval,
        )


async def test_first_start_creates_active_and_next_key_per_algorithm(runtime: Runtime) -> None:
    keys = await states(runtime)
    assert set(keys) == {"RS256", "ES256"}
    for alg in keys:
        assert len(keys[alg]["active"]) == 1
        assert len(keys[alg]["next"]) == 1


async def test_rotate_promotes_next_and_retires_active(runtime: Runtime) -> None:
    before = await states(runtime)
    rotations = await rotate(runtime)
    after = await states(runtime)
    for r in rotations:
        assert r.activated_kid == before[r.alg]["next"][0]
        assert r.retired_kid == before[r.alg]["active"][0]
        assert after[r.alg]["active"] == [r.activated_kid]
        assert after[r.alg]["retired"] == [r.retired_kid]
        assert after[r.alg]["next"] == [r.next_kid]


async def test_retired_key_is_removed_after_its_last_token_expired(runtime: Runtime) -> None:
    clock = FrozenClock(runtime.clock.now())
    rotations = await rotate(runtime, clock)
    retired = {r.retired_kid for r in rotations}
    async with runtime.database.session() as session:
        published = {k.kid for k in await service.published_keys(session, clock)}
    assert retired <= published

    clock.advance(timedelta(seconds=runtime.settings.max_token_ttl))
    async with runtime.database.session() as session:
        published = {k.kid for k in await service.published_keys(session, clock)}
    assert retired <= published, "a token signed just before rotation may still be valid"

    clock.advance(timedelta(seconds=120))
    async with runtime.database.session() as session:
        published = {k.kid for k in await service.published_keys(session, clock)}
        removed = await service.remove_expired(session, clock)
    assert not retired & published
    assert set(removed) == retired
    async with runtime.database.session() as session:
        rows = (await session.scalars(select(SigningKey).where(SigningKey.kid.in_(retired)))).all()
    assert all(r.state == KeyState.REMOVED and r.private_key_encrypted is None for r in rows)


async def test_tokens_verify_across_two_rotations(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An RP that cached the JWKS at some point never meets an unknown kid for a token
    issued at that time: each token verifies against the set fetched when it was
    issued, or against the current set."""
    client = await make_client(runtime)
    issued: list[tuple[str, dict]] = []
    for _ in range(3):
        await app.services.get(KEYRING).refresh()
        jwks_then = (await http.get("/.well-known/jwks.json")).json()
        response = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret),
        )
        issued.append((response.json()["access_token"], jwks_then))
        await rotate(runtime)
    await app.services.get(KEYRING).refresh()
    jwks_now = (await http.get("/.well-known/jwks.json")).json()
    kids = set()
    for token, jwks_then in issued:
        verify_access_token(token, jwks_then, issuer=ISSUER, audience=ISSUER)
        claims = verify_access_token(token, jwks_now, issuer=ISSUER, audience=ISSUER)
        kids.add(claims.header["kid"])
    assert len(kids) == 3, "each token was signed by the key active at its time"


async def test_jwks_publishes_next_active_retired_with_cache_control(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await rotate(runtime)
    await app.services.get(KEYRING).refresh()
    response = await http.get("/.well-known/jwks.json")
    assert response.headers["cache-control"] == f"public, max-age={runtime.settings.jwks_max_age}"
    published = {k["kid"] for k in response.json()["keys"]}
    keys = await states(runtime)
    for alg in keys:
        for state in ("next", "active", "retired"):
            assert set(keys[alg][state]) <= published
    for jwk in response.json()["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "no private parameters"
        assert jwk["use"] == "sig" and jwk["alg"] in ("RS256", "ES256")


async def test_private_keys_are_encrypted_at_rest(runtime: Runtime) -> None:
    async with runtime.database.session() as session:
        rows = (
            await session.execute(text("SELECT kid, private_key_encrypted FROM signing_keys"))
        ).all()
    assert rows
    for kid, stored in rows:
        assert "PRIVATE KEY" not in stored
        assert stored.startswith("v1.")
        with pytest.raises(DecryptionError):
            SecretBox("another-secret-key-" + "x" * 32).decrypt(stored, f"signing_key:{kid}")


async def test_concurrent_first_starts_create_one_active_key_per_algorithm(
    runtime: Runtime,
) -> None:
    async with runtime.database.session() as session:
        await session.execute(text("DELETE FROM signing_keys"))

    async def start() -> None:
        async with runtime.database.session(exclusive=KEYS_LOCK) as session:
            await service.ensure_keys(
                session, runtime.box, runtime.clock, runtime.settings.signing_algorithms
            )

    await asyncio.gather(*(start() for _ in range(4)))
    keys = await states(runtime)
    for alg in ("RS256", "ES256"):
        assert len(keys[alg]["active"]) == 1
        assert len(keys[alg]["next"]) == 1


async def test_key_ring_signs_with_new_active_key_after_refresh(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    rotations = await rotate(runtime)
    new_es256 = next(r.activated_kid for r in rotations if r.alg == "ES256")
    await app.services.get(KEYRING).refresh()
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
    )
    jwks_now = (await http.get("/.well-known/jwks.json")).json()
    token = verify_access_token(
        response.json()["access_token"], jwks_now, issuer=ISSUER, audience=ISSUER
    )
    assert token.header["kid"] == new_es256


async def test_token_from_a_foreign_key_fails_verification(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The verifier is real: a token signed by a key outside the JWKS is refused."""
    from onepass.keys import jwt as onepass_jwt

    jwks_now = (await http.get("/.well-known/jwks.json")).json()
    active_kid = next(k["kid"] for k in jwks_now["keys"] if k["alg"] == "ES256")
    forged = onepass_jwt.JWTSigner(active_kid, "ES256", onepass_jwt.generate_private_key("ES256"))
    token = forged.sign(
        {
            "iss": ISSUER,
            "sub": "x",
            "aud": ISSUER,
            "client_id": "x",
            "iat": 1,
            "exp": 2,
            "jti": "j",
        },
        typ="at+jwt",
    )
    with pytest.raises(BadSignatureError):
        verify_access_token(token, jwks_now, issuer=ISSUER, audience=ISSUER)


async def test_rotation_is_refused_while_the_next_key_may_be_unknown_to_cached_jwks(
    runtime: Runtime,
) -> None:
    clock = FrozenClock(runtime.clock.now())
    min_age = runtime.settings.jwks_max_age + runtime.settings.key_refresh_interval
    async with runtime.database.session(exclusive=KEYS_LOCK) as session:
        with pytest.raises(service.RotationTooSoon, match="--force"):
            await service.rotate(
                session,
                runtime.box,
                clock,
                algs=("RS256", "ES256"),
                max_token_ttl=3600,
                propagation_delay=1,
                min_next_age=min_age,
            )
    clock.advance(timedelta(seconds=min_age + 1))
    async with runtime.database.session(exclusive=KEYS_LOCK) as session:
        rotations = await service.rotate(
            session,
            runtime.box,
            clock,
            algs=("RS256", "ES256"),
            max_token_ttl=3600,
            propagation_delay=1,
            min_next_age=min_age,
        )
    assert len(rotations) == 2
