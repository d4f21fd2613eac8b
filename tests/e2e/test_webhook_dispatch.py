"""Real dispatcher processes: killed with SIGKILL mid-delivery, racing on PostgreSQL,
embedded in `onepass serve`, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.e2e.server import ONEPASS, Server, base_env, cli, cli_json
from tests.webhook_helpers import Delivery, ThreadedReceiver, hang, status

pytestmark = pytest.mark.e2e

FAST = {
    "ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "ONEPASS_WEBHOOK_TIMEOUT": "2",
    "ONEPASS_WEBHOOK_LEASE_SECONDS": "3.5",
    "ONEPASS_WEBHOOK_POLL_INTERVAL": "0.1",
    "ONEPASS_WEBHOOK_RETRY_SCHEDULE": "50ms",
    "ONEPASS_LOG_LEVEL": "warning",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def dispatch_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/onepass.db"
        return
    url = asyncio.run(create_pg_database(require_postgres()))
    yield url
    asyncio.run(drop_pg_database(url))


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    with ThreadedReceiver() as server:
        yield server


class Dispatch:
    """``onepass webhooks dispatch --json`` as a process of its own."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [*ONEPASS, "webhooks", "dispatch", "--json", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )

    def __enter__(self) -> Dispatch:
        return self

    def __exit__(self, *exc: object) -> None:
        # A test that failed before it stopped the process must not leave it running.
        if self.process.poll() is None:
            self.kill()

    def terminate(self) -> dict:
        """SIGTERM: finish what is in flight, exit 0, print the counts."""
        os.killpg(self.process.pid, signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        self._log.close()
        assert self.process.returncode == 0, self.log_path.read_text()
        return json.loads(out)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()


def setup_app(env: dict[str, str], url: str, pings: int) -> dict:
    cli(env, "db", "upgrade")
    created = cli_json(
        env, "clients", "create", "--name", "rp", "--grant-type", "client_credentials",
        "--webhook-url", url,
    )  # fmt: skip
    cli_json(env, "webhooks", "ping", created["client_id"], "--count", str(pings))
    return created


def test_a_killed_dispatchers_entries_are_delivered_by_another_after_the_lease(
    dispatch_db: str, receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    # The attempts must still be in flight when the dispatcher is killed, after the
    # SQLite check below has started a CLI process (seconds on a loaded machine).
    slow = {"ONEPASS_WEBHOOK_TIMEOUT": "8", "ONEPASS_WEBHOOK_LEASE_SECONDS": "9"}
    env = base_env(dispatch_db, **{**FAST, **slow})
    created = setup_app(env, receiver.url(), pings=5)
    secret = created["webhook_signing_key"]["secret"]
    receiver.default = hang()  # the RP takes its time: every delivery is in flight

    first = Dispatch(env, tmp_path / "first.log")
    receiver.wait_until(lambda: len(receiver.deliveries) == 5)
    if dispatch_db.startswith("sqlite"):
        # On SQLite one dispatcher runs at a time, and a second one says so.
        second_try = cli(env, "webhooks", "dispatch", "--once", check=False)
        assert second_try.returncode == 1
        assert "another webhook dispatcher is running" in second_try.stderr
        assert "Traceback" not in second_try.stderr
    first.kill()  # SIGKILL, mid-delivery

    held = cli_json(env, "webhooks", "list", "--status", "pending")
    assert len(held) == 5
    assert len({e["leased_by"] for e in held}) == 1 and all(e["attempts"] == 0 for e in held)
    lease_ends = {e["idempotency_key"]: datetime.fromisoformat(e["lease_expires_at"]) for e in held}

    receiver.default = status(200)
    second = Dispatch(env, tmp_path / "second.log")
    receiver.wait_until(lambda: sum(d.answered_status == 200 for d in receiver.deliveries) == 5)
    stats = second.terminate()
    assert stats["delivered"] == 5 and stats["dead"] == 0

    redelivered = [d for d in receiver.deliveries if d.answered_status == 200]
    assert sorted(d.webhook_id for d in redelivered) == sorted(lease_ends)
    for delivery in redelivered:
        delivery.verify(secret)
        # Not before the killed dispatcher's lease ran out.
        assert delivery.received_at >= lease_ends[delivery.webhook_id].timestamp() - 0.05
    done = cli_json(env, "webhooks", "list", "--status", "delivered")
    assert len(done) == 5 and all(e["leased_by"] is None for e in done)
    shown = cli_json(env, "webhooks", "show", str(done[0]["id"]))
    assert [a["dispatcher"] for a in shown["delivery_attempts"]] == [stats["dispatcher"]]


def test_two_dispatchers_racing_on_postgresql_deliver_everything_never_twice_at_once(
    receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    url = asyncio.run(create_pg_database(require_postgres()))
    try:
        env = base_env(url, **FAST)
        created = setup_app(env, receiver.url(), pings=400)
        secret = created["webhook_signing_key"]["secret"]

        async def slowish(delivery: Delivery, _request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(0.005 + (hash(delivery.webhook_id) % 10) / 1000)
            return web.Response(status=200)

        receiver.default = slowish
        racers = [
            Dispatch(env, tmp_path / f"racer{n}.log", "--concurrency", "16") for n in range(2)
        ]
        receiver.wait_until(
            lambda: sum(d.answered_status == 200 for d in receiver.deliveries) >= 400
        )
        stats = [racer.terminate() for racer in racers]

        per_id = Counter(d.webhook_id for d in receiver.deliveries)
        assert len(per_id) == 400 and set(per_id.values()) == {1}  # each exactly once
        assert receiver.max_in_flight_per_id == 1  # never two at once
        assert sum(s["delivered"] for s in stats) == 400
        assert all(s["delivered"] > 0 for s in stats), stats  # both took part
        for delivery in receiver.deliveries[:20]:
            delivery.verify(secret)
        listed = cli_json(env, "webhooks", "list", "--status", "delivered", "--limit", "0")
        assert len(listed) == 400
    finally:
        asyncio.run(drop_pg_database(url))


def test_serve_on_sqlite_runs_exactly_one_dispatcher_across_workers(
    receiver: ThreadedReceiver, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/served.db", **FAST)
    with Server(env, workers=2, log_path=tmp_path / "server.log") as server:
        created = cli_json(
            server.env, "clients", "create", "--name", "rp", "--grant-type",
            "client_credentials", "--webhook-url", receiver.url(),
        )  # fmt: skip
        secret = created["webhook_signing_key"]["secret"]
        cli_json(server.env, "webhooks", "ping", created["client_id"], "--count", "20")
        receiver.wait_until(lambda: len({d.webhook_id for d in receiver.deliveries}) == 20)
        for delivery in receiver.deliveries:
            delivery.verify(secret)
        with sqlite3.connect(tmp_path / "served.db") as db:
            dispatchers = {
                row[0] for row in db.execute("SELECT dispatcher FROM webhook_delivery_attempts")
            }
        assert len(dispatchers) == 1, dispatchers  # one worker dispatches; the other does not
        busy = cli(server.env, "webhooks", "dispatch", "--once", check=False)
        assert busy.returncode == 1 and "onepass serve" in busy.stderr
    assert "Traceback" not in server.log()
