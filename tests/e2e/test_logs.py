"""Every log line of a server and of the CLI is a JSON object on stderr: structlog's,
uvicorn's and Alembic's alike, so one collector reads them all."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json

pytestmark = pytest.mark.e2e


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}\nin:\n{text}") from None
    return parsed


def test_db_upgrade_logs_alembic_migrations_as_json_lines(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/logs.db", ONEPASS_LOG_LEVEL="info")
    result = cli(env, "db", "upgrade")
    assert result.stdout.strip() == "database is up to date"
    events = json_lines(result.stderr)
    migrations = [e for e in events if e.get("logger", "").startswith("alembic")]
    assert migrations, result.stderr
    assert all({"event", "level", "timestamp"} <= set(e) for e in events)
    assert any("Running upgrade" in e["event"] for e in migrations)


def test_serve_logs_uvicorn_and_access_lines_as_json(tmp_path: Path) -> None:
    env = base_env(
        f"sqlite:///{tmp_path}/serve.db",
        ONEPASS_LOG_LEVEL="info",
        ONEPASS_ACCESS_LOG="1",
        COLUMNS="80",
    )
    with Server(env, workers=2, log_path=tmp_path / "server.log") as server:
        assert httpx.get(f"{server.url}/nowhere", timeout=5).status_code == 404
        # While it runs: `keys list` at 80 columns shows every kid whole.
        table = cli(server.env, "keys", "list").stdout
        assert all(len(line) <= 80 for line in table.splitlines()), table
        for key in cli_json(server.env, "keys", "list"):
            assert key["kid"] in table, table
    events = json_lines(server.log())
    loggers = {e.get("logger") for e in events}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, loggers
    assert any("Started server process" in e["event"] for e in events)
    assert any("/nowhere" in e["event"] and e["logger"] == "uvicorn.access" for e in events)
