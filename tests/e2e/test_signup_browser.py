"""Sign-up and an address change in headless Chromium, with the links from mails the
real server sent to a real SMTP server (aiosmtpd): a person creates an account from an
RP's sign-in page (``ONEPASS_SIGNUP=open``), confirms it from the mail, signs in to the
RP; then changes their address on /account, confirmed from the new address's mail,
while the old address is told."""

from __future__ import annotations

from pathlib import Path

import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_password_reset_browser import _require_chromium, _screenshot
from tests.smtp import SmtpServer, link_in

pytestmark = pytest.mark.e2e

PASSWORD = "lantern quietly orbits marble"


def test_a_person_signs_up_and_later_changes_their_address_in_chromium(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    env = base_env(
        f"sqlite:///{tmp_path}/onepass.db",
        ONEPASS_SMTP_URL=smtp.url,
        ONEPASS_MAIL_POLL_INTERVAL="0.2",
        ONEPASS_SIGNUP="open",
    )
    cli(env, "db", "upgrade")
    redirect_uri = "http://127.0.0.1:9/callback"
    with Server(env, log_path=tmp_path / "server.log") as server:
        rp = cli_json(server.env, "clients", "create", "--name", "Example Notes",
                      "--redirect-uri", redirect_uri)  # fmt: skip
        oauth = OAuth2Client(
            rp["client_id"], rp["client_secret"], redirect_uri=redirect_uri,
            scope="openid email", code_challenge_method="S256",
        )  # fmt: skip
        url, _ = oauth.create_authorization_url(f"{server.url}/authorize", code_verifier="v" * 50)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(url)
                page.get_by_role("link", name="Create an account").click()
                page.get_by_label("Email").fill("grace@example.com")
                page.get_by_label("Your name").fill("Grace")
                page.get_by_label("Password", exact=True).fill("password1")
                page.get_by_label("Password again").fill("password1")
                page.get_by_role("button", name="Create the account").click()
                page.wait_for_selector("text=too easy to guess")
                page.get_by_label("Password", exact=True).fill(PASSWORD)
                page.get_by_label("Password again").fill(PASSWORD)
                page.get_by_role("button", name="Create the account").click()
                page.wait_for_selector("text=Check your mail")
                _screenshot(page, tmp_path / "signup-sent.png")

                [confirm] = smtp.wait_for(1)
                assert confirm["To"] == "grace@example.com"
                page.goto(link_in(confirm))
                page.get_by_role("button", name="Create the account").click()
                page.wait_for_selector("text=Your account is ready")
                _screenshot(page, tmp_path / "signup-done.png")

                page.goto(url)
                page.get_by_label("Email").fill("grace@example.com")
                page.get_by_label("Password", exact=True).fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("text=Allow Example Notes?")

                # The address changes only once the new one's link is opened.
                page.goto(f"{server.url}/account")
                page.get_by_label("New address").fill("grace@new.example")
                page.locator("#email_password").fill(PASSWORD)
                page.get_by_role("button", name="Change the address").click()
                page.wait_for_selector("text=We sent a link to the new address")
                mails = smtp.wait_for(3)
                to_new = [m for m in mails if m["To"] == "grace@new.example"]
                to_old = [m for m in mails[1:] if m["To"] == "grace@example.com"]
                assert len(to_new) == 1 and len(to_old) == 1, [m["To"] for m in mails]
                assert "token=" not in to_old[0].get_body(("plain",)).get_content()
                page.goto(link_in(to_new[0]))
                page.get_by_role("button").first.click()
                page.wait_for_selector("text=grace@new.example")
                _screenshot(page, tmp_path / "email-changed.png")
            finally:
                browser.close()
        shown = cli_json(server.env, "users", "show", "grace@new.example")
        assert shown["email"] == "grace@new.example" and shown["email_verified"] is True
