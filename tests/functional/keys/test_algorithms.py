"""PS256 and EdDSA keys beside RS256 and ES256 (``ONEPASS_SIGNING_ALGS``): each kept with
the next → active → retired lifecycle, published in the JWKS with public members only,
signing the ID tokens of clients registered with it (and access tokens when
``ONEPASS_ACCESS_TOKEN_ALG`` names it), verified by joserfc against the fetched JWKS and
by 1pass's own verifier at /userinfo; discovery lists exactly the algorithms kept."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.app import OnePass
from onepass.clients.registry import ClientChanges, InvalidClientSettings
from onepass.keys import service
from onepass.keys.jws import InvalidJWS, JWSVerifier
from onepass.keys.jwt import JWTSigner
from onepass.keys.keyring import KEYRING
from onepass.keys.models import KeyState
from onepass.keys.service import UnsupportedAlgorithm
from onepass.oauth.routes import discovery_document
from onepass.operators.audit import Actor
from onepass.playbook import clients as clients_playbook
from onepass.playbook.keys import rotate_signing_keys
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER, make_settings
from tests.factories import REDIRECT_URI, Client, UserInfo, make_rp, make_user
from tests.flow import VERIFIER, authorize_url, log_in_and_consent
from tests.functional.keys.test_rotation import states

ALL = "RS256,PS256,ES256,EdDSA"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
def signing_algs() -> str:
    return ALL


@pytest.fixture
def access_alg() -> str:
    return "ES256"


@pytest.fixture
def settings(
    database_url: str, redis_url: str | None, signing_algs: str, access_alg: str
) -> Settings:
    return make_settings(
        database_url, redis_url, signing_algs=signing_algs, access_token_alg=access_alg
    )


async def rotate(runtime: Runtime, *algs: str) -> list[dict[str, object]]:
    return await rotate_signing_keys(runtime, Actor.cli(), force=True, algs=algs)


async def refreshed(app: OnePass) -> None:
    await app.services.get(KEYRING).refresh()


async def sign_in(http: httpx.AsyncClient, user: UserInfo, client: Client) -> dict[str, str]:
    """The code flow of ``client`` to its tokens (``openid email``, PKCE)."""
    callback = await log_in_and_consent(http, authorize_url(client), user.email, user.password)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert client.client_secret is not None
    response = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        },
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def test_each_configured_algorithm_gets_an_active_and_a_next_key(runtime: Runtime) -> None:
    keys = await states(runtime)
    assert set(keys) == {"RS256", "PS256", "ES256", "EdDSA"}
    for alg in keys:
        assert len(keys[alg]["active"]) == 1 and len(keys[alg]["next"]) == 1, alg


@pytest.mark.parametrize("alg", ["PS256", "EdDSA"])
async def test_rotating_one_algorithm_moves_its_keys_and_no_others(
    runtime: Runtime, alg: str
) -> None:
    before = await states(runtime)
    [rotation] = await rotate(runtime, alg)
    after = await states(runtime)
    assert rotation["alg"] == alg
    assert after[alg]["active"] == before[alg]["next"] == [rotation["activated_kid"]]
    assert after[alg]["retired"] == before[alg]["active"] == [rotation["retired_kid"]]
    assert after[alg]["next"] == [rotation["next_kid"]]
    for other in set(before) - {alg}:
        assert after[other] == before[other], f"{other} keys were left alone"

    [second] = await rotate(runtime, alg)
    again = await states(runtime)
    assert again[alg]["active"] == [rotation["next_kid"]] == [second["activated_kid"]]
    assert set(again[alg]["retired"]) == {rotation["retired_kid"], rotation["activated_kid"]}


async def test_rotating_without_naming_an_algorithm_rotates_every_configured_one(
    runtime: Runtime,
) -> None:
    rotations = await rotate(runtime)
    assert [r["alg"] for r in rotations] == ["RS256", "PS256", "ES256", "EdDSA"]


@pytest.mark.parametrize(
    ("alg", "message"),
    [
        ("HS256", "not a signing algorithm of 1pass; it signs with RS256, PS256, ES256, EdDSA"),
        ("none", "not a signing algorithm"),
        ("ps256", "not a signing algorithm"),
    ],
)
async def test_rotating_an_algorithm_1pass_does_not_sign_with_is_refused(
    runtime: Runtime, alg: str, message: str
) -> None:
    before = await states(runtime)
    with pytest.raises(UnsupportedAlgorithm, match=message):
        await rotate(runtime, "PS256", alg)
    assert await states(runtime) == before, "nothing rotated"


async def test_jwks_publishes_ps256_and_eddsa_keys_with_public_members_only(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await rotate(runtime, "PS256", "EdDSA")
    await refreshed(app)
    jwks = (await http.get("/.well-known/jwks.json")).json()
    keys = await states(runtime)
    published = {jwk["kid"]: jwk for jwk in jwks["keys"]}
    for alg in ("PS256", "EdDSA"):
        kids = [kid for state in ("next", "active", "retired") for kid in keys[alg][state]]
        assert len(kids) == 3 and set(kids) <= set(published)
    for jwk in jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk), f"private members in {jwk['kid']}"
        assert jwk["use"] == "sig" and jwk["kid"]
        if jwk["alg"] == "PS256":
            assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"} and jwk["kty"] == "RSA"
            imported = KeySet.import_key_set({"keys": [jwk]}).keys[0]
            assert imported.raw_value.key_size >= 2048
        elif jwk["alg"] == "EdDSA":
            assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
            assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    # Each key's kid is its RFC 7638 thumbprint.
    for imported in KeySet.import_key_set(jwks).keys:
        assert imported.thumbprint() == imported.kid


@pytest.mark.parametrize("access_alg", ["PS256", "EdDSA"])
async def test_tokens_signed_with_the_algorithm_verify_with_joserfc_and_at_userinfo(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, access_alg: str
) -> None:
    """A client registered with ``id_token_signed_response_alg`` PS256 (EdDSA), on a
    server whose ONEPASS_ACCESS_TOKEN_ALG is the same: both tokens carry the active key
    of that algorithm, verify with joserfc against the fetched JWKS, and 1pass's own
    verifier accepts the access token at /userinfo."""
    alg = access_alg
    client = await make_rp(runtime, id_token_signed_response_alg=alg)
    user = await make_user(runtime)
    tokens = await sign_in(http, user, client)
    jwks = (await http.get("/.well-known/jwks.json")).json()
    keyset = KeySet.import_key_set(jwks)
    active = (await states(runtime))[alg]["active"]

    id_token = jwt.decode(tokens["id_token"], keyset, algorithms=[alg])
    assert id_token.header["alg"] == alg and [id_token.header["kid"]] == active
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client.client_id},
        sub={"essential": True},
        exp={"essential": True},
    ).validate(id_token.claims)
    # at_hash (OIDC Core §3.1.3.6) with the hash of the alg: SHA-512 for Ed25519, as
    # openid-client and node-oidc-provider compute it.
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(
        tokens["access_token"].encode()
    ).digest()
    half = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
    assert id_token.claims["at_hash"] == half
    with pytest.raises(Exception, match=r"not allowed|not supported"):
        jwt.decode(tokens["id_token"], keyset, algorithms=["RS256"])

    access = jwt.decode(tokens["access_token"], keyset, algorithms=[alg])
    assert access.header["typ"] == "at+jwt" and [access.header["kid"]] == active
    userinfo = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == id_token.claims["sub"]

    # After a rotation of that algorithm alone, the token still verifies (its key is
    # retired, still published) and new tokens come from the new active key.
    [rotation] = await rotate(runtime, alg)
    await refreshed(app)
    userinfo = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 200, userinfo.text
    fresh = await sign_in(http, user, client)
    keyset = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(fresh["id_token"], keyset, algorithms=[alg])
    assert decoded.header["kid"] == rotation["activated_kid"]


async def test_the_in_memory_verifier_keeps_rs256_and_ps256_keys_apart(
    app: OnePass, runtime: Runtime
) -> None:
    """Against the ring's real keys: a token whose header says RS256 signed by the active
    PS256 key is refused, and the reverse; each key's own tokens verify, EdDSA too."""
    keyring = app.services.get(KEYRING)
    verifier = JWSVerifier(keyring)
    rs, ps, ed = (keyring.signer(alg) for alg in ("RS256", "PS256", "EdDSA"))
    claims = {"sub": "a"}
    for signer in (rs, ps, ed, keyring.signer("ES256")):
        header, verified = verifier.verify(signer.sign(claims))
        assert header["alg"] == signer.alg and verified == claims
    crossed = [
        JWTSigner(ps.kid, "RS256", ps.key).sign(claims),  # header RS256, PS256 key
        JWTSigner(rs.kid, "PS256", rs.key).sign(claims),  # header PS256, RS256 key
        JWTSigner(rs.kid, "RS256", ps.key).sign(claims),  # RS256 key's kid, other key
        JWTSigner(ed.kid, "RS256", rs.key).sign(claims),
    ]
    for token in crossed:
        with pytest.raises(InvalidJWS):
            verifier.verify(token)


async def test_discovery_lists_exactly_the_algorithms_kept(
    http: httpx.AsyncClient, database_url: str
) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["id_token_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "EdDSA"]
    assert document["access_token_signing_alg_values_supported"] == ["ES256"]
    assert document["userinfo_signing_alg_values_supported"] == []
    default = discovery_document(make_settings(database_url))
    assert default["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]


@pytest.mark.parametrize("signing_algs", ["RS256,ES256"])
async def test_a_client_with_an_algorithm_the_ring_keeps_no_key_for_is_refused(
    runtime: Runtime, signing_algs: str
) -> None:
    for alg in ("PS256", "EdDSA"):
        with pytest.raises(
            InvalidClientSettings,
            match=f"{alg} has no signing key.*ONEPASS_SIGNING_ALGS is RS256,ES256",
        ):
            await clients_playbook.create(
                runtime,
                Actor.cli(),
                name="RP",
                redirect_uris=[REDIRECT_URI],
                id_token_signed_response_alg=alg,
            )
    with pytest.raises(InvalidClientSettings, match="must be one of RS256, PS256, ES256, EdDSA"):
        await clients_playbook.create(
            runtime,
            Actor.cli(),
            name="RP",
            redirect_uris=[REDIRECT_URI],
            id_token_signed_response_alg="HS256",
        )
    created = await clients_playbook.create(
        runtime,
        Actor.cli(),
        name="RP",
        redirect_uris=[REDIRECT_URI],
        id_token_signed_response_alg="ES256",
    )
    assert created["id_token_signed_response_alg"] == "ES256"
    with pytest.raises(
        UnsupportedAlgorithm, match="keeps no PS256 keys: ONEPASS_SIGNING_ALGS is RS256,ES256"
    ):
        await rotate(runtime, "PS256")


async def test_an_algorithm_taken_out_of_the_setting_is_retired_at_the_next_start(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    database_url: str,
    redis_url: str | None,
) -> None:
    """ONEPASS_SIGNING_ALGS loses PS256 and EdDSA and a process starts: their keys are
    retired (still published until their tokens expire), a client registered with PS256
    gets temporarily_unavailable, never a 500, and the other algorithms are untouched."""
    client = await make_rp(runtime, id_token_signed_response_alg="PS256")
    before = await states(runtime)
    restarted = Runtime.build(make_settings(database_url, redis_url, signing_algs="RS256,ES256"))
    try:
        await prepare(restarted)
    finally:
        await restarted.close()
    after = await states(runtime)
    for alg in ("PS256", "EdDSA"):
        assert "active" not in after[alg] and "next" not in after[alg]
        assert set(after[alg]["retired"]) == {*before[alg]["active"], *before[alg]["next"]}
    for alg in ("RS256", "ES256"):
        assert after[alg] == before[alg]
    async with runtime.database.session() as session:
        retired = [k for k in await service.list_keys(session) if k.alg == "PS256"]
    assert all(k.state == KeyState.RETIRED and k.remove_after is not None for k in retired)

    await refreshed(app)
    published = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
    assert set(after["PS256"]["retired"]) <= published
    user = await make_user(runtime)
    callback = await log_in_and_consent(http, authorize_url(client), user.email, user.password)
    assert client.client_secret is not None
    response = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(callback).query)["code"][0],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        },
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"

    # The client can still be changed, and moved to an algorithm that has keys (not to
    # one that has none), by a process that runs with the new setting.
    restarted = Runtime.build(make_settings(database_url, redis_url, signing_algs="RS256,ES256"))
    try:
        changed = await clients_playbook.update(
            restarted, Actor.cli(), client.client_id, ClientChanges(name="Renamed")
        )
        assert changed["id_token_signed_response_alg"] == "PS256"
        with pytest.raises(InvalidClientSettings, match="EdDSA has no signing key"):
            await clients_playbook.update(
                restarted,
                Actor.cli(),
                client.client_id,
                ClientChanges(id_token_signed_response_alg="EdDSA"),
            )
        moved = await clients_playbook.update(
            restarted,
            Actor.cli(),
            client.client_id,
            ClientChanges(id_token_signed_response_alg="ES256"),
        )
        assert moved["id_token_signed_response_alg"] == "ES256"
    finally:
        await restarted.close()


@pytest.mark.parametrize("signing_algs", ["RS256,ES256"])
async def test_a_start_after_adding_algorithms_creates_their_keys(
    runtime: Runtime, database_url: str, redis_url: str | None, signing_algs: str
) -> None:
    assert set(await states(runtime)) == {"RS256", "ES256"}
    before = await states(runtime)
    restarted = Runtime.build(make_settings(database_url, redis_url, signing_algs=ALL))
    try:
        await prepare(restarted)
    finally:
        await restarted.close()
    after = await states(runtime)
    for alg in ("PS256", "EdDSA"):
        assert sorted(after[alg]) == ["active", "next"]
        assert len(after[alg]["active"]) == len(after[alg]["next"]) == 1
    for alg in ("RS256", "ES256"):
        assert after[alg] == before[alg]
