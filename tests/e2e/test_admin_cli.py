"""Administrators from the command line, then the admin API of a real server: create,
enroll TOTP, a token, a step-up action, the audit log, revocation; no secret in logs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from onepass.accounts import totp
from tests.e2e.server import Server, base_env, cli, cli_json

pytestmark = pytest.mark.e2e


def test_admin_lifecycle_from_cli_to_api(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/admin.db")
    cli(env, "db", "upgrade")
    created = json.loads(
        cli(
            env,
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
            "--json",
            stdin="correct horse battery\n",
        ).stdout
    )
    assert set(created) == {"id", "sub", "email"}
    enrolled = cli_json(env, "admin", "enroll-totp", "--email", "ops@example.com")
    assert enrolled["otpauth_uri"].startswith("otpauth://totp/1pass:ops%40example.com?")
    secret = enrolled["secret"]
    token = cli_json(
        env, "admin", "tokens", "create", "--email", "ops@example.com",
        "--scope", "keys:write", "--scope", "audit:read", "--ttl", "30m",
    )  # fmt: skip
    assert token["token"].startswith("opa_") and token["scopes"] == ["audit:read", "keys:write"]

    listed = cli(env, "admin", "tokens", "list", "--json").stdout
    assert token["token"] not in listed and json.loads(listed)[0]["prefix"] == token["token"][:12]

    with Server(env, log_path=tmp_path / "serve.log") as server:
        auth = {"authorization": f"Bearer {token['token']}"}
        who = httpx.get(f"{server.url}/api/v1/admin/whoami", headers=auth)
        assert who.json()["email"] == "ops@example.com"
        granted = httpx.post(
            f"{server.url}/api/v1/admin/step-up",
            json={
                "totp_code": totp.code_at(secret, time.time()),
                "action": "signing_keys.rotate",
                "target": "jwks",
            },
            headers=auth,
        )
        assert granted.status_code == 200, granted.text
        nonce = granted.json()["action_request_nonce"]
        rotated = httpx.post(
            f"{server.url}/api/v1/admin/signing_keys/rotate",
            json={"action_request_nonce": nonce, "force": True},
            headers=auth,
        )
        assert rotated.status_code == 200, rotated.text
        activated = {r["activated_kid"] for r in rotated.json()}
        assert activated <= {
            k["kid"] for k in cli_json(env, "keys", "list") if k["state"] == "active"
        }

        cli(env, "admin", "tokens", "revoke", str(token["id"]))
        revoked = httpx.get(f"{server.url}/api/v1/admin/whoami", headers=auth)
        assert revoked.status_code == 401
        log = server.log()

    audit = cli_json(env, "admin", "audit")
    trail = [(e["actor"], e["via"], e["action"], e["outcome"]) for e in reversed(audit)]
    actors = {a for a, *_ in trail}
    assert any(a.startswith("cli:") for a in actors) and "admin:ops@example.com" in actors
    assert [t[2] for t in trail] == [
        "admin.create",
        "admin.enroll_totp",
        "admin.token_create",
        "step_up:signing_keys.rotate",
        "signing_keys.rotate",
        "admin.token_revoke",
    ]
    for secret_text in (token["token"], secret, nonce):
        assert secret_text not in log
        assert secret_text not in json.dumps(audit)


def test_cli_refusals_are_one_line_errors(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/admin.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password", "correct horse battery")
    cases = [
        (("admin", "create", "--email", "ada@example.com", "--password", "correct horse battery"),
         "already exists"),
        (("admin", "enroll-totp", "--email", "ada@example.com"), "no administrator"),
        (("admin", "tokens", "create", "--email", "ada@example.com", "--scope", "audit:read"),
         "no administrator"),
        (("admin", "create", "--email", "x@example.com"), "--password"),
        (("admin", "tokens", "revoke", "999"), "no admin token"),
    ]  # fmt: skip
    cli(env, "admin", "create", "--email", "ops@example.com", "--password", "correct horse battery")
    cases += [
        (("admin", "tokens", "create", "--email", "ops@example.com", "--scope", "root"),
         "unknown scope"),
        (("admin", "tokens", "create", "--email", "ops@example.com", "--scope", "audit:read",
          "--ttl", "400d"), "between"),
        (("admin", "tokens", "create", "--email", "ops@example.com", "--scope", "audit:read",
          "--ttl", "soon"), "--ttl"),
    ]  # fmt: skip
    for args, message in cases:
        result = cli(env, *args, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
