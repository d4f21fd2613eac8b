"""Users and administrators from the command line: update, disable, enable, set a
password, sessions and consents, delete; disable, enable and reset an administrator;
every change in the audit log; bad input a clear error and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.server import base_env, cli, cli_json

pytestmark = pytest.mark.e2e


def test_user_day2_commands_change_show_and_audit(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/users.db")
    cli(env, "db", "upgrade")
    created = json.loads(
        cli(
            env, "users", "create", "--email", "ada@example.com", "--password-stdin", "--json",
            stdin="correct horse battery\n",
        ).stdout
    )  # fmt: skip
    assert set(created) == {"id", "sub", "email"}
    user = str(created["id"])

    updated = cli_json(env, "users", "update", user, "--name", "Ada", "--email-verified")
    assert updated["changed"] == ["email_verified", "name"] and updated["name"] == "Ada"
    nothing = cli(env, "users", "update", user, check=False)
    assert nothing.returncode == 2 and "give at least one of" in nothing.stderr

    disabled = cli_json(env, "users", "disable", "ada@example.com")
    assert disabled["disabled"] is True and disabled["changed"] is True
    assert cli_json(env, "users", "show", user)["disabled"] is True
    assert cli_json(env, "users", "enable", created["sub"])["changed"] is True

    changed = cli(env, "users", "set-password", user, "--password-stdin", stdin="a new password\n")
    assert "0 session(s) ended" in changed.stdout
    assert cli_json(env, "users", "sessions", user) == []
    assert cli_json(env, "users", "consents", user) == []
    unknown = cli(env, "users", "revoke-consent", user, "no-such-client", check=False)
    assert unknown.returncode == 1 and "no application" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    deleted = cli_json(env, "users", "delete", user)
    assert deleted["email"] == f"deleted-{user}@deleted.invalid"
    shown = cli_json(env, "users", "show", user)
    assert shown["deleted"] is True and shown["disabled"] is True and shown["name"] is None
    assert shown["sub"] == created["sub"] and shown["canonical_id"] == created["id"]

    cli(env, "admin", "create", "--email", "ops@example.com", "--password", "correct horse battery")
    cli(env, "admin", "enroll-totp", "--email", "ops@example.com")
    off = cli_json(env, "admin", "disable", "--email", "ops@example.com")
    assert off["disabled"] is True and off["changed"] is True
    assert cli_json(env, "admin", "enable", "--email", "OPS@example.com")["disabled"] is False
    reset = cli_json(env, "admin", "reset-totp", "--email", "ops@example.com")
    assert reset["totp_enrolled"] is False

    audit = cli_json(env, "admin", "audit")
    trail = [(e["action"], e["target"]) for e in reversed(audit)]
    assert trail == [
        ("users.create", user),
        ("users.update", user),
        ("users.disable", user),
        ("users.enable", user),
        ("users.set_password", user),
        ("users.delete", user),
        ("admin.create", "ops@example.com"),
        ("admin.enroll_totp", "ops@example.com"),
        ("admins.disable", "ops@example.com"),
        ("admins.enable", "ops@example.com"),
        ("admins.reset_totp", "ops@example.com"),
    ]
