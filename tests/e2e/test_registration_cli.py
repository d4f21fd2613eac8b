"""``onepass clients initial-token create|list|revoke``, run as an operator runs them:
the token printed once (never listed, stored only as a keyed hash), its uses counted by
a registration at a real server, refused once revoked, and each change in the audit
log; bad input on stderr."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = base_env(f"sqlite:///{tmp_path}/t.db")
    cli(env, "db", "upgrade")
    return env


def test_initial_tokens_are_created_listed_used_and_revoked(
    env: dict[str, str], tmp_path: Path
) -> None:
    created = cli_json(env, "clients", "initial-token", "create", "--ttl", "1h", "--max-uses", "3")
    token = created["token"]
    assert token.startswith("oiat_")
    assert (created["max_uses"], created["uses"], created["state"]) == (3, 0, "active")
    [listed] = cli_json(env, "clients", "initial-token", "list")
    assert listed["id"] == created["id"] and token not in str(listed)
    assert listed["prefix"] == token[:12]
    with sqlite3.connect(tmp_path / "t.db") as db:
        [(stored,)] = db.execute("SELECT token_hash FROM initial_access_tokens").fetchall()
    assert stored.startswith("hmac-sha256$") and token not in stored

    with Server(env, log_path=tmp_path / "server.log") as server:
        url = f"{server.url}/register"
        body = {"client_name": "svc", "grant_types": ["client_credentials"]}
        headers = {"authorization": f"Bearer {token}"}
        assert httpx.post(url, json=body, headers=headers).status_code == 201
        [listed] = cli_json(env, "clients", "initial-token", "list")
        assert listed["uses"] == 1 and listed["last_used_at"] is not None

        revoked = cli_json(env, "clients", "initial-token", "revoke", str(created["id"]))
        assert revoked["state"] == "revoked"
        refused = httpx.post(url, json=body, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"

    text = cli(env, "clients", "initial-token", "list").stdout
    assert "revoked" in text and token not in text
    human = cli(env, "clients", "initial-token", "create").stdout
    assert "Shown this once." in human and "oiat_" in human
    with sqlite3.connect(tmp_path / "t.db") as db:
        actions = [row[0] for row in db.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == [
        "clients.initial_token_create",
        "clients.register",
        "clients.initial_token_revoke",
        "clients.initial_token_create",
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("create", "--ttl", "soon"), "--ttl"),
        (("create", "--ttl", "400d"), "365 days"),
        (("create", "--max-uses", "0"), "max-uses"),
        (("revoke", "999"), "no initial access token with id 999"),
        (("revoke", "x"), "ID"),
    ],
)
def test_bad_input_is_refused_on_stderr(
    env: dict[str, str], args: tuple[str, ...], says: str
) -> None:
    result = cli(env, "clients", "initial-token", *args, check=False)
    assert result.returncode != 0
    assert says in result.stderr
    assert result.stdout == ""
