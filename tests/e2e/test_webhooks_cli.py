"""The operator's webhook commands, as the playbook runs them, and their errors."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.server import base_env, cli, cli_json
from tests.webhook_helpers import ThreadedReceiver, status

pytestmark = pytest.mark.e2e

ENV = {
    "ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "ONEPASS_WEBHOOK_TIMEOUT": "2",
    "ONEPASS_WEBHOOK_RETRY_SCHEDULE": "50ms",
    "ONEPASS_LOG_LEVEL": "warning",
    "COLUMNS": "250",  # usage errors on one line
}
ENTRY_COLUMNS = {
    "id",
    "oauth_application_id",
    "event_type",
    "payload",
    "idempotency_key",
    "enqueued_at",
    "attempts",
    "next_retry_at",
    "last_error",
    "last_status_code",
    "delivered_at",
    "dlq_at",
}


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    with ThreadedReceiver() as server:
        yield server


def test_the_playbook_webhook_procedures_from_the_command_line(
    receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV)
    cli(env, "db", "upgrade")
    created = cli_json(
        env, "clients", "create", "--name", "rp", "--grant-type", "client_credentials",
        "--webhook-url", receiver.url(), "--event", "identity.link.created",
    )  # fmt: skip
    app = created["client_id"]
    assert created["webhook_url"] == receiver.url()
    assert created["webhook_events"] == ["identity.link.created"]
    first_key = created["webhook_signing_key"]
    assert first_key["kid"].startswith("whk_") and first_key["secret"].startswith("whsec_")

    pinged = cli_json(env, "webhooks", "ping", app, "--count", "3")
    assert pinged["enqueued"] == 3 and len(pinged["entry_ids"]) == 3
    pending = cli_json(env, "webhooks", "list", "--status", "pending", "--app", app)
    assert [e["id"] for e in pending] == pinged["entry_ids"]
    assert ENTRY_COLUMNS <= set(pending[0]) and pending[0]["event_type"] == "test.ping"

    ran = cli_json(env, "webhooks", "dispatch", "--once")
    assert (ran["delivered"], ran["dead"]) == (3, 0)
    for delivery in receiver.deliveries:
        delivery.verify(first_key["secret"])

    rotated = cli_json(env, "webhooks", "keys", "rotate", app, "--grace", "72h")
    assert set(rotated) >= {"kid", "secret"} and rotated["retired_kids"] == [first_key["kid"]]
    keys = cli_json(env, "webhooks", "keys", "list", app)
    assert [(k["kid"], k["state"], k["signing"]) for k in keys] == [
        (rotated["kid"], "active", True),
        (first_key["kid"], "retired", True),
    ]
    assert all("secret" not in json.dumps(k) for k in keys)

    # Emergency: the first key leaked.
    emergency = cli_json(env, "webhooks", "compromise", app, first_key["kid"])
    assert emergency["revoked_kid"] == first_key["kid"]
    assert emergency["secret"].startswith("whsec_") and emergency["kid"] not in (
        first_key["kid"],
        rotated["kid"],
    )

    # The RP's endpoint breaks: deliveries dead-letter (404 is not retried).
    receiver.default = status(404)
    cli_json(env, "webhooks", "ping", app)
    ran = cli_json(env, "webhooks", "dispatch", "--once")
    assert ran["dead"] == 2  # the ping and webhook_key.compromised
    dead = cli_json(env, "webhooks", "list", "--status", "dead")
    assert {e["event_type"] for e in dead} == {"test.ping", "webhook_key.compromised"}
    assert all(e["last_status_code"] == 404 and "not retried" in e["last_error"] for e in dead)
    counts = cli_json(env, "webhooks", "dead-counts")
    assert counts == [
        {
            "oauth_application_id": created["id"],
            "client_id": app,
            "client_name": "rp",
            "dead_count": 2,
        }
    ]

    # Fixed: replay in bulk, by event type, after a dry run; then one by one.
    receiver.default = status(200)
    dry = cli_json(env, "webhooks", "replay-dlq", app, "--dry-run")
    assert (dry["matched"], dry["replayed"], dry["dry_run"]) == (2, 0, True)
    assert sorted(dry["entry_ids"]) == sorted(e["id"] for e in dead)
    replayed = cli_json(env, "webhooks", "replay-dlq", app, "--event-type", "test.ping")
    assert replayed["replayed"] == 1
    compromised = next(e for e in dead if e["event_type"] == "webhook_key.compromised")
    retried = cli_json(env, "webhooks", "retry", str(compromised["id"]))
    assert (retried["dlq_at"], retried["next_retry_at"], retried["attempts"]) == (None, None, 0)
    assert retried["last_error"] is None
    ran = cli_json(env, "webhooks", "dispatch", "--once")
    assert ran["delivered"] == 2
    for delivery in receiver.deliveries[-2:]:
        assert delivery.kids == [emergency["kid"], rotated["kid"]]
        delivery.verify(emergency["secret"])
    assert cli_json(env, "webhooks", "list", "--status", "dead") == []


def test_webhook_tables_at_80_columns_name_the_rp_and_keep_kids_whole(
    receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/tables.db", **{**ENV, "COLUMNS": "80"})
    cli(env, "db", "upgrade")
    assert cli(env, "webhooks", "list").stdout.strip() == "webhook outbox: none"
    assert cli(env, "webhooks", "dead-counts").stdout.strip() == "dead letters: none"
    created = cli_json(
        env, "clients", "create", "--name", "Billing portal", "--grant-type",
        "client_credentials", "--webhook-url", receiver.url(),
    )  # fmt: skip
    app = created["client_id"]
    ping_help = cli(env, "webhooks", "ping", "--help").stdout
    assert "--count" in ping_help
    pinged = cli_json(env, "webhooks", "ping", app, "--count", "2")
    listed = cli_json(env, "webhooks", "list")
    assert {(e["client_id"], e["client_name"]) for e in listed} == {(app, "Billing portal")}
    table = cli(env, "webhooks", "list").stdout
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert app in table  # on one line, whole
    shown = cli_json(env, "webhooks", "show", str(pinged["entry_ids"][0]))
    assert shown["client_id"] == app
    assert app in cli(env, "webhooks", "show", str(pinged["entry_ids"][0])).stdout

    receiver.default = status(404)
    cli_json(env, "webhooks", "dispatch", "--once")
    dead = cli(env, "webhooks", "dead-counts").stdout
    assert app in dead and "Billing portal" in dead and str(created["id"]) not in dead.split()
    dry = cli(env, "webhooks", "replay-dlq", app, "--dry-run").stdout
    assert f"2 dead entries of {app} would be sent again (dry run)" in dry
    assert "entry ids: " + " ".join(str(i) for i in pinged["entry_ids"]) in dry

    rotated = cli_json(env, "webhooks", "keys", "rotate", app)
    keys = cli(env, "webhooks", "keys", "list", app).stdout
    assert all(len(line) <= 80 for line in keys.splitlines()), keys
    assert rotated["kid"] in keys and created["webhook_signing_key"]["kid"] in keys


def test_bad_webhook_input_gets_a_clear_error_and_never_a_traceback(
    receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/bad.db", **ENV)
    cli(env, "db", "upgrade")
    created = cli_json(
        env, "clients", "create", "--name", "rp", "--grant-type", "client_credentials",
        "--webhook-url", receiver.url(),
    )  # fmt: skip
    app = created["client_id"]
    strict = {**env, "ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS": "0"}
    create = "clients create --name x --grant-type client_credentials --webhook-url".split()
    cases = [
        (env, ["webhooks", "list", "--status", "bogus"], 2, "'bogus' is not one of"),
        (env, ["webhooks", "list", "--app", "nope"], 1, "no application"),
        (env, ["webhooks", "retry", "999"], 1, "no webhook outbox entry with id 999"),
        (env, ["webhooks", "retry", "abc"], 2, "Invalid value for 'ENTRY_ID'"),
        (env, ["webhooks", "ping", "nope"], 1, "no application with client_id or id 'nope'"),
        (env, ["webhooks", "ping", app, "--count", "0"], 2, "--count"),
        (env, ["webhooks", "replay-dlq", app, "--since", "yesterday"], 1, "not an ISO 8601"),
        (env, ["webhooks", "replay-dlq", app, "--event-type", "x.y"], 1, "unknown webhook event"),
        (env, ["webhooks", "keys", "rotate", app, "--grace", "forever"], 1, "--grace"),
        (env, ["webhooks", "keys", "rotate", app, "--scheme", "v2"], 2, "'v2' is not one of"),
        (env, ["webhooks", "compromise", app, "whk_nope"], 1, "has no webhook signing key"),
        (env, [*create, receiver.url(), "--event", "user.teleported"], 1, "'user.teleported'"),
        (strict, [*create, "http://10.0.0.7/hook"], 1, "10.0.0.7 is a private address"),
        (
            {**env, "ONEPASS_WEBHOOK_RETRY_SCHEDULE": "5s,soon"},
            ["webhooks", "list"],
            2,
            "ONEPASS_WEBHOOK_RETRY_SCHEDULE",
        ),
        (
            {**env, "ONEPASS_WEBHOOK_LEASE_SECONDS": "5", "ONEPASS_WEBHOOK_TIMEOUT": "10"},
            ["webhooks", "dispatch", "--once"],
            2,
            "ONEPASS_WEBHOOK_LEASE_SECONDS",
        ),
    ]

    def run(case: tuple) -> tuple:
        case_env, args, _, _ = case
        return case, cli(case_env, *args, check=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, cases))
    for (_, args, code, message), result in results:
        shown = f"onepass {' '.join(args)} -> {result.returncode}: {result.stderr}"
        assert result.returncode == code, shown
        assert message in result.stderr, shown
        assert "Traceback" not in result.stderr + result.stdout, shown
        assert created["webhook_signing_key"]["secret"] not in result.stderr
    # The refused registrations created nothing.
    assert [c["client_id"] for c in cli_json(env, "clients", "list")] == [app]


def test_unicode_loopback_webhook_urls_are_refused_at_registration_and_at_delivery(
    receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    # The attack review's URLs: 127.0.0.1 (where the receiver listens) in fullwidth
    # digits, circled digits, ideographic full stops, and as an SIIT address.
    port = receiver.port
    fullwidth = "127.0.0.1".translate(str.maketrans("0127.", "\uff10\uff11\uff12\uff17\uff0e"))
    forms = [
        f"http://{fullwidth}:{port}/x",
        f"http://\u2460\u2461\u2466.0.0.1:{port}/x",
        f"http://127\u30020\u30020\u30021:{port}/x",
        f"http://[::ffff:0:127.0.0.1]:{port}/x",
    ]
    database = tmp_path / "ssrf.db"
    env = base_env(f"sqlite:///{database}", **{**ENV, "ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS": "0"})
    cli(env, "db", "upgrade")
    create = "clients create --name rp --grant-type client_credentials --webhook-url".split()

    with ThreadPoolExecutor(max_workers=4) as pool:
        refusals = list(pool.map(lambda url: cli(env, *create, url, check=False), forms))
    for url, result in zip(forms, refusals, strict=True):
        shown = f"{url!r} -> {result.returncode}: {result.stderr}"
        assert result.returncode == 1, shown
        assert "deliveries there are refused" in result.stderr, shown
        assert "127.0.0.1" in result.stderr and "Traceback" not in result.stderr, shown
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM oauth_applications").fetchone() == (0,)

    # Stored by an older release, or written by hand: refused when delivered.
    stored = forms[:3:2]  # fullwidth digits, ideographic full stops
    with ThreadPoolExecutor(max_workers=2) as pool:
        apps = list(pool.map(lambda _: cli_json(env, *create, "https://rp.example/hook"), stored))
    with sqlite3.connect(database) as db:
        for app, url in zip(apps, stored, strict=True):
            db.execute(
                "UPDATE oauth_applications SET webhook_url = ? WHERE client_id = ?",
                (url, app["client_id"]),
            )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda app: cli(env, "webhooks", "ping", app["client_id"]), apps))
    ran = cli_json(env, "webhooks", "dispatch", "--once")
    assert (ran["delivered"], ran["dead"]) == (0, len(stored))
    assert receiver.deliveries == []
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT e.dlq_at IS NOT NULL, a.error_class, a.error FROM webhook_outbox_entries e"
            " JOIN webhook_delivery_attempts a ON a.outbox_entry_id = e.id"
        ).fetchall()
    assert len(rows) == len(stored)
    for dead, error_class, error in rows:
        assert dead and error_class == "unsafe_target", error
        assert "127.0.0.1) is a loopback address" in error
