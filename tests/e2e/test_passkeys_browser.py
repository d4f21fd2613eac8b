"""Passkeys in headless Chromium, with Chromium's own virtual authenticator (DevTools
protocol, ``WebAuthn`` domain): a person adds a passkey on the account page, signs in
to an RP with it and no password, and then with password and passkey; the ID tokens
say how (checked with joserfc); an answer replayed by hand is refused. Korean pages
offer the same. The issuer is ``localhost``: browsers refuse an IP as a WebAuthn RP ID.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_password_reset_browser import _require_chromium, _screenshot

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
REDIRECT_URI = "http://127.0.0.1:9/callback"


def _virtual_authenticator(page: Any) -> tuple[Any, str]:
    """A platform authenticator that keeps discoverable credentials and verifies the
    user (as a phone or a laptop with a fingerprint reader does), on this page."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "ctap2Version": "ctap2_1",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def _callback_of(page: Any) -> str:
    """The RP's callback the browser was sent to (nothing listens there)."""
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as request:
        pass
    return str(request.value.url)


def test_a_person_adds_a_passkey_and_signs_in_with_it_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--name", "Ada",
        "--password-stdin", stdin=PASSWORD)  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log", host="localhost") as server:
        rp = cli_json(server.env, "clients", "create", "--name", "Example Notes",
                      "--redirect-uri", REDIRECT_URI)  # fmt: skip
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        ada_sub = cli_json(server.env, "users", "show", "ada@example.com")["sub"]

        def authorize() -> tuple[OAuth2Client, str, str]:
            oauth = OAuth2Client(
                rp["client_id"],
                rp["client_secret"],
                redirect_uri=REDIRECT_URI,
                scope="openid email",
                code_challenge_method="S256",
            )
            verifier = "v" * 50
            url, _ = oauth.create_authorization_url(
                f"{server.url}/authorize", code_verifier=verifier, prompt="login"
            )
            return oauth, url, verifier

        def id_token_claims(oauth: OAuth2Client, callback: str, verifier: str) -> dict[str, Any]:
            token = oauth.fetch_token(
                f"{server.url}/token", authorization_response=callback, code_verifier=verifier
            )
            return dict(jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                cdp, authenticator = _virtual_authenticator(page)
                page.goto(f"{server.url}/account")
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                page.wait_for_selector("text=You are signed in.")

                page.get_by_label("Name it (to tell your passkeys apart)").fill("Test laptop")
                page.locator("#passkey_add_password").fill(PASSWORD)
                page.get_by_role("button", name="Add a passkey").click()
                page.wait_for_selector("text=Your recovery codes")
                page.get_by_role("link", name="I have kept them; back to my account").click()
                page.wait_for_selector("#passkeys >> text=Test laptop")
                _screenshot(page, tmp_path / "account-passkeys.png")
                stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
                assert len(stored["credentials"]) == 1
                assert stored["credentials"][0]["isResidentCredential"] is True
                page.get_by_role("button", name="Sign out", exact=True).click()
                page.wait_for_selector("text=You are signed out.")

                # Without a password: the login page's passkey button.
                oauth, url, verifier = authorize()
                page.goto(url)
                _screenshot(page, tmp_path / "login-passkey.png")
                with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as sent:
                    page.get_by_role("button", name="Sign in with a passkey").click()
                    page.get_by_role("button", name="Allow").click()
                claims = id_token_claims(oauth, sent.value.url, verifier)
                assert claims["amr"] == ["hwk", "user", "mfa"]
                assert claims["acr"] == "urn:1pass:acr:mfa"
                assert claims["sub"] == ada_sub

                # With the password: the passkey is the second step.
                oauth, url, verifier = authorize()
                page.goto(url)
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in", exact=True).click()
                page.wait_for_selector("text=Use your passkey, or enter a code.")
                _screenshot(page, tmp_path / "second-step-passkey.png")
                with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as sent:
                    page.get_by_role("button", name="Use a passkey").click()
                claims = id_token_claims(oauth, sent.value.url, verifier)
                assert claims["amr"] == ["pwd", "hwk", "mfa"]

                # The browser's answer, posted again (with its cookies): refused.
                oauth, url, verifier = authorize()
                captured: list[bytes] = []

                def keep(route: Any) -> None:
                    captured.append(route.request.post_data_buffer or b"")
                    route.continue_()

                page.route("**/login/passkey", keep)
                page.goto(url)
                with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)):
                    page.get_by_role("button", name="Sign in with a passkey").click()
                assert len(captured) == 1 and b"credential=" in captured[0]
                cookies = {c["name"]: c["value"] for c in page.context.cookies()}
                replay = httpx.post(
                    f"{server.url}/login/passkey",
                    content=captured[0],
                    headers={"content-type": "application/x-www-form-urlencoded"},
                    cookies=cookies,
                )
                assert replay.status_code == 401
                assert "That passkey was not accepted" in replay.text

                korean = browser.new_page(locale="ko-KR")
                _virtual_authenticator(korean)
                korean.goto(f"{url}&ui_locales=ko")
                assert korean.get_by_role("button", name="패스키로 로그인").is_visible()
                _screenshot(korean, tmp_path / "login-passkey-ko.png")
            finally:
                browser.close()
        log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in log and PASSWORD not in log


def test_an_administrator_confirms_a_console_change_with_a_passkey_in_chromium(
    tmp_path: Path,
) -> None:
    """The console's "Confirm with a passkey" button (static/passkey.js): the passkey
    added after a code on /admin/passkeys approves disabling a user, no code typed."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from onepass.accounts import totp

    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    cli(env, "admin", "create", "--email", "ops@example.com", "--password-stdin",
        stdin=PASSWORD + "\n")  # fmt: skip
    secret = cli_json(env, "admin", "enroll-totp", "--email", "ops@example.com")["secret"]
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin=PASSWORD)  # fmt: skip
    step = [0]

    def next_code() -> str:  # each change takes a step of its own
        step[0] += 1
        return totp.code_at(secret, time.time() + 30 * (step[0] - 1))

    with Server(env, log_path=tmp_path / "server.log", host="localhost") as server:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                cdp, authenticator = _virtual_authenticator(page)
                page.goto(f"{server.url}/admin/login")
                page.get_by_label("Email").fill("ops@example.com")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_label("Authenticator code").fill(next_code())
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(re.compile(r"/admin$"))

                page.get_by_role("link", name="Your passkeys").click()
                page.get_by_label("Name").fill("Test key")
                page.get_by_label("Authenticator code").fill(next_code())
                page.get_by_role("button", name="Add a passkey").click()
                expect(page.get_by_role("status")).to_contain_text("The passkey is added")
                expect(page.get_by_role("cell", name="Test key")).to_be_visible()

                page.goto(f"{server.url}/admin/users/ada@example.com")
                state = page.locator("section", has_text="Disable this user")
                state.get_by_role("button", name="Confirm with a passkey").click()
                expect(page.get_by_role("status")).to_contain_text("disabled")
                _screenshot(page, tmp_path / "admin-passkey-step-up.png")
                used = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
                assert used["credentials"][0]["signCount"] >= 1
            finally:
                browser.close()
    assert cli_json(env, "users", "show", "ada@example.com")["disabled"] is True
    step_ups = [
        e for e in cli_json(env, "admin", "audit") if e["action"] == "step_up:users.disable"
    ]
    assert [e["detail"] for e in step_ups] == [{"with": "passkey"}]
