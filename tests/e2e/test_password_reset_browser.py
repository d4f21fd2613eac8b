"""A person who forgot their password resets it in headless Chromium, with the link
from a mail the real server sent to a real SMTP server (aiosmtpd), then signs in to
an RP with the new one; ``onepass mail list`` shows what went. And without SMTP
(development), the link is in the log and in ``onepass mail list``."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS
from tests.flow import hidden_fields
from tests.smtp import SmtpServer, link_in

pytestmark = pytest.mark.e2e

OLD = "correct horse battery"
NEW = "lantern quietly orbits marble"


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def _screenshot(page: object, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    png = path.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000, "a real, non-empty screenshot"
    artifacts = os.environ.get("ONEPASS_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)


def test_a_person_resets_a_forgotten_password_in_chromium(tmp_path: Path, smtp: SmtpServer) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    env = base_env(
        f"sqlite:///{tmp_path}/onepass.db",
        ONEPASS_SMTP_URL=smtp.url,
        ONEPASS_MAIL_POLL_INTERVAL="0.2",
    )
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin", stdin=OLD)
    redirect_uri = "http://127.0.0.1:9/callback"  # never reached: the test stops at consent
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
                page.goto(url)
                page.get_by_role("link", name="Forgot your password?").click()
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_role("button", name="Send the link").click()
                page.wait_for_selector("text=Check your mail")
                _screenshot(page, tmp_path / "reset-sent.png")

                [mail] = smtp.wait_for(1)
                assert mail["Subject"] == "Reset your 1pass password"
                link = link_in(mail)
                assert link.startswith(f"{server.url}/password/reset?token=")

                page.goto(link)
                assert page.locator("main").inner_text().count("ada@example.com") == 1
                page.get_by_label("New password", exact=True).fill("password1")
                page.get_by_label("New password again").fill("password1")
                page.get_by_role("button", name="Change the password").click()
                page.wait_for_selector("text=too easy to guess")
                page.get_by_label("New password", exact=True).fill(NEW)
                page.get_by_label("New password again").fill(NEW)
                page.get_by_role("button", name="Change the password").click()
                page.wait_for_selector("text=Password changed")
                _screenshot(page, tmp_path / "reset-done.png")

                # The old password no longer works; the new one does.
                page.goto(url)
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill(OLD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("text=Incorrect email or password.")
                page.get_by_label("Password").fill(NEW)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("text=Allow Example Notes?")

                korean = browser.new_page(locale="ko-KR")
                korean.goto(f"{server.url}/password/forgot")
                assert korean.title().startswith("비밀번호 재설정")
                _screenshot(korean, tmp_path / "reset-ko.png")
            finally:
                browser.close()

        [_, changed] = smtp.wait_for(2)
        assert changed["Subject"] == "Your 1pass password was changed"
        listed = cli_json(server.env, "mail", "list")
        assert [(m["kind"], m["status"], m["sent_via"]) for m in listed] == [
            ("password_changed", "sent", "smtp"),
            ("password_reset", "sent", "smtp"),
        ]
        assert all("text" not in m for m in listed), "a link sent by SMTP is not kept"
        assert "token=" not in server.log(), "no link in the server's log when mail is sent"


def test_without_smtp_the_link_is_in_the_log_and_in_mail_list(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/onepass.db", ONEPASS_MAIL_POLL_INTERVAL="0.2")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin", stdin=OLD)
    with (
        Server(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url) as browser,
    ):
        form = browser.get("/password/forgot")
        sent = browser.post(
            "/password/forgot", data={**hidden_fields(form.text), "email": "ada@example.com"}
        )
        assert sent.status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = cli_json(server.env, "mail", "list", "--status", "sent")
            if listed:
                break
            time.sleep(0.3)
        [mail] = listed
        assert mail["sent_via"] == "log" and mail["to_address"] == "ada@example.com"
        [link] = re.findall(r"https?://\S+", mail["text"])
        assert link.startswith(f"{server.url}/password/reset?token=")
        assert link in server.log().replace("\\n", "\n"), "the developer finds it in the log"
        human = cli(server.env, "mail", "list").stdout
        assert link in human
        assert browser.get(link.removeprefix(server.url)).status_code == 200


def test_mail_list_refuses_an_unknown_status_clearly(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    result = cli(env, "mail", "list", "--status", "lost", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pending" in result.stderr and "dead" in result.stderr
