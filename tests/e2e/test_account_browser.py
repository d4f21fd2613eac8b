"""A person manages their own account in headless Chromium: signs in at /account,
turns on two-step verification by scanning (reading) the key, keeps the recovery
codes, and then signs in to an RP with password and code."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_password_reset_browser import _require_chromium, _screenshot

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def test_a_person_turns_on_two_step_verification_and_signs_in_with_it(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    cli(
        env,
        "users",
        "create",
        "--email",
        "ada@example.com",
        "--name",
        "Ada",
        "--password-stdin",
        stdin=PASSWORD,
    )
    redirect_uri = "http://127.0.0.1:9/callback"
    with Server(env, log_path=tmp_path / "server.log") as server:
        rp = cli_json(
            server.env,
            "clients",
            "create",
            "--name",
            "Example Notes",
            "--redirect-uri",
            redirect_uri,
        )
        oauth = OAuth2Client(
            rp["client_id"],
            rp["client_secret"],
            redirect_uri=redirect_uri,
            scope="openid email",
            code_challenge_method="S256",
        )
        url, _ = oauth.create_authorization_url(f"{server.url}/authorize", code_verifier="v" * 50)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{server.url}/account")
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("text=You are signed in.")
                _screenshot(page, tmp_path / "account.png")

                page.locator("#totp_password").fill(PASSWORD)
                page.get_by_role("button", name="Set up an authenticator app").click()
                page.wait_for_selector(".qr svg")
                secret = page.locator("#secret").inner_text().strip()
                _screenshot(page, tmp_path / "totp-setup.png")
                page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
                page.get_by_role("button", name="Turn on two-step verification").click()
                page.wait_for_selector("text=Your recovery codes")
                codes = page.locator("#codes code").all_inner_texts()
                assert len(codes) == 10
                _screenshot(page, tmp_path / "recovery-codes.png")
                page.get_by_role("link", name="I have kept them; back to my account").click()
                page.wait_for_selector("text=Recovery codes left: 10.")
                page.get_by_role("button", name="Sign out", exact=True).click()
                page.wait_for_selector("text=You are signed out.")

                page.goto(url)
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("text=Two-step verification")
                page.get_by_label("Code", exact=True).fill(
                    pyotp.TOTP(secret).at(int(time.time()) + 30)
                )
                page.get_by_role("button", name="Continue").click()
                page.wait_for_selector("text=Allow Example Notes?")

                korean = browser.new_page(locale="ko-KR")
                korean.goto(f"{url}&ui_locales=ko")
                assert korean.title().startswith("로그인")
                _screenshot(korean, tmp_path / "login-ko.png")
            finally:
                browser.close()
