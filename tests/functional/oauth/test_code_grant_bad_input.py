"""The authorization_code grant at /token: codes are single-use and bound to client,
redirect URI and PKCE verifier."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import update

from onepass.oauth import pkce
from onepass.oauth.models import AuthorizationCode
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, Client, UserInfo, make_rp, make_user
from tests.flow import log_in_and_consent


async def get_code(
    http: httpx.AsyncClient, client: Client, user: UserInfo, verifier: str | None, **extra: str
) -> str:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid offline_access",
        "state": "s",
        **extra,
    }
    if verifier is not None:
        params.update(code_challenge=pkce.s256(verifier), code_challenge_method="S256")
    callback = await log_in_and_consent(
        http, "/authorize?" + urlencode(params), user.email, user.password
    )
    return parse_qs(urlsplit(callback).query)["code"][0]


def redeem(http: httpx.AsyncClient, client: Client, code: str, **form: str):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, **form}
    return http.post("/token", data=data, auth=(client.client_id, client.client_secret or ""))


@pytest.fixture
async def setup(runtime: Runtime) -> tuple[Client, Client, UserInfo]:
    return await make_rp(runtime), await make_rp(runtime), await make_user(runtime)


async def test_code_redeemed_twice_fails_and_revokes_its_tokens(
    http: httpx.AsyncClient, setup
) -> None:
    a, _, user = setup
    verifier = secrets.token_urlsafe(48)
    code = await get_code(http, a, user, verifier)
    first = await redeem(http, a, code, code_verifier=verifier)
    assert first.status_code == 200
    tokens = first.json()
    second = await redeem(http, a, code, code_verifier=verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert (
        await http.get("/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"})
    ).status_code == 401
    refresh = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(a.client_id, a.client_secret),
    )
    assert refresh.json()["error"] == "invalid_grant"


async def test_code_of_client_a_redeemed_by_client_b_is_invalid_grant(
    http: httpx.AsyncClient, setup
) -> None:
    a, b, user = setup
    verifier = secrets.token_urlsafe(48)
    code = await get_code(http, a, user, verifier)
    stolen = await redeem(http, b, code, code_verifier=verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await redeem(http, a, code, code_verifier=verifier)).status_code == 200, (
        "the code was not burnt"
    )


@pytest.mark.parametrize(
    ("name", "form", "error"),
    [
        ("wrong_verifier", {"code_verifier": "x" * 43}, "invalid_grant"),
        ("verifier_too_short", {"code_verifier": "abc"}, "invalid_grant"),
        ("verifier_too_long", {"code_verifier": "a" * 129}, "invalid_grant"),
        ("verifier_bad_alphabet", {"code_verifier": "!" * 50}, "invalid_grant"),
        ("missing_verifier", {}, "invalid_request"),
        ("redirect_uri_trailing_slash", {"redirect_uri": REDIRECT_URI + "/"}, "invalid_grant"),
        ("redirect_uri_missing", {"redirect_uri": ""}, "invalid_request"),
        ("unknown_code", {"code": "not-a-code"}, "invalid_grant"),
        ("missing_code", {"code": ""}, "invalid_request"),
    ],
)
async def test_code_exchange_bad_input(
    name: str, form: dict, error: str, http: httpx.AsyncClient, setup
) -> None:
    a, _, user = setup
    verifier = secrets.token_urlsafe(48)
    code = await get_code(http, a, user, verifier)
    data = {"code_verifier": verifier, **form} if name not in ("missing_verifier",) else dict(form)
    if name.startswith("verifier") or name == "wrong_verifier":
        data = dict(form)
    response = await redeem(http, a, data.pop("code", code), **data)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


async def test_verifier_without_challenge_is_a_downgrade_and_refused(
    http: httpx.AsyncClient, setup
) -> None:
    a, _, user = setup
    code = await get_code(http, a, user, None)
    response = await redeem(http, a, code, code_verifier=secrets.token_urlsafe(48))
    assert response.json()["error"] == "invalid_grant"


async def test_expired_code_is_invalid_grant(
    http: httpx.AsyncClient, runtime: Runtime, setup
) -> None:
    a, _, user = setup
    verifier = secrets.token_urlsafe(48)
    code = await get_code(http, a, user, verifier)
    async with runtime.database.session() as session:
        await session.execute(
            update(AuthorizationCode).values(expires_at=runtime.clock.now() - timedelta(seconds=1))
        )
    response = await redeem(http, a, code, code_verifier=verifier)
    assert response.json()["error"] == "invalid_grant"


async def test_nonce_is_echoed_exactly_and_may_be_reused(http: httpx.AsyncClient, setup) -> None:
    import base64
    import json

    a, _, user = setup
    nonce = "same nonce / with spaces & symbols ✓"
    for _ in range(2):
        verifier = secrets.token_urlsafe(48)
        code = await get_code(http, a, user, verifier, nonce=nonce)
        id_token = (await redeem(http, a, code, code_verifier=verifier)).json()["id_token"]
        payload = id_token.split(".")[1]
        assert (
            json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["nonce"]
            == nonce
        )


async def test_refresh_token_of_another_client_is_invalid_grant(
    http: httpx.AsyncClient, setup
) -> None:
    a, b, user = setup
    verifier = secrets.token_urlsafe(48)
    code = await get_code(http, a, user, verifier)
    tokens = (await redeem(http, a, code, code_verifier=verifier)).json()
    response = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(b.client_id, b.client_secret),
    )
    assert response.json()["error"] == "invalid_grant"
    wider = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid email",
        },
        auth=(a.client_id, a.client_secret),
    )
    assert wider.json()["error"] == "invalid_scope"
    narrower = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid",
        },
        auth=(a.client_id, a.client_secret),
    )
    assert narrower.status_code == 200
