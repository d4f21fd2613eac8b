"""A branded sign-in page in headless Chromium, served by the real server: the data:
logo is drawn (the CSP lets data: images through when one is configured), the accent
of /brand.css colours the button (no inline style needed), the footer has the links,
and the browser reports no CSP violation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.e2e.server import Server, base_env, cli
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_password_reset_browser import _require_chromium, _screenshot

pytestmark = pytest.mark.e2e

LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32">'
    '<rect width="96" height="32" rx="6" fill="#0b7a5c"/>'
    '<text x="48" y="22" font-size="16" text-anchor="middle" fill="#fff">ACME</text></svg>'
)


def test_a_branded_sign_in_page_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    env = base_env(
        f"sqlite:///{tmp_path}/onepass.db",
        ONEPASS_BRAND_NAME="Acme ID",
        ONEPASS_BRAND_LOGO_URL="data:image/svg+xml;base64,"
        + base64.b64encode(LOGO.encode()).decode(),
        ONEPASS_BRAND_ACCENT="#0b7a5c",
        ONEPASS_SUPPORT_URL="https://help.acme.example/",
        ONEPASS_TERMS_URL="https://acme.example/terms",
    )
    cli(env, "db", "upgrade")
    with Server(env, log_path=tmp_path / "server.log") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            violations: list[str] = []
            page.on(
                "console",
                lambda m: (
                    violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            page.goto(f"{server.url}/account")
            assert page.title() == "Your account — Acme ID"
            logo = page.locator(".brand img")
            assert logo.get_attribute("alt") == "Acme ID"
            assert logo.evaluate("img => img.complete && img.naturalWidth") == 96
            button = page.locator("form[action='/account/login'] button[type=submit]")
            colour = button.evaluate("b => getComputedStyle(b).backgroundColor")
            assert colour == "rgb(11, 122, 92)", colour
            links = page.locator("footer.links a")
            assert links.all_inner_texts() == ["Help", "Terms"]
            assert violations == []
            _screenshot(page, tmp_path / "branded-sign-in.png")
        finally:
            browser.close()
