"""An RP that asks for two-step verification (``acr_values=urn:1pass:acr:mfa``) gets it:
a person without one sets it up in the middle of the sign-in, a person with one is
asked for the code, and a one-step session is not enough. On SQLite and on
PostgreSQL with Redis."""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.app import OnePass
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, log_in_and_consent, submit_consent, submit_login
from tests.functional.oauth.test_code_flow import rp_client
from tests.functional.selfservice.test_second_factor import code, enrol, fields

MFA = "urn:1pass:acr:mfa"


async def test_discovery_lists_the_acr_values(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()
    assert document["acr_values_supported"] == ["urn:1pass:acr:pwd", MFA]
    assert document["ui_locales_supported"] == ["en", "ko"]


async def test_a_person_without_a_second_factor_sets_one_up_to_continue(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    client = await make_rp(runtime, name="Example Notes")
    verifier = secrets.token_urlsafe(48)
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        url, state = rp.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=verifier, acr_values=MFA
        )
        page = await http.get(url)
        setup = await submit_login(http, page, ada.email, ada.password)
        assert setup.status_code == 200 and 'action="/login/enrol"' in setup.text
        assert "Example Notes asks for two-step verification" in setup.text
        assert not any(c.endswith("onepass_session") for c in http.cookies), "no session yet"
        secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', setup.text)
        assert secret is not None
        wrong = await http.post("/login/enrol", data={**fields(setup.text), "code": "000000"})
        assert wrong.status_code == 400 and "not right" in wrong.text
        secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', wrong.text)
        assert secret is not None
        codes = await http.post(
            "/login/enrol",
            data={**fields(wrong.text), "code": pyotp.TOTP(secret.group(1)).now()},
        )
        assert codes.status_code == 200 and "Your recovery codes" in codes.text
        assert len(re.findall(r"<li><code>", codes.text)) == 10
        link = re.search(r'<a id="continue" href="([^"]+)"', codes.text)
        assert link is not None
        consent = await http.get(html.unescape(link.group(1)))
        answer = await submit_consent(http, consent) if consent.status_code == 200 else consent
        assert answer.status_code == 303
        callback = answer.headers["location"]
        assert parse_qs(urlsplit(callback).query)["state"] == [state]
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
        jwks = (await http.get("/.well-known/jwks.json")).json()
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims
    assert claims["acr"] == MFA and claims["amr"] == ["pwd", "otp", "mfa"]
    # It is on for the account now: the next sign-in asks for the code.
    step = await submit_login(
        http, await http.get(authorize_url(client, prompt="login")), ada.email, ada.password
    )
    assert 'action="/login/second-factor"' in step.text


async def test_a_one_step_session_is_not_enough_when_two_are_asked_for(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    client = await make_rp(runtime)
    await log_in_and_consent(http, authorize_url(client), ada.email, ada.password)
    # Signed in with a password: a plain request goes straight through...
    plain = await http.get(authorize_url(client))
    assert plain.status_code == 303 and "code=" in plain.headers["location"]
    # ...one asking for two steps shows the sign-in again,
    asked = await http.get(authorize_url(client, acr_values=MFA))
    assert asked.status_code == 200 and 'action="/login"' in asked.text
    # and one that may not show a page gets login_required.
    silent = await http.get(authorize_url(client, acr_values=MFA, prompt="none"))
    assert silent.status_code == 303
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["login_required"]


async def test_a_person_with_a_second_factor_is_asked_for_the_code(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    secret, _ = await enrol(http, ada)
    client = await make_rp(runtime)
    page = await http.get(authorize_url(client, acr_values=MFA, prompt="login"))
    step = await submit_login(http, page, ada.email, ada.password)
    assert 'action="/login/second-factor"' in step.text
    done = await http.post("/login/second-factor", data={**fields(step.text), "code": code(secret)})
    done = await submit_consent(http, done) if done.status_code == 200 else done
    assert done.status_code == 303 and "code=" in done.headers["location"]
    again = await http.get(authorize_url(client, acr_values=MFA))
    assert again.status_code == 303 and "code=" in again.headers["location"], "two steps kept"
