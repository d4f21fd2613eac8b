"""SIGTERM to `onepass serve`: /readyz turns 503 at once while requests are still served
for ONEPASS_SHUTDOWN_DELAY, so a load balancer takes the process out before it stops
accepting; then it exits cleanly within the grace period."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_readiness_first_then_exits(tmp_path: Path, workers: int) -> None:
    env = base_env(f"sqlite:///{tmp_path}/d.db", ONEPASS_SHUTDOWN_DELAY="3")
    with Server(env, workers=workers, log_path=tmp_path / "server.log") as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGTERM)
        signalled = time.monotonic()

        # Every worker says it is draining; each answer comes from a live process.
        seen: set[int] = set()
        while time.monotonic() - signalled < 2.0:
            response = httpx.get(f"{server.url}/readyz", timeout=5)
            seen.add(response.status_code)
            if response.status_code == 503:
                assert response.json()["checks"]["shutdown"] == "draining"
            time.sleep(0.05)
        assert 503 in seen, seen
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503
        # ... while still serving the protocol.
        assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200
        discovery = httpx.get(f"{server.url}/.well-known/openid-configuration", timeout=5)
        assert discovery.status_code == 200

        # uvicorn re-raises the SIGTERM once it has shut down cleanly (one worker), which
        # systemd counts as a clean stop; the supervisor of several exits 0.
        assert server.process.wait(timeout=20) in (0, -signal.SIGTERM), server.log()
        assert "Application shutdown complete" in server.log()
        assert time.monotonic() - signalled >= 3.0, "stopped before the delay ran out"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/livez", timeout=2)
