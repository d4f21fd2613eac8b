"""DPoP (RFC 9449) at the token endpoint, /authorize, /par, userinfo and introspection:
tokens bound to the proof's key (checked with joserfc), every kind of bad proof refused
in the protocol's format (never a 500), codes bound by ``dpop_jkt``, a public client's
refresh tokens bound and a confidential client's not, no downgrade to Bearer at
userinfo, replays refused by every worker sharing Redis, and the server's nonces.
SQLite, and PostgreSQL with Redis."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc.jwk import OctKey
from sqlalchemy import select

from onepass.app import OnePass, create_app
from onepass.oauth import pkce
from onepass.oauth.models import AuthorizationCode, RefreshToken
from onepass.runtime import Runtime
from onepass.settings import Settings
from tests.conftest import ISSUER
from tests.dpop import PAR_URL, TOKEN_URL, USERINFO_URL, Holder, unsigned
from tests.factories import REDIRECT_URI, Client, make_client, make_rp, make_user
from tests.flow import VERIFIER, authorize_url, log_in_and_consent
from tests.oidc import verify_access_token

SCOPE = "openid email offline_access"


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another app (a worker of its own) on the same database and cache."""
    application = create_app(settings)
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client


async def client_credentials(
    http: httpx.AsyncClient, client: Client, *proofs: str
) -> httpx.Response:
    assert client.client_secret is not None
    return await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
        headers=[("dpop", proof) for proof in proofs],
    )


async def jwks(http: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await http.get("/.well-known/jwks.json")).json())


async def bound_to(http: httpx.AsyncClient, access_token: str) -> str | None:
    """The ``cnf.jkt`` of an access token, verified independently with joserfc."""
    claims = verify_access_token(
        access_token, await jwks(http), issuer=ISSUER, audience=ISSUER
    ).claims
    cnf = claims.get("cnf")
    return None if cnf is None else str(cnf["jkt"])


def assert_refused(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
async def test_a_proof_binds_the_client_credentials_token_to_its_key(
    http: httpx.AsyncClient, runtime: Runtime, alg: str
) -> None:
    client = await make_client(runtime)
    holder = Holder(alg)
    response = await client_credentials(http, client, holder.proof())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert await bound_to(http, body["access_token"]) == holder.jkt
    plain = await client_credentials(http, client)
    assert plain.json()["token_type"] == "Bearer"
    assert await bound_to(http, plain.json()["access_token"]) is None


def _refusals() -> list[tuple[str, Any]]:
    holder, other = Holder(), Holder()
    now = time.time()
    secret = OctKey.generate_key(256)
    jwk = holder.jwk
    claims = {"jti": "j-1", "htm": "POST", "htu": TOKEN_URL, "iat": int(now)}
    return [
        ("not a jws", "abc"),
        ("wrong typ", holder.proof(header={"typ": "JWT"})),
        ("no typ", holder.proof(header={"typ": None})),
        ("alg none", unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}, claims)),
        ("HS256", holder.proof(header={"alg": "HS256"}, signer=secret)),
        ("no jwk", holder.proof(header={"jwk": None})),
        ("private jwk", holder.proof(header={"jwk": dict(holder.key.as_dict(private=True))})),
        ("secret jwk", holder.proof(header={"jwk": dict(secret.as_dict())})),
        ("signed by another key", holder.proof(signer=other.key)),
        ("wrong htm", holder.proof(htm="GET")),
        ("wrong htu", holder.proof(htu=USERINFO_URL)),
        ("htu of the Host header", holder.proof(htu="http://evil.example/token")),
        ("iat too old", holder.proof(iat=now - 300)),
        ("iat too new", holder.proof(iat=now + 300)),
        ("iat not a number", holder.proof(claims={"iat": "now"})),
        ("no jti", holder.proof(claims={"jti": None})),
        ("payload not an object", holder.proof(claims={}).split(".")[0] + ".WzFd.c2ln"),
    ]


async def test_every_bad_proof_is_invalid_dpop_proof(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    for name, proof in _refusals():
        response = await client_credentials(http, client, proof)
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"] == "invalid_dpop_proof", (name, response.text)
    holder = Holder()
    two = await client_credentials(http, client, holder.proof(), holder.proof())
    assert_refused(two, "invalid_dpop_proof")
    assert "exactly one" in two.json()["error_description"]


async def test_htu_is_the_advertised_url_whatever_the_host_header(
    app: OnePass, runtime: Runtime
) -> None:
    """Behind a proxy the Host header is the proxy's business: the proof names the
    public URL, normalised (case, default port, no query)."""
    client = await make_client(runtime)
    holder = Holder()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as http:
        ok = await client_credentials(
            http, client, holder.proof(htu="HTTP://TestServer:80/token?a=1")
        )
        assert ok.status_code == 200, ok.text
        by_host = await client_credentials(
            http, client, holder.proof(htu="http://internal:8000/token")
        )
        assert_refused(by_host, "invalid_dpop_proof")


async def test_a_replayed_proof_is_refused_by_every_worker_sharing_the_cache(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """With Redis (the PostgreSQL runs) a proof is spent for every worker; without it
    (SQLite, the embedded default) for the process that saw it."""
    client = await make_client(runtime)
    holder = Holder()
    proof = holder.proof()
    assert (await client_credentials(http, client, proof)).status_code == 200
    again = await client_credentials(http, client, proof)
    assert_refused(again, "invalid_dpop_proof")
    assert "already used" in again.json()["error_description"]
    other_proof = holder.proof()
    assert (await client_credentials(http, client, other_proof)).status_code == 200
    async with serving(runtime.settings) as second_worker:
        elsewhere = await client_credentials(second_worker, client, other_proof)
    if runtime.settings.redis_url is not None:
        assert_refused(elsewhere, "invalid_dpop_proof")
    else:
        assert elsewhere.status_code == 200  # one process's memory: documented


async def test_a_client_with_dpop_bound_access_tokens_needs_a_proof(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime, dpop_bound_access_tokens=True)
    refused = await client_credentials(http, client)
    assert_refused(refused, "invalid_dpop_proof")
    holder = Holder()
    ok = await client_credentials(http, client, holder.proof())
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"


async def sign_in(http: httpx.AsyncClient, runtime: Runtime, client: Client, **extra: str) -> str:
    """A code (from the callback) for ``client``, the user signed in and consenting."""
    user = await make_user(runtime, email=f"u{time.monotonic_ns()}@example.com")
    callback = await log_in_and_consent(
        http, authorize_url(client, scope=SCOPE, **extra), user.email, user.password
    )
    assert callback.startswith(REDIRECT_URI), callback
    return parse_qs(urlsplit(callback).query)["code"][0]


async def exchange(
    http: httpx.AsyncClient, client: Client, code: str, *proofs: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
    }
    if client.client_secret is None:
        data["client_id"] = client.client_id
    return await http.post(
        "/token",
        data=data,
        auth=(client.client_id, client.client_secret) if client.client_secret else None,
        headers=[("dpop", proof) for proof in proofs],
    )


async def refresh(
    http: httpx.AsyncClient, client: Client, token: str, *proofs: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if client.client_secret is None:
        data["client_id"] = client.client_id
    return await http.post(
        "/token",
        data=data,
        auth=(client.client_id, client.client_secret) if client.client_secret else None,
        headers=[("dpop", proof) for proof in proofs],
    )


async def redeemed(runtime: Runtime, code: str) -> bool:
    async with runtime.database.session(readonly=True) as session:
        row = await session.scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code_hash == runtime.hasher.hash(code)
            )
        )
    assert row is not None
    return row.redeemed_at is not None


async def test_a_code_bound_by_dpop_jkt_is_redeemed_only_with_that_key(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """RFC 9449 §10: another key, or none, is invalid_grant and leaves the code unused,
    so the client holding the key can still redeem it."""
    client = await make_rp(runtime)
    holder, thief = Holder(), Holder()
    code = await sign_in(http, runtime, client, dpop_jkt=holder.jkt)
    for proofs in ((thief.proof(),), ()):
        refused = await exchange(http, client, code, *proofs)
        assert_refused(refused, "invalid_grant")
        assert "DPoP key" in refused.json()["error_description"]
        assert not await redeemed(runtime, code)
    ok = await exchange(http, client, code, holder.proof())
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "DPoP"
    assert await bound_to(http, ok.json()["access_token"]) == holder.jkt
    assert await redeemed(runtime, code)


async def test_a_bad_dpop_jkt_goes_back_to_the_client(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    response = await http.get(authorize_url(client, dpop_jkt="not-a-thumbprint"))
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "dpop_jkt" in query["error_description"][0]


async def push(
    http: httpx.AsyncClient, client: Client, *proofs: str, **extra: str
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }
    assert client.client_secret is not None
    return await http.post(
        "/par",
        data=params,
        auth=(client.client_id, client.client_secret),
        headers=[("dpop", proof) for proof in proofs],
    )


async def test_a_proof_at_par_binds_the_code_to_its_key(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    holder, thief = Holder(), Holder()
    mismatch = await push(http, client, holder.proof(htu=PAR_URL), dpop_jkt=thief.jkt)
    assert_refused(mismatch, "invalid_request")
    bad = await push(http, client, holder.proof(htu=TOKEN_URL))
    assert_refused(bad, "invalid_dpop_proof")
    pushed = await push(http, client, holder.proof(htu=PAR_URL), dpop_jkt=holder.jkt)
    assert pushed.status_code == 201, pushed.text
    user = await make_user(runtime)
    url = f"/authorize?client_id={client.client_id}&request_uri={pushed.json()['request_uri']}"
    callback = await log_in_and_consent(http, url, user.email, user.password)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert_refused(await exchange(http, client, code, thief.proof()), "invalid_grant")
    ok = await exchange(http, client, code, holder.proof())
    assert ok.status_code == 200, ok.text
    assert await bound_to(http, ok.json()["access_token"]) == holder.jkt


async def stored_refresh(runtime: Runtime, token: str) -> RefreshToken:
    async with runtime.database.session(readonly=True) as session:
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == runtime.hasher.hash(token))
        )
    assert row is not None
    return row


async def test_a_public_clients_refresh_token_is_bound_to_its_key(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """RFC 9449 §5: refused (and left usable) without a proof of the key or with
    another key's; rotated with it, its successor bound to the same key."""
    client = await make_rp(runtime, public=True, token_endpoint_auth_method="none")
    holder, thief = Holder("EdDSA"), Holder()
    code = await sign_in(http, runtime, client)
    tokens = (await exchange(http, client, code, holder.proof())).json()
    assert tokens["token_type"] == "DPoP"
    assert (await stored_refresh(runtime, tokens["refresh_token"])).dpop_jkt == holder.jkt
    for proofs in ((), (thief.proof(),)):
        refused = await refresh(http, client, tokens["refresh_token"], *proofs)
        assert_refused(refused, "invalid_grant")
        assert "DPoP key" in refused.json()["error_description"]
    stored = await stored_refresh(runtime, tokens["refresh_token"])
    assert stored.rotated_at is None and stored.revoked_at is None
    rotated = await refresh(http, client, tokens["refresh_token"], holder.proof())
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["token_type"] == "DPoP"
    assert await bound_to(http, rotated.json()["access_token"]) == holder.jkt
    successor = rotated.json()["refresh_token"]
    assert (await stored_refresh(runtime, successor)).dpop_jkt == holder.jkt
    assert_refused(await refresh(http, client, successor), "invalid_grant")


async def test_a_confidential_clients_refresh_token_is_not_bound(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """RFC 9449 §5: the client's authentication binds it; each access token is bound to
    the key of the proof that asked for it, or to none."""
    client = await make_rp(runtime)
    holder = Holder()
    code = await sign_in(http, runtime, client)
    tokens = (await exchange(http, client, code, holder.proof())).json()
    assert (await stored_refresh(runtime, tokens["refresh_token"])).dpop_jkt is None
    plain = await refresh(http, client, tokens["refresh_token"])
    assert plain.status_code == 200 and plain.json()["token_type"] == "Bearer"
    other = Holder()
    bound = await refresh(http, client, plain.json()["refresh_token"], other.proof())
    assert bound.status_code == 200 and bound.json()["token_type"] == "DPoP"
    assert await bound_to(http, bound.json()["access_token"]) == other.jkt


async def userinfo(
    http: httpx.AsyncClient, token: str, scheme: str = "DPoP", *proofs: str
) -> httpx.Response:
    return await http.get(
        "/userinfo",
        headers=[("authorization", f"{scheme} {token}"), *(("dpop", p) for p in proofs)],
    )


async def test_userinfo_takes_a_bound_token_only_with_a_proof_of_its_key(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    holder, thief = Holder(), Holder()
    code = await sign_in(http, runtime, client)
    token = (await exchange(http, client, code, holder.proof())).json()["access_token"]

    ok = await userinfo(http, token, "DPoP", holder.proof("GET", USERINFO_URL, access_token=token))
    assert ok.status_code == 200, ok.text
    assert ok.json()["email"].endswith("@example.com")

    def challenge(response: httpx.Response, error: str) -> str:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == error
        value = response.headers["www-authenticate"]
        assert value.startswith(f'DPoP error="{error}"'), value
        assert 'algs="ES256 PS256 EdDSA RS256"' in value
        return value

    challenge(await userinfo(http, token, "Bearer"), "invalid_token")
    stolen = thief.proof("GET", USERINFO_URL, access_token=token)
    challenge(await userinfo(http, token, "DPoP", stolen), "invalid_token")
    challenge(await userinfo(http, token, "DPoP"), "invalid_dpop_proof")
    for proof in (
        holder.proof("GET", USERINFO_URL),  # no ath
        holder.proof("GET", USERINFO_URL, access_token=token + "x"),  # another token's
        holder.proof("POST", USERINFO_URL, access_token=token),
        holder.proof("GET", TOKEN_URL, access_token=token),
    ):
        challenge(await userinfo(http, token, "DPoP", proof), "invalid_dpop_proof")
    replayed = holder.proof("GET", USERINFO_URL, access_token=token)
    assert (await userinfo(http, token, "DPoP", replayed)).status_code == 200
    challenge(await userinfo(http, token, "DPoP", replayed), "invalid_dpop_proof")

    plain_code = await sign_in(http, runtime, client)
    plain = (await exchange(http, client, plain_code)).json()["access_token"]
    proof = holder.proof("GET", USERINFO_URL, access_token=plain)
    challenge(await userinfo(http, plain, "DPoP", proof), "invalid_token")
    assert (await userinfo(http, plain, "Bearer")).status_code == 200


async def test_a_request_without_a_token_gets_both_challenges(http: httpx.AsyncClient) -> None:
    response = await http.get("/userinfo")
    assert response.status_code == 401
    value = response.headers["www-authenticate"]
    assert value.startswith('Bearer realm="1pass"') and ', DPoP algs="' in value


async def test_introspection_reports_the_binding_and_revocation_ends_it(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    assert client.client_secret is not None
    holder = Holder()
    code = await sign_in(http, runtime, client)
    token = (await exchange(http, client, code, holder.proof())).json()["access_token"]
    auth = (client.client_id, client.client_secret)
    body = (await http.post("/introspect", data={"token": token}, auth=auth)).json()
    assert body["active"] is True and body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": holder.jkt}
    assert (await http.post("/revoke", data={"token": token}, auth=auth)).status_code == 200
    after = (await http.post("/introspect", data={"token": token}, auth=auth)).json()
    assert after == {"active": False}
    proof = holder.proof("GET", USERINFO_URL, access_token=token)
    assert (await userinfo(http, token, "DPoP", proof)).status_code == 401


async def test_discovery_names_the_proof_algorithms(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA", "RS256"]


async def test_with_nonces_required_a_proof_must_carry_the_servers(runtime: Runtime) -> None:
    """§8 and §9: ``use_dpop_nonce`` with a fresh ``DPoP-Nonce`` (400 at /token, 401
    with a DPoP challenge at userinfo); a nonce from one worker works at another."""
    settings = runtime.settings.model_copy(update={"dpop_require_nonce": True})
    client = await make_client(runtime)
    holder = Holder()
    async with serving(settings) as http, serving(settings) as other_worker:
        first = await client_credentials(http, client, holder.proof())
        assert_refused(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        wrong = await client_credentials(http, client, holder.proof(nonce="made-up"))
        assert_refused(wrong, "use_dpop_nonce")
        ok = await client_credentials(other_worker, client, holder.proof(nonce=nonce))
        assert ok.status_code == 200, ok.text
        assert ok.headers["dpop-nonce"]
        token = ok.json()["access_token"]
        assert (await client_credentials(http, client)).status_code == 200, "Bearer: no nonce"

        refused = await userinfo(
            http, token, "DPoP", holder.proof("GET", USERINFO_URL, access_token=token)
        )
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith('DPoP error="use_dpop_nonce"')
        assert refused.headers["dpop-nonce"]


def integrating_example() -> str:
    """docs/integrating.md's DPoP verification example, as written."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "integrating.md").read_text()
    after = page.split("### Verifying a DPoP-bound access token in your API", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_integrating_example_verifies_a_bound_token_at_an_api(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """What an RP's API runs, read from the page: it takes a bound token with its key's
    proof once, and refuses a replay, another key's proof, a Bearer scheme, a proof for
    another URL, and an unbound token."""
    code = integrating_example()
    placeholder = 'ISSUER = "https://id.example.com"'
    assert placeholder in code
    namespace: dict[str, Any] = {}
    exec(code.replace(placeholder, f"ISSUER = {ISSUER!r}"), namespace)  # noqa: S102
    verify = namespace["verify_dpop_request"]
    client = await make_client(runtime)
    holder, thief = Holder("PS256"), Holder()
    token = (await client_credentials(http, client, holder.proof())).json()["access_token"]
    keys = await jwks(http)
    api = "https://api.example.com/things"

    def call(authorization: str, *proofs: str, url: str = api) -> dict[str, Any]:
        return dict(verify(authorization, list(proofs), "GET", url, keys))

    proof = holder.proof("GET", api, access_token=token)
    assert call(f"DPoP {token}", proof)["cnf"] == {"jkt": holder.jkt}
    plain = (await client_credentials(http, client)).json()["access_token"]
    refused = [
        (f"DPoP {token}", proof),  # replayed
        (f"DPoP {token}", thief.proof("GET", api, access_token=token)),
        (f"Bearer {token}", holder.proof("GET", api, access_token=token)),
        (f"DPoP {token}", holder.proof("GET", api + "/other", access_token=token)),
        (f"DPoP {token}", holder.proof("GET", api)),  # no ath
        (f"DPoP {plain}", holder.proof("GET", api, access_token=plain)),
    ]
    for authorization, bad in refused:
        with pytest.raises(PermissionError):
            call(authorization, bad)
