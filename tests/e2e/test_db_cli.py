"""`onepass db upgrade --check`: what a deploy script asks before migrating live."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from onepass.release import head_revision
from tests.e2e.server import base_env, cli

pytestmark = pytest.mark.e2e


def test_upgrade_check_says_what_is_pending_and_whether_it_is_safe_live(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    env = base_env(f"sqlite:///{db}")

    empty = cli(env, "db", "upgrade", "--check", check=False)
    assert empty.returncode == 0, empty.stderr
    assert "the database is empty" in empty.stdout

    cli(env, "db", "upgrade")
    current = json.loads(cli(env, "db", "upgrade", "--check", "--json").stdout)
    assert current == {
        "applied": head_revision(),
        "head": head_revision(),
        "pending": [],
        "verdict": "expand",
        "safe_live": True,
    }

    # The database of the previous release: the newest migration not yet applied.
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE process_heartbeats")
        conn.execute("DROP TABLE installation_secrets")
        conn.execute("UPDATE alembic_version SET version_num = '0019'")
    behind = cli(env, "db", "upgrade", "--check", "--json", check=False)
    assert behind.returncode == 0, behind.stderr
    report = json.loads(behind.stdout)
    assert report["applied"] == "0019" and report["safe_live"] is True
    assert next((p["revision"], p["verdict"]) for p in report["pending"]) == ("0020", "expand")
    human = cli(env, "db", "upgrade", "--check")
    assert "0020 0020_process_heartbeats.py: expand" in human.stdout
    assert "safe to run while the previous release serves" in human.stdout
    if head_revision() == "0020":  # while it is the newest: applying it again works
        cli(env, "db", "upgrade")
        assert json.loads(cli(env, "db", "upgrade", "--check", "--json").stdout)["pending"] == []


def test_upgrade_check_on_an_unreachable_database_says_so(tmp_path: Path) -> None:
    env = base_env("postgresql://nobody@127.0.0.1:1/none")
    result = cli(env, "db", "upgrade", "--check", check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("onepass: ")
    assert "Traceback" not in result.stderr
