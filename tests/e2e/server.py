"""Run the real ``onepass`` command and server as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_SECRET_KEY

ONEPASS = [sys.executable, "-m", "onepass"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ONEPASS_") or k.startswith("ONEPASS_TEST_")
    }
    env.update(ONEPASS_DATABASE_URL=database_url, ONEPASS_SECRET_KEY=TEST_SECRET_KEY)
    env.update(extra)
    return env


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*ONEPASS, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"onepass {' '.join(args)} failed ({result.returncode}): {result.stderr}"
        )
    return result


def cli_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(cli(env, *args, "--json").stdout)


class Server:
    """``onepass serve`` on a free port; stopped with SIGTERM on exit."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        workers: int = 1,
        log_path: Path,
        host: str = "127.0.0.1",
        issuer: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        """``host``: the issuer's host name (``localhost`` for passkeys, which browsers
        refuse on an IP address); the server listens on 127.0.0.1 either way.
        ``issuer``: another issuer than the server's own URL (behind a proxy). ``cwd``:
        where it runs (``python -m onepass`` imports the ``onepass`` found there first)."""
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.env = {**env, "ONEPASS_ISSUER": issuer or self.url}
        self.workers = workers
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*ONEPASS, "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"onepass serve exited {self.process.returncode}: {self.log()}"
                )
            try:
                if httpx.get(f"{self.url}/up", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"onepass serve did not become healthy: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
