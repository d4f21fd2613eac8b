"""An administrator retries a dead webhook, and manages an application and a user,
through the admin console in headless Chromium (Debian's package), against a real
`onepass serve`."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from onepass.accounts import totp
from onepass.oauth import pkce
from tests.e2e.server import Server, base_env, cli, cli_json
from tests.webhook_helpers import ThreadedReceiver, status

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
EMAIL = "ops@example.com"
PASSWORD = "correct horse battery"


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    with ThreadedReceiver() as server:
        server.default = status(400, body=b"signature rejected")
        yield server


def require_chromium() -> None:
    if Path(CHROMIUM).exists() and shutil.which("chromium"):
        return
    if os.environ.get("CI") or os.environ.get("ONEPASS_REQUIRE_SERVICES") == "1":
        pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def test_admin_retries_a_dead_webhook_in_chromium(
    tmp_path: Path, receiver: ThreadedReceiver
) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    env = base_env(
        f"sqlite:///{tmp_path}/onepass.db",
        ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS="1",
        # No dispatcher in the server: the retried entry stays pending for the page.
        ONEPASS_WEBHOOK_EMBEDDED_DISPATCHER="0",
        ONEPASS_LOG_LEVEL="warning",
    )
    cli(env, "db", "upgrade")
    cli(env, "admin", "create", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    secret = cli_json(env, "admin", "enroll-totp", "--email", EMAIL)["secret"]
    rp = cli_json(
        env, "clients", "create", "--name", "Example Notes", "--grant-type", "client_credentials",
        "--webhook-url", receiver.url(),
    )  # fmt: skip
    entry_id = cli_json(env, "webhooks", "ping", rp["client_id"])["entry_ids"][0]
    cli_json(env, "webhooks", "dispatch", "--once")  # the receiver answers 400: dead
    [dead] = cli_json(env, "webhooks", "list", "--status", "dead")
    assert dead["id"] == entry_id

    with Server(env, log_path=tmp_path / "server.log") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/admin/webhooks/{entry_id}")
            assert "/admin/login" in page.url, "signed out: to the sign-in page"
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("Authenticator code").fill(totp.code_at(secret, time.time()))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(rf"/admin/webhooks/{entry_id}$"))
            expect(page.get_by_role("heading", level=1)).to_contain_text("dead")
            expect(page.get_by_role("cell", name="400", exact=True)).to_be_visible()

            # The next step's code: accepted as clock drift, and not the sign-in's step.
            page.get_by_label("Authenticator code").fill(totp.code_at(secret, time.time() + 30))
            page.get_by_role("button", name="Retry").click()
            page.wait_for_url(re.compile(r"\?retried=1$"))
            expect(page.get_by_role("status")).to_contain_text("queued for delivery again")
            expect(page.get_by_role("status")).to_contain_text("reloads every 5 seconds")
            expect(page.get_by_role("heading", level=1)).to_contain_text("pending")
            shot = tmp_path / "admin-console-retry.png"
            page.screenshot(path=str(shot), full_page=True)

            # The RP is fixed and a dispatcher runs: the page, reloading itself, says so.
            receiver.default = status(200)
            cli_json(env, "webhooks", "dispatch", "--once")
            expect(page.get_by_role("status")).to_contain_text(
                "was delivered after the retry", timeout=15_000
            )
            expect(page.get_by_role("heading", level=1)).to_contain_text("delivered")

            page.get_by_role("link", name="Audit log").click()
            expect(page.get_by_text("webhook_outbox.retry").first).to_be_visible()
            # A narrow window: the action column keeps each identifier on one line.
            page.set_viewport_size({"width": 600, "height": 800})
            action = page.locator("td.action code").first
            expect(action).to_have_text("webhook_outbox.retry")
            assert action.evaluate("e => e.getClientRects().length") == 1
        finally:
            browser.close()

    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000, "a real, non-empty screenshot"
    artifacts = os.environ.get("ONEPASS_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
    [delivered] = cli_json(env, "webhooks", "list", "--status", "delivered")
    assert delivered["id"] == entry_id and delivered["dlq_at"] is None


class Codes:
    """Fresh TOTP codes for a real server: each step is accepted once, and one step
    ahead of the clock at most, so a code for the step after the last one used is
    given once the clock has reached the last one."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.last = int(time.time()) // totp.STEP_SECONDS - 1

    def fresh(self) -> str:
        step = self.last + 1
        while int(time.time()) // totp.STEP_SECONDS < step - 1:
            time.sleep(0.25)
        self.last = step
        return totp.code_at(self.secret, step * totp.STEP_SECONDS)


def test_admin_edits_and_disables_an_application_and_ends_a_users_sessions_in_chromium(
    tmp_path: Path,
) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    env = base_env(f"sqlite:///{tmp_path}/onepass.db", ONEPASS_LOG_LEVEL="warning")
    cli(env, "db", "upgrade")
    cli(env, "admin", "create", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    codes = Codes(cli_json(env, "admin", "enroll-totp", "--email", EMAIL)["secret"])
    rp = cli_json(
        env, "clients", "create", "--name", "Example Notes",
        "--redirect-uri", "https://notes.example.com/callback",
    )  # fmt: skip
    cli_json(env, "clients", "create", "--name", "Billing", "--grant-type", "client_credentials")
    user_email = "ada@example.com"
    cli(env, "users", "create", "--email", user_email, "--password-stdin", stdin=PASSWORD + "\n")
    new_uri = "https://notes.example.com/callback-v2"

    with Server(env, log_path=tmp_path / "server.log") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The user signs in at the RP's request: a login session to end later.
            user_page = browser.new_context().new_page()
            query = urlencode(
                {
                    "response_type": "code",
                    "client_id": rp["client_id"],
                    "redirect_uri": "https://notes.example.com/callback",
                    "scope": "openid email",
                    "state": "xyz",
                    "code_challenge": pkce.s256("v" * 43),
                    "code_challenge_method": "S256",
                }
            )
            user_page.goto(f"{server.url}/authorize?{query}")
            user_page.get_by_label("Email").fill(user_email)
            user_page.get_by_label("Password").fill(PASSWORD)
            user_page.get_by_role("button", name="Sign in").click()
            deadline = time.monotonic() + 15
            while not cli_json(env, "users", "sessions", user_email):
                assert time.monotonic() < deadline, "the user's sign-in made no session"
                time.sleep(0.25)

            page = browser.new_context().new_page()
            page.goto(f"{server.url}/admin/applications")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("Authenticator code").fill(codes.fresh())
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"/admin/applications$"))

            # Find the application and edit a redirect URI.
            page.get_by_label("Name or client_id").fill("notes")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_text("Billing")).to_have_count(0)
            page.get_by_role("link", name=rp["client_id"]).click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Example Notes")
            page.get_by_role("link", name="Edit the registration…").click()
            page.get_by_label("Redirect URIs (one a line)", exact=True).fill(new_uri)
            page.get_by_label("Authenticator code").fill(codes.fresh())
            page.get_by_role("button", name="Save").click()
            page.wait_for_url(re.compile(r"\?done=updated$"))
            expect(page.get_by_role("status")).to_contain_text("The application was changed.")
            expect(page.get_by_text(new_uri)).to_be_visible()

            # Disable it.
            disable = page.get_by_role("region", name="Disable this application")
            disable.get_by_label("Authenticator code").fill(codes.fresh())
            disable.get_by_role("button", name="Disable").click()
            page.wait_for_url(re.compile(r"\?done=disabled$"))
            expect(page.get_by_role("heading", level=1)).to_contain_text("disabled")

            # Find the user and end their sessions.
            page.get_by_role("link", name="Users").click()
            page.get_by_label("Email, sub or id").fill("ada@")
            page.get_by_role("button", name="Search").click()
            page.get_by_role("link", name=user_email).click()
            sessions = page.get_by_role("region", name="End their sessions")
            sessions.get_by_label("Authenticator code").fill(codes.fresh())
            sessions.get_by_role("button", name="End sessions").click()
            page.wait_for_url(re.compile(r"\?done=sessions$"))
            expect(page.get_by_role("status")).to_contain_text("sessions ended")
            shot = tmp_path / "admin-console-manage.png"
            page.screenshot(path=str(shot), full_page=True)

            page.get_by_role("link", name="Audit log").click()
            for action in ("clients.update", "clients.disable", "users.revoke_sessions"):
                expect(page.get_by_text(action, exact=True).first).to_be_visible()
        finally:
            browser.close()

    assert shot.read_bytes().startswith(b"\x89PNG")
    artifacts = os.environ.get("ONEPASS_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
    shown = cli_json(env, "clients", "show", rp["client_id"])
    assert shown["redirect_uris"] == [new_uri] and shown["disabled"] is True
    assert cli_json(env, "users", "sessions", user_email) == []
