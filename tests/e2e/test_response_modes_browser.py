"""response_mode=form_post in headless Chromium (Debian's package): a real RP on
127.0.0.1 receives the POST, from the page's script and, with JavaScript off, from its
button; in English and in Korean; and Chromium logs no CSP violation (the script runs
by its nonce, the form may go to the RP's origin)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from onepass.oauth import pkce
from tests.e2e.server import Server, base_env, cli, cli_json, free_port
from tests.e2e.test_browser_login import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.e2e

VERIFIER = "v" * 43


@pytest.fixture
def form_post_rp() -> Iterator[tuple[str, list[tuple[str, str, dict[str, list[str]]]]]]:
    """A stand-in RP that records each request: method, path and posted form."""
    received: list[tuple[str, str, dict[str, list[str]]]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<!doctype html><title>RP</title><h1>Signed in at the RP</h1>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            received.append(("POST", self.path, form))
            self._answer()

        def do_GET(self) -> None:
            received.append(("GET", self.path, {}))
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/callback", received
    server.shutdown()


def test_form_post_reaches_the_rp_with_and_without_javascript_in_both_languages(
    tmp_path: Path, form_post_rp: tuple[str, list[tuple[str, str, dict[str, list[str]]]]]
) -> None:
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import ConsoleMessage, Response, sync_playwright

    redirect_uri, received = form_post_rp
    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin="correct horse battery\n")  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log") as server:
        rp = cli_json(server.env, "clients", "create", "--name", "Example Notes",
                      "--redirect-uri", redirect_uri)  # fmt: skip

        def authorize(state: str, **extra: str) -> str:
            params = {
                "response_type": "code",
                "client_id": rp["client_id"],
                "redirect_uri": redirect_uri,
                "scope": "openid email",
                "state": state,
                "code_challenge": pkce.s256(VERIFIER),
                "code_challenge_method": "S256",
                "response_mode": "form_post",
                **extra,
            }
            return f"{server.url}/authorize?{urlencode(params)}"

        console: list[str] = []
        languages: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            console.append(f"{message.type}: {message.text}")

        def on_response(response: Response) -> None:
            if response.url.startswith(f"{server.url}/") and response.request.method in (
                "GET",
                "POST",
            ):
                if "form-action" in response.headers.get("content-security-policy", ""):
                    languages.append(response.headers.get("content-language", ""))

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for javascript in (True, False):
                    context = browser.new_context(java_script_enabled=javascript)
                    page = context.new_page()
                    page.on("console", on_console)
                    page.on("response", on_response)
                    tag = "js" if javascript else "nojs"
                    page.goto(authorize(f"{tag}-en"))
                    page.get_by_label("Email").fill("ada@example.com")
                    page.get_by_label("Password").fill("correct horse battery")
                    page.get_by_role("button", name="Sign in").click()
                    if javascript:  # consented once: the second context is not asked again
                        page.wait_for_selector("text=Allow Example Notes?")
                        page.get_by_role("button", name="Allow").click()
                    if not javascript:
                        page.wait_for_selector("text=Returning to the application")
                        page.get_by_role("button", name="Continue").click()
                    page.wait_for_url(redirect_uri)
                    assert page.title() == "RP"
                    # Signed in and consented: the next request goes straight to the page.
                    page.goto(authorize(f"{tag}-ko", ui_locales="ko"))
                    if not javascript:
                        assert page.locator("html").get_attribute("lang") == "ko"
                        page.get_by_role("button", name="계속").click()
                    page.wait_for_url(redirect_uri)
                    context.close()
            finally:
                browser.close()

        posts = [(path, form) for method, path, form in received if method == "POST"]
        assert [form["state"] for _, form in posts] == [
            ["js-en"],
            ["js-ko"],
            ["nojs-en"],
            ["nojs-ko"],
        ]
        assert all(path == "/callback" for path, _ in posts)
        assert all(form["iss"] == [server.url] and "code" in form for _, form in posts)
        callbacks = [r for r in received if r[0] == "GET" and r[1].startswith("/callback")]
        assert not callbacks, "the code never travels in a URL"
        assert languages == ["en", "ko", "en", "ko"]
        violations = [m for m in console if "Content Security Policy" in m or "Refused" in m]
        assert not violations, violations
        token = httpx.post(
            f"{server.url}/token",
            data={
                "grant_type": "authorization_code",
                "code": posts[-1][1]["code"][0],
                "redirect_uri": redirect_uri,
                "code_verifier": VERIFIER,
            },
            auth=(rp["client_id"], rp["client_secret"]),
        )
        assert token.status_code == 200, token.text
