"""docs/integrating.md's Authlib example, run as written against a real `onepass
serve`: the code block is read from the page, so the page cannot drift from what
works."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json

pytestmark = pytest.mark.e2e

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrating.md"
FIELD = re.compile(r'<input type="hidden" name="(csrf_token|interaction)" value="([^"]*)">')


def example() -> str:
    text = PAGE.read_text()
    after = text.split("The whole flow with [Authlib]", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def sign_in(http: httpx.Client, url: str, email: str, password: str) -> str:
    """The user's part, as a browser without JavaScript: sign in, allow; the callback URL."""
    page = http.get(url)
    assert page.status_code == 200, page.text[:300]
    fields = {n: html.unescape(v) for n, v in FIELD.findall(page.text)}
    answer = http.post("/login", data={**fields, "email": email, "password": password})
    if answer.status_code == 200 and 'action="/consent"' in answer.text:
        fields = {n: html.unescape(v) for n, v in FIELD.findall(answer.text)}
        answer = http.post("/consent", data={**fields, "decision": "allow"})
    assert answer.status_code == 303, answer.text[:300]
    return answer.headers["location"]


def test_the_authlib_example_signs_a_user_in_as_written(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/onepass.db", ONEPASS_LOG_LEVEL="warning")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin="correct horse battery\n")  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log") as server:
        rp = cli_json(
            server.env, "clients", "create", "--name", "Notes",
            "--redirect-uri", "https://notes.example/callback",
        )  # fmt: skip
        code = example()
        for placeholder, value in (
            ('ISSUER = "https://id.example.com"', f"ISSUER = {server.url!r}"),
            (
                'CLIENT_ID, CLIENT_SECRET = "…", "…"',
                f"CLIENT_ID, CLIENT_SECRET = {rp['client_id']!r}, {rp['client_secret']!r}",
            ),
        ):
            assert placeholder in code
            code = code.replace(placeholder, value)
        namespace: dict[str, Any] = {}
        exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (the page's own code)

        session: dict[str, str] = {}
        url = namespace["start_sign_in"](session)
        assert set(session) == {"state", "code_verifier", "nonce"}
        with httpx.Client(base_url=server.url, timeout=10) as browser:
            callback = sign_in(browser, url, "ada@example.com", "correct horse battery")
        assert callback.startswith("https://notes.example/callback?")
        user = namespace["finish_sign_in"](session, callback)
        assert user["iss"] == server.url and user["sub"]
        assert session == {}

        # A forged answer from another issuer is refused before any token request.
        session = {}
        url = namespace["start_sign_in"](session)
        forged = callback.replace("iss=", "iss=https%3A%2F%2Fevil.example&was=")
        with pytest.raises(PermissionError):
            namespace["finish_sign_in"](session, forged)
