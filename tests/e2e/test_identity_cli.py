"""The merge playbook from the command line: merge, check, backfill, flip, invalidate."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from onepass.identity.canonical import cache_key
from tests.conftest import require_redis
from tests.e2e.server import ONEPASS, base_env, cli, cli_json, free_port

pytestmark = pytest.mark.e2e


def make_users(env: dict[str, str], n: int) -> list[int]:
    return [
        json.loads(
            cli(
                env,
                "users",
                "create",
                "--email",
                f"user{i}@example.com",
                "--password-stdin",
                "--json",
                stdin="correct horse battery\n",
            ).stdout
        )["id"]
        for i in range(n)
    ]


def test_merge_check_backfill_cycle(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/m.db", ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS="1")
    cli(env, "db", "upgrade")
    a, b, c = make_users(env, 3)
    merged = cli_json(env, "users", "merge", str(a), str(b), "--reason", "duplicate signup")
    assert {"link_id", "source_id", "target_id"} <= set(merged)
    assert (merged["source_id"], merged["target_id"]) == (a, b)
    assert cli_json(env, "users", "show", str(a))["canonical_id"] == b
    refused = cli(env, "users", "merge", str(c), str(a), check=False)
    assert (
        refused.returncode == 1
        and f"merge into {b} instead" in refused.stderr
        and "Traceback" not in refused.stderr
    )

    rp = cli_json(
        env,
        "clients",
        "create",
        "--name",
        "RP",
        "--grant-type",
        "client_credentials",
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--event",
        "identity.link.created",
    )
    check = cli(env, "identity", "enforce-check", "--json", check=False)
    assert check.returncode == 1
    rows = json.loads(check.stdout)
    assert (
        rows[0]["oauth_application_id"] == rp["id"]
        and rows[0]["missing"] == 1
        and rows[0]["never_enqueued"] == 1
    )

    assert cli_json(env, "webhooks", "backfill-links", rp["client_id"]) == {
        "enqueued": 1,
        "skipped": 0,
    }
    assert cli_json(env, "webhooks", "backfill-links", "--all") == {"enqueued": 0, "skipped": 1}
    rows = json.loads(cli(env, "identity", "enforce-check", "--json", check=False).stdout)
    assert rows[0]["pending"] == 1 and rows[0]["missing"] == 1
    bad = cli(env, "webhooks", "backfill-links", check=False)
    assert bad.returncode == 2
    # Each backfill is in the audit log, by whom, for which RP and with what it did.
    audited = [
        e for e in cli_json(env, "admin", "audit") if e["action"] == "webhooks.backfill_links"
    ]
    assert [(e["target"], e["via"], e["outcome"]) for e in reversed(audited)] == [
        (rp["client_id"], "cli", "ok"),
        ("*", "cli", "ok"),
    ]
    assert [(e["detail"]["enqueued"], e["detail"]["skipped"]) for e in reversed(audited)] == [
        (1, 0),
        (0, 1),
    ]


def test_merge_refuses_an_administrator_as_source_or_target(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/m.db")
    cli(env, "db", "upgrade")
    (user,) = make_users(env, 1)
    admin = cli_json(
        env, "admin", "create", "--email", "ops@example.com", "--password", "correct horse battery"
    )
    for source, target in ((admin["id"], user), (user, admin["id"])):
        refused = cli(env, "users", "merge", str(source), str(target), check=False)
        assert refused.returncode == 1, refused.stdout
        assert f"user {admin['id']}" in refused.stderr and "is an administrator" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert cli_json(env, "users", "show", str(user))["canonical_id"] == user


def test_production_start_refuses_enforcement_with_missing_links_unless_forced(
    tmp_path: Path,
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/p.db")
    cli(env, "db", "upgrade")
    a, b = make_users(env, 2)
    cli(
        env,
        "clients",
        "create",
        "--name",
        "RP",
        "--grant-type",
        "client_credentials",
        "--webhook-url",
        "https://rp.example/hook",
    )
    cli(env, "users", "merge", str(a), str(b))
    prod = {
        **env,
        "ONEPASS_ENV": "production",
        "ONEPASS_ISSUER": "https://id.example.com",
        "ENFORCE_CANONICAL_RESOLUTION": "1",
    }
    port = free_port()
    refused = subprocess.run(
        [*ONEPASS, "serve", "--port", str(port)],
        env=prod,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert (
        "backfill-links" in refused.stderr
        and "ONEPASS_FORCE_CANONICAL_ENFORCEMENT" in refused.stderr
    )
    forced = subprocess.Popen(
        [*ONEPASS, "serve", "--port", str(port)],
        env={**prod, "ONEPASS_FORCE_CANONICAL_ENFORCEMENT": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/up", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert forced.poll() is None and time.monotonic() < deadline, (
                "forced start did not come up"
            )
            time.sleep(0.1)
    finally:
        forced.terminate()
        forced.wait(timeout=15)


def test_cache_invalidate_canonical_deletes_redis_keys(tmp_path: Path) -> None:
    redis_url = require_redis()
    env = base_env(f"sqlite:///{tmp_path}/c.db", ONEPASS_REDIS_URL=redis_url)
    cli(env, "db", "upgrade")
    a, b = make_users(env, 2)
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(cache_key(a), str(a))
        client.set(cache_key(b), str(b))
        client.set("unrelated:key", "x")
        assert cli_json(env, "cache", "invalidate-canonical", "--user", str(a))["deleted"] == 1
        assert client.get(cache_key(a)) is None and client.get(cache_key(b)) == str(b).encode()
        assert cli_json(env, "cache", "invalidate-canonical", "--all")["deleted"] >= 1
        assert client.get(cache_key(b)) is None and client.get("unrelated:key") == b"x"
        usage = cli(env, "cache", "invalidate-canonical", check=False)
        assert usage.returncode == 2 and "exactly one" in usage.stderr
    finally:
        client.delete("unrelated:key")
        client.close()


def test_merge_while_redis_is_down_says_what_to_run_after(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    env = base_env(f"sqlite:///{tmp_path}/m.db", ONEPASS_REDIS_URL=down)
    cli(env, "db", "upgrade")
    a, b = make_users(env, 2)
    merged = cli(env, "users", "merge", str(a), str(b), "--json")
    assert json.loads(merged.stdout)["target_id"] == b
    assert "onepass cache invalidate-canonical --all" in merged.stderr
    assert "Traceback" not in merged.stderr
