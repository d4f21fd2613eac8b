"""A person connects a device (RFC 8628) through the real pages in headless Chromium:
the code pre-filled from ``verification_uri_complete``, the normal sign-in, the
confirmation naming the client, then Approve (in English) or Deny (in Korean), while
the device polls the token endpoint over HTTP."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EMAIL, PASSWORD = "ada@example.com", "correct horse battery"


def _poll(server: Server, client_id: str, device_code: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/token",
        data={"grant_type": GRANT, "device_code": device_code, "client_id": client_id},
    )


def test_person_approves_and_denies_a_device_in_chromium_in_english_and_korean(
    tmp_path: Path,
) -> None:
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    with Server(env, log_path=tmp_path / "server.log") as server:
        tv = cli_json(
            server.env, "clients", "create", "--name", "Living Room TV", "--public",
            "--grant-type", GRANT,
        )  # fmt: skip
        outcomes = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for locale, decision in (("en-US", "approve"), ("ko-KR", "deny")):
                    started = httpx.post(
                        f"{server.url}/device_authorization",
                        data={"client_id": tv["client_id"], "scope": "openid email"},
                    ).json()
                    assert (
                        _poll(server, tv["client_id"], started["device_code"]).json()["error"]
                        == "authorization_pending"
                    )
                    context = browser.new_context(
                        locale=locale, extra_http_headers={"accept-language": locale}
                    )
                    page = context.new_page()
                    page.goto(started["verification_uri_complete"])
                    assert page.locator("html").get_attribute("lang") == locale[:2]
                    assert page.input_value("#user_code") == started["user_code"]
                    page.click("form[action='/device'] button[type=submit]")
                    page.wait_for_selector("form[action='/account/login']")
                    page.fill("#email", EMAIL)
                    page.fill("#password", PASSWORD)
                    page.click("form[action='/account/login'] button[type=submit]")
                    page.wait_for_url("**/device?user_code=*")
                    assert page.input_value("#user_code") == started["user_code"]
                    page.click("form[action='/device'] button[type=submit]")
                    page.wait_for_selector("form[action='/device/decide']")
                    assert "Living Room TV" in page.inner_text("h1")
                    assert started["user_code"] in page.inner_text("#device-code")
                    if locale == "en-US":
                        assert page.title().startswith("Allow access")
                        page.screenshot(path=str(tmp_path / "device.png"), full_page=True)
                    page.click(f"button[value={decision}]")
                    page.wait_for_selector("p[role=status]")
                    assert page.locator("html").get_attribute("lang") == locale[:2]
                    if locale == "en-US":
                        assert "Your device is connected" in page.inner_text("h1")
                    outcomes[decision] = _poll(server, tv["client_id"], started["device_code"])
                    context.close()
            finally:
                browser.close()
    approved = outcomes["approve"]
    assert approved.status_code == 200, approved.text
    assert approved.json()["scope"] == "openid email" and "id_token" in approved.json()
    denied = outcomes["deny"]
    assert denied.status_code == 400 and denied.json()["error"] == "access_denied"
    png = (tmp_path / "device.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
