"""A person logs in through the real pages in headless Chromium (Debian's package)."""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.server import Server, base_env, cli, cli_json, free_port

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


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[str]]]:
    """A stand-in RP on 127.0.0.1 that records the callback's query string."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.path)
            body = b"<!doctype html><title>RP</title><h1>Signed in at the RP</h1>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/callback", received
    server.shutdown()


def test_person_logs_in_and_consents_in_chromium(
    tmp_path: Path, callback_server: tuple[str, list[str]]
) -> None:
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    redirect_uri, received = callback_server
    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    cli(env, "db", "upgrade")
    cli(
        env,
        "users",
        "create",
        "--email",
        "ada@example.com",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
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
        verifier = secrets.token_urlsafe(48)
        oauth = OAuth2Client(
            rp["client_id"],
            rp["client_secret"],
            redirect_uri=redirect_uri,
            scope="openid email",
            code_challenge_method="S256",
        )
        url, state = oauth.create_authorization_url(
            f"{server.url}/authorize", code_verifier=verifier
        )

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(url)
                assert page.title().startswith("Sign in")
                page.get_by_label("Email").fill("ada@example.com")
                page.get_by_label("Password").fill("correct horse battery")
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_selector("text=Allow Example Notes?")
                shot = tmp_path / "consent.png"
                page.screenshot(path=str(shot), full_page=True)
                page.get_by_role("button", name="Allow").click()
                page.wait_for_url(f"{redirect_uri}?*")
                final_url = page.url
            finally:
                browser.close()

        png = shot.read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 2000, "a real, non-empty screenshot"
        artifacts = os.environ.get("ONEPASS_TEST_ARTIFACTS")
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(artifacts) / "consent.png")
        query = parse_qs(urlsplit(final_url).query)
        assert query["state"] == [state] and query["iss"] == [server.url]
        assert received and received[0].startswith("/callback?")
        token = oauth.fetch_token(
            f"{server.url}/token", authorization_response=final_url, code_verifier=verifier
        )
        info = httpx.get(
            f"{server.url}/userinfo", headers={"authorization": f"Bearer {token['access_token']}"}
        ).json()
        assert info["email"] == "ada@example.com"
