"""Many code exchanges and refreshes at once: every one succeeds (no "database is
locked" on SQLite), and racing redemptions of one code let exactly one win."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from onepass.oauth import pkce
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, make_rp, make_user
from tests.flow import log_in_and_consent


async def mint_codes(
    http: httpx.AsyncClient, client_id: str, email: str, password: str, verifier: str, n: int
) -> list[str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid offline_access",
        "code_challenge": pkce.s256(verifier),
        "code_challenge_method": "S256",
    }
    url = "/authorize?" + urlencode(params)
    codes = [
        parse_qs(urlsplit(await log_in_and_consent(http, url, email, password)).query)["code"][0]
    ]
    for _ in range(n - 1):
        response = await http.get(url)
        codes.append(parse_qs(urlsplit(response.headers["location"]).query)["code"][0])
    return codes


async def test_parallel_code_exchanges_and_refreshes_all_succeed(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    verifier = secrets.token_urlsafe(48)
    codes = await mint_codes(http, client.client_id, user.email, user.password, verifier, 24)
    auth = (client.client_id, client.client_secret)

    async def exchange(code: str) -> httpx.Response:
        return await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            auth=auth,
        )

    exchanged = await asyncio.gather(*(exchange(c) for c in codes))
    assert [r.status_code for r in exchanged] == [200] * len(codes), [
        r.text for r in exchanged if r.status_code != 200
    ][:2]

    async def refresh(token: str) -> httpx.Response:
        return await http.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth
        )

    refreshed = await asyncio.gather(*(refresh(r.json()["refresh_token"]) for r in exchanged))
    assert [r.status_code for r in refreshed] == [200] * len(codes), [
        r.text for r in refreshed if r.status_code != 200
    ][:2]


async def test_racing_redemptions_of_one_code_let_exactly_one_win(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    verifier = secrets.token_urlsafe(48)
    [code] = await mint_codes(http, client.client_id, user.email, user.password, verifier, 1)
    auth = (client.client_id, client.client_secret)
    responses = await asyncio.gather(
        *(
            http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
                auth=auth,
            )
            for _ in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400, 400]
    winner = next(r for r in responses if r.status_code == 200).json()
    # The losers' replay revoked what the winner got: its access token and its refresh token.
    assert (
        await http.get("/userinfo", headers={"authorization": f"Bearer {winner['access_token']}"})
    ).status_code == 401
    refreshed = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


async def test_racing_refreshes_of_one_token_let_exactly_one_win_and_revoke_the_family(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    verifier = secrets.token_urlsafe(48)
    [code] = await mint_codes(http, client.client_id, user.email, user.password, verifier, 1)
    auth = (client.client_id, client.client_secret)
    first = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=auth,
    )
    assert first.status_code == 200
    token = first.json()["refresh_token"]
    responses = await asyncio.gather(
        *(
            http.post(
                "/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth
            )
            for _ in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400, 400]
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    winner = next(r for r in responses if r.status_code == 200).json()
    # A rotated token used again: the whole family is revoked, the winner's tokens with it
    # (RFC 9700 §4.14.2), and the access token issued with the code too.
    for access_token in (winner["access_token"], first.json()["access_token"]):
        userinfo = await http.get("/userinfo", headers={"authorization": f"Bearer {access_token}"})
        assert userinfo.status_code == 401
    again = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]},
        auth=auth,
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
