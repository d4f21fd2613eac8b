"""Token Exchange (RFC 8693): a service exchanges a user's access token for one meant
for a downstream resource server; refused by default, every refusal RFC 6749 JSON. The
issued tokens are verified with joserfc (aud, scope, exp, alg, act). SQLite and
PostgreSQL."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.app import OnePass
from onepass.clients.registry import (
    TOKEN_EXCHANGE,
    ClientChanges,
    InvalidClientSettings,
    describe_client,
    find_client,
)
from onepass.keys.keyring import KEYRING
from onepass.oauth.revocation import revoke_access_token
from onepass.operators.audit import Actor
from onepass.playbook import clients as client_playbook
from onepass.playbook import resources as resource_playbook
from onepass.playbook import users as user_playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.dpop import Holder
from tests.factories import Client, UserInfo, make_client, make_rp, make_user
from tests.functional.oauth.test_resource_indicators import (
    RP_SCOPE,
    assert_refused,
    code_for,
    jwks,
    redeem,
)
from tests.oidc import verify_access_token

AT = "urn:ietf:params:oauth:token-type:access_token"
ORDERS = "https://orders.example/api"
STOCK = "https://stock.example/"


async def setup(runtime: Runtime, http: httpx.AsyncClient) -> tuple[Client, UserInfo, str]:
    """The resources, a service allowed to exchange to ORDERS, and a user's token."""
    await resource_playbook.create(
        runtime,
        Actor.cli(),
        identifier=ORDERS,
        scopes=["orders:read", "orders:write"],
        access_token_ttl=300,
        signing_alg="RS256",
    )
    await resource_playbook.create(runtime, Actor.cli(), identifier=STOCK, scopes=["stock:read"])
    service = await make_client(runtime, scope="service:call", token_exchange_resources=[ORDERS])
    user = await make_user(runtime)
    rp = await make_rp(runtime, scope=RP_SCOPE)
    response = await redeem(http, rp, await code_for(http, rp, user, scope=RP_SCOPE))
    assert response.status_code == 200, response.text
    return service, user, response.json()["access_token"]


def exchange(
    http: httpx.AsyncClient, client: Client, subject_token: str | None, **extra: str
) -> Any:
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": AT, "resource": ORDERS, **extra}
    if subject_token is not None:
        data["subject_token"] = subject_token
    data = {k: v for k, v in data.items() if v != ""}
    return http.post("/token", data=data, auth=(client.client_id, client.client_secret or ""))


def decode(token: str, keys: dict[str, Any]) -> jwt.Token:
    return jwt.decode(token, KeySet.import_key_set(keys), algorithms=["ES256", "RS256"])


async def test_a_service_exchanges_a_users_token_for_a_downstream_one(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, user, subject = await setup(runtime, http)
    response = await exchange(http, service, subject)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == AT
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    keys = await jwks(http)
    token = verify_access_token(body["access_token"], keys, issuer=ISSUER, audience=ORDERS)
    original = decode(subject, keys)
    assert token.header["alg"] == "RS256"
    assert token.claims["sub"] == user.sub
    assert token.claims["client_id"] == service.client_id
    # What the user's token had, narrowed to what the resource defines.
    assert token.claims["scope"] == "orders:read orders:write" == body["scope"]
    assert token.claims["exp"] - token.claims["iat"] == 300 == body["expires_in"]
    assert token.claims["exp"] <= original.claims["exp"]
    assert "act" not in token.claims

    # The downstream token is not for userinfo; introspection by the service shows it.
    userinfo = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 401
    info = await http.post(
        "/introspect",
        data={"token": body["access_token"]},
        auth=(service.client_id, service.client_secret or ""),
    )
    assert info.json()["active"] is True
    assert info.json()["aud"] == ORDERS and info.json()["sub"] == user.sub


async def test_audience_names_the_target_too_and_scope_narrows(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, _, subject = await setup(runtime, http)
    response = await exchange(
        http, service, subject, resource="", audience=ORDERS, scope="orders:read"
    )
    assert response.status_code == 200, response.text
    claims = decode(response.json()["access_token"], await jwks(http)).claims
    assert claims["aud"] == ORDERS and claims["scope"] == "orders:read"


async def test_actor_token_gives_act_and_a_second_exchange_nests_it(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, user, subject = await setup(runtime, http)
    await client_playbook.update(
        runtime,
        Actor.cli(),
        service.client_id,
        ClientChanges(grant_types=("client_credentials",), add_token_exchange_resources=(STOCK,)),
    )
    await client_playbook.update(
        runtime,
        Actor.cli(),
        service.client_id,
        ClientChanges(scopes=("service:call", "orders:read")),
    )
    own = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "service:call"},
        auth=(service.client_id, service.client_secret or ""),
    )
    actor = own.json()["access_token"]
    first = await exchange(http, service, subject, actor_token=actor, actor_token_type=AT)
    assert first.status_code == 200, first.text
    keys = await jwks(http)
    claims = decode(first.json()["access_token"], keys).claims
    assert claims["sub"] == user.sub
    assert claims["act"] == {"sub": service.client_id}

    # The downstream token exchanged again, with an actor: the earlier act nests inside.
    second = await exchange(
        http, service, first.json()["access_token"], actor_token=actor, actor_token_type=AT
    )
    assert second.status_code == 200, second.text
    nested = decode(second.json()["access_token"], keys).claims
    assert nested["act"] == {"sub": service.client_id, "act": {"sub": service.client_id}}
    # It has none of STOCK's scopes: nothing to exchange to there.
    to_stock = await exchange(http, service, first.json()["access_token"], resource=STOCK)
    assert_refused(to_stock, "invalid_scope")


async def test_exchange_is_refused_by_default(http: httpx.AsyncClient, runtime: Runtime) -> None:
    _, _, subject = await setup(runtime, http)
    other = await make_client(runtime)  # no exchange policy
    assert_refused(await exchange(http, other, subject), "unauthorized_client")
    # Asking for the grant type without a policy does not give it.
    sneaky = await make_client(runtime, grant_types=["client_credentials", TOKEN_EXCHANGE])
    assert_refused(await exchange(http, sneaky, subject), "unauthorized_client")


async def test_deleting_the_last_exchange_resource_takes_the_grant_away(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, _, subject = await setup(runtime, http)
    await resource_playbook.delete(runtime, Actor.cli(), ORDERS)
    async with runtime.database.session() as session:
        shown = describe_client(await find_client(session, service.client_id))
    assert shown["token_exchange_resources"] == []
    assert TOKEN_EXCHANGE not in shown["grant_types"]
    time.sleep(0.3)  # the client cache's TTL in the tests
    assert_refused(await exchange(http, service, subject), "unauthorized_client")


async def test_a_public_client_cannot_get_an_exchange_policy(runtime: Runtime) -> None:
    await resource_playbook.create(runtime, Actor.cli(), identifier=ORDERS, scopes=["orders:read"])
    with pytest.raises(InvalidClientSettings):
        await make_client(
            runtime,
            public=True,
            grant_types=["authorization_code"],
            redirect_uris=["https://rp.example/cb"],
            token_exchange_resources=[ORDERS],
        )


def _forged(app: OnePass, claims: dict[str, Any], alg: str = "ES256") -> str:
    return app.services.get(KEYRING).signer(alg).sign(claims, typ="at+jwt")


def _claims(user: UserInfo, client_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": user.sub,
        "aud": ISSUER,
        "client_id": client_id,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(8),
        "scope": "openid orders:read",
        **overrides,
    }
    return {k: v for k, v in claims.items() if v is not None}


REFUSALS: list[tuple[str, dict[str, str], str]] = [
    ("no_subject_token", {"subject_token": "-"}, "invalid_request"),
    ("no_subject_token_type", {"subject_token_type": ""}, "invalid_request"),
    (
        "id_token_type",
        {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
        "invalid_request",
    ),
    (
        "refresh_token_requested",
        {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        "invalid_request",
    ),
    ("no_target", {"resource": ""}, "invalid_request"),
    ("target_not_in_policy", {"resource": STOCK}, "invalid_target"),
    ("target_unknown", {"resource": "https://nowhere.example/"}, "invalid_target"),
    ("target_fragment", {"resource": ORDERS + "#x"}, "invalid_target"),
    ("resource_and_audience_differ", {"audience": STOCK}, "invalid_target"),
    ("scope_beyond_subject", {"scope": "orders:read stock:read"}, "invalid_scope"),
    ("garbage_subject", {"subject_token": "not.a.jwt"}, "invalid_request"),
    ("actor_type_without_actor", {"actor_token_type": AT}, "invalid_request"),
    ("actor_without_type", {"actor_token": "x.y.z"}, "invalid_request"),
    ("garbage_actor", {"actor_token": "x.y.z", "actor_token_type": AT}, "invalid_request"),
]


@pytest.mark.parametrize(("name", "extra", "error"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_exchange_bad_input_answers_oauth_error(
    http: httpx.AsyncClient, runtime: Runtime, name: str, extra: dict[str, str], error: str
) -> None:
    service, _, subject = await setup(runtime, http)
    extra = dict(extra)  # the parameters are shared by both engines' runs
    token = None if extra.get("subject_token") == "-" else extra.pop("subject_token", subject)
    extra.pop("subject_token", None)
    assert_refused(await exchange(http, service, token, **extra), error)


async def test_unacceptable_subject_and_actor_tokens_are_invalid_request(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, user, subject = await setup(runtime, http)
    rp = await make_rp(runtime)
    expired = _forged(
        app, _claims(user, rp.client_id, iat=int(time.time()) - 600, exp=int(time.time()) - 1)
    )
    assert_refused(await exchange(http, service, expired), "invalid_request")
    other_issuer = _forged(app, _claims(user, rp.client_id, iss="https://evil.example"))
    assert_refused(await exchange(http, service, other_issuer), "invalid_request")
    # A client acting for itself has no user to exchange for.
    own = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(service.client_id, service.client_secret or ""),
    )
    assert_refused(await exchange(http, service, own.json()["access_token"]), "invalid_request")
    # An actor token issued to another client.
    foreign_actor = _forged(app, _claims(user, rp.client_id))
    assert_refused(
        await exchange(http, service, subject, actor_token=foreign_actor, actor_token_type=AT),
        "invalid_request",
    )
    # A token of a deleted client.
    gone = await make_rp(runtime)
    orphan = _forged(app, _claims(user, gone.client_id))
    await client_playbook.delete(runtime, Actor.cli(), gone.client_id)
    time.sleep(0.3)  # the client cache's TTL in the tests
    assert_refused(await exchange(http, service, orphan), "invalid_request")


async def test_revoked_subject_token_and_disabled_user_are_refused(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, user, subject = await setup(runtime, http)
    assert (await exchange(http, service, subject)).status_code == 200
    claims = decode(subject, await jwks(http)).claims
    async with runtime.database.session() as session:
        await revoke_access_token(
            session,
            runtime.clock,
            claims["jti"],
            datetime.fromtimestamp(claims["exp"], UTC),
            "test",
        )
    assert_refused(await exchange(http, service, subject), "invalid_request")
    rp = await make_rp(runtime, scope=RP_SCOPE)
    fresh = (await redeem(http, rp, await code_for(http, rp, user))).json()["access_token"]
    assert (await exchange(http, service, fresh)).status_code == 200
    await user_playbook.disable_user(runtime, Actor.cli(), str(user.id))
    assert_refused(await exchange(http, service, fresh), "invalid_request")


async def test_dpop_bound_subject_token_needs_a_proof_of_its_key(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    service, user, _ = await setup(runtime, http)
    rp = await make_rp(runtime)
    holder = Holder()
    bound = _forged(app, _claims(user, rp.client_id, cnf={"jkt": holder.jkt}))
    assert_refused(await exchange(http, service, bound), "invalid_request")
    wrong = await http.post(
        "/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": bound,
            "subject_token_type": AT,
            "resource": ORDERS,
        },
        auth=(service.client_id, service.client_secret or ""),
        headers={"DPoP": Holder().proof()},
    )
    assert_refused(wrong, "invalid_request")
    right = await http.post(
        "/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": bound,
            "subject_token_type": AT,
            "resource": ORDERS,
        },
        auth=(service.client_id, service.client_secret or ""),
        headers={"DPoP": holder.proof()},
    )
    assert right.status_code == 200, right.text
    assert right.json()["token_type"] == "DPoP"
    claims = decode(right.json()["access_token"], await jwks(http)).claims
    assert claims["cnf"] == {"jkt": holder.jkt}
