"""PostgreSQL crashes under a running server and dispatcher, then comes back.

A PostgreSQL of the test's own (initdb in a temporary directory, stopped with
``pg_ctl stop -m immediate``: a crash, no shutdown checkpoint). While it is down
nothing answers 5xx other than 503 with a JSON error; once it is back the same
processes serve and deliver again, without a restart.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json, free_port
from tests.e2e.test_webhook_dispatch import FAST, Dispatch
from tests.webhook_helpers import ThreadedReceiver

pytestmark = pytest.mark.e2e


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class OwnPostgres:
    def __init__(self, directory: Path) -> None:
        self.bin = _pg_bin()
        assert self.bin is not None
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        command = [str(a) for a in args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)}: {done.stderr or done.stdout}")

    def init(self) -> None:
        self.sockets.mkdir()
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            for path in (self.data.parent, self.data, self.sockets):
                shutil.chown(path, "postgres")
        self._as_postgres(self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                          "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.sockets} -c fsync=off"
        log = self.data.parent / "postgres.log"  # its output: not our pipes
        self._as_postgres(
            self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", log, "-w", "start"
        )

    def crash(self) -> None:
        self._as_postgres(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "stop")

    def stop(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
            + [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def postgres() -> Iterator[OwnPostgres]:
    if _pg_bin() is None:
        if os.environ.get("ONEPASS_REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL's server binaries are missing; this test needs them")
        pytest.skip("PostgreSQL's server binaries are missing")
    # Not under pytest's tmp_path: the postgres user must reach it (tmp_path's parents
    # are private to root when the suite runs as root).
    directory = Path(tempfile.mkdtemp(prefix="onepass-pg-"))
    server = OwnPostgres(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def wait_for(predicate, timeout: float = 20.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def token(url: str, client: dict) -> httpx.Response:
    return httpx.post(
        f"{url}/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )


def test_a_database_crash_gives_503s_then_everything_recovers(
    postgres: OwnPostgres, tmp_path: Path
) -> None:
    env = base_env(postgres.url, **FAST)
    cli(env, "db", "upgrade")
    with ThreadedReceiver() as receiver:
        rp = cli_json(
            env, "clients", "create", "--name", "rp", "--grant-type", "client_credentials",
            "--webhook-url", receiver.url("/hook"),
        )  # fmt: skip
        with Dispatch(env, tmp_path / "dispatch.log") as dispatcher:
            with Server(env, log_path=tmp_path / "serve.log") as server:
                issued = token(server.url, rp)
                assert issued.status_code == 200
                bearer = {"authorization": f"Bearer {issued.json()['access_token']}"}
                cli_json(env, "webhooks", "ping", rp["client_id"])
                receiver.wait_until(lambda: len(receiver.deliveries) == 1)

                postgres.crash()
                wait_for(
                    lambda: httpx.get(f"{server.url}/up", timeout=10).status_code == 503,
                    what="/up says 503",
                )
                up = httpx.get(f"{server.url}/up", timeout=10).json()
                assert up["checks"]["database"].startswith("unreachable")
                # Past the client cache's few seconds, a token request cannot check the
                # client: 503 temporarily_unavailable, never a 500.
                time.sleep(3.5)
                answers = [token(server.url, rp) for _ in range(3)]
                answers.append(httpx.get(f"{server.url}/.well-known/jwks.json", timeout=10))
                answers.append(httpx.get(f"{server.url}/userinfo", timeout=10))
                # Endpoints that must read the database to answer say so: 503 in their
                # protocol's format, never a 500.
                checked = [
                    httpx.get(f"{server.url}/userinfo", headers=bearer, timeout=10),
                    httpx.post(
                        f"{server.url}/introspect",
                        data={"token": issued.json()["access_token"]},
                        auth=(rp["client_id"], rp["client_secret"]),
                        timeout=10,
                    ),
                ]
                for answer in answers + checked:
                    assert answer.status_code in (200, 401, 503), answer.text
                    assert "Traceback" not in answer.text
                for answer in checked:
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["error"] == "temporarily_unavailable"
                refused = answers[0]
                assert refused.status_code == 503
                assert refused.json()["error"] == "temporarily_unavailable"
                assert int(refused.headers["retry-after"]) > 0
                assert answers[3].status_code == 200, "the JWKS is served from memory"

                postgres.start()
                wait_for(
                    lambda: httpx.get(f"{server.url}/up", timeout=10).status_code == 200,
                    what="/up is 200 again",
                )
                assert token(server.url, rp).status_code == 200
                fresh = cli_json(
                    env,
                    "clients",
                    "create",
                    "--name",
                    "after",
                    "--grant-type",
                    "client_credentials",
                )
                assert token(server.url, fresh).status_code == 200
                # The same dispatcher process delivers what is enqueued after the crash.
                cli_json(env, "webhooks", "ping", rp["client_id"])
                receiver.wait_until(lambda: len(receiver.deliveries) == 2, timeout=30)
            stats = dispatcher.terminate()
    assert stats["delivered"] == 2
    for log in ("serve.log", "dispatch.log"):
        assert "Traceback" not in (tmp_path / log).read_text(), log
