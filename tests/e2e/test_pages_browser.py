"""The public pages and the admin API reference as a person sees them: headless
Chromium (Debian's package) against a real `onepass serve`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import Server, base_env
from tests.e2e.test_admin_console_browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.e2e


def test_home_status_and_favicon_in_english_and_korean_in_chromium(tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    env = base_env(f"sqlite:///{tmp_path}/onepass.db", ONEPASS_LOG_LEVEL="warning")
    with Server(env, log_path=tmp_path / "server.log") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            english = browser.new_context(locale="en-US")
            page = english.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.url + "/")
            expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in service")
            expect(page.get_by_role("link", name="Discovery document")).to_be_visible()
            expect(page.get_by_role("link", name="Signing keys (JWKS)")).to_be_visible()
            page.get_by_role("link", name="Service status").click()
            page.wait_for_url(server.url + "/status")
            expect(page.locator("#status")).to_have_text("All systems operational.")
            expect(page.locator("#updated")).to_contain_text("UTC (just now)")
            assert errors == [], errors  # every stylesheet and icon loaded, nothing refused
            page.goto(server.url + "/no/such/page")
            expect(page.get_by_role("heading", level=1)).to_have_text("No page here")
            response = page.goto(server.url + "/favicon.ico")
            assert response is not None and response.status == 200
            assert response.headers["content-type"] == "image/x-icon"

            korean = browser.new_context(
                locale="ko-KR", extra_http_headers={"accept-language": "ko-KR,ko;q=0.9"}
            )
            page = korean.new_page()
            page.goto(server.url + "/")
            expect(page.get_by_role("heading", level=1)).to_have_text("로그인 서비스")
            assert page.locator("html").get_attribute("lang") == "ko"
            page.get_by_role("link", name="서비스 상태").click()
            expect(page.locator("#status")).to_have_text("모든 시스템이 정상 작동 중입니다.")
            expect(page.locator("#updated")).to_contain_text("UTC (방금)")
        finally:
            browser.close()


def test_admin_api_reference_loads_same_origin_without_errors_in_chromium(
    tmp_path: Path,
) -> None:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    env = base_env(f"sqlite:///{tmp_path}/onepass.db", ONEPASS_LOG_LEVEL="warning")
    with Server(env, log_path=tmp_path / "server.log") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            foreign: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    None if r.url.startswith((server.url, "data:")) else foreign.append(r.url)
                ),
            )
            page.goto(server.url + "/api/v1/admin/docs")
            expect(page.get_by_text("1pass admin API").first).to_be_visible(timeout=15_000)
            step_up = page.locator(".opblock-summary-path", has_text="/api/v1/admin/step-up")
            expect(step_up.first).to_be_visible()
            expect(
                page.locator(".opblock-summary-path", has_text="/api/v1/admin/webhook_outbox").first
            ).to_be_visible()
            step_up.first.click()  # an operation opens with its request body
            expect(page.get_by_text("action_request_nonce").first).to_be_visible()
            assert errors == [], errors
            assert foreign == [], foreign
        finally:
            browser.close()
