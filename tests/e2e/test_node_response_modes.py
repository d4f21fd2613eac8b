"""A real Node RP on openid-client 6 asks for a response mode and checks the response
itself: ``form_post`` (the callback is a POST ``Request`` whose body is what 1pass's
page posts), and JARM with ``useJwtResponseMode`` (``jwt``: the signed ``response`` in
the query; ``form_post.jwt``: posted), where openid-client verifies the JWT's
signature against the JWKS, ``iss``, ``aud``, ``exp`` and ``state`` before it
exchanges the code. The browser is httpx signing in through the pages
(``tests.flow``). Installs the locked packages with ``npm ci``."""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.flow import submit_consent, submit_login

pytestmark = pytest.mark.e2e

REDIRECT_URI = "http://127.0.0.1:9/callback"
INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
ACTION = re.compile(r'<form method="post" action="([^"]+)" id="authorization-response">')


def _node(node_rp: Path, *args: str) -> dict[str, object]:
    run = subprocess.run(
        ["node", "respmode.mjs", *args], cwd=node_rp, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout)
    assert "error" not in result, result
    return result


async def _browse(base_url: str, url: str) -> tuple[str, str]:
    """Sign in as a browser without JavaScript; what reaches the RP: the URL and, for
    a form post, the body the browser posts there (the page's form)."""
    async with httpx.AsyncClient(base_url=base_url) as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text[:300]
        response = await submit_login(browser, page, "ada@example.com", "correct horse battery")
        if 'action="/consent"' in response.text:
            response = await submit_consent(browser, response)
    if response.status_code == 303:
        return response.headers["location"], ""
    assert response.status_code == 200, response.text[:300]
    action = ACTION.search(response.text)
    assert action is not None, response.text[:500]
    fields = {name: html.unescape(value) for name, value in INPUT.findall(response.text)}
    return html.unescape(action.group(1)), urlencode(fields)


@pytest.mark.parametrize("mode", ["form_post", "jwt", "form_post.jwt"])
def test_openid_client_6_signs_a_user_in_with_a_response_mode(
    mode: str, node_rp: Path, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/m.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin="correct horse battery")  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log") as server:
        created = cli_json(server.env, "clients", "create", "--name", "node web app",
                           "--redirect-uri", REDIRECT_URI,
                           "--authorization-signed-response-alg", "ES256")  # fmt: skip
        assert created["authorization_signed_response_alg"] == "ES256"
        client_id, secret = str(created["client_id"]), str(created["client_secret"])
        started = _node(node_rp, "start", server.url, client_id, secret, REDIRECT_URI, mode)
        url = urlsplit(str(started["url"]))
        assert f"response_mode={mode}" in url.query
        callback, body = asyncio.run(_browse(server.url, f"{url.path}?{url.query}"))
        assert callback.startswith(REDIRECT_URI)
        if mode.endswith("jwt"):
            assert ("response=" in body) if body else ("response=" in callback)
            assert "code=" not in callback + body  # only inside the signed response
        else:
            assert "code=" in body and "code=" not in callback
        finished = _node(
            node_rp, "finish", server.url, client_id, secret, mode, callback, body,
            str(started["verifier"]), str(started["state"]), str(started["nonce"]),
        )  # fmt: skip
        claims = finished["claims"]
        assert isinstance(claims, dict)
        assert claims["iss"] == server.url and claims["aud"] == client_id
