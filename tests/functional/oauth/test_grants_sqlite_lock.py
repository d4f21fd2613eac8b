"""The grants on SQLite while another process holds its write lock (a long CLI command,
a dispatcher): the requests wait without stopping the server, a request that waited too
long gets 503 temporarily_unavailable with Retry-After, and nothing is lost: the refresh
token it carried still works once the lock is let go."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys

import httpx
import pytest

from onepass.app import OnePass
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, make_rp, make_user
from tests.functional.oauth.test_concurrent_grants import mint_codes

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_a_refresh_behind_another_process_lock_gets_503_and_loses_nothing(
    http: httpx.AsyncClient, app: OnePass, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    client = await make_rp(runtime, first_party=True)
    auth = (client.client_id, client.client_secret)
    verifier = secrets.token_urlsafe(48)
    [code] = await mint_codes(http, client.client_id, user.email, user.password, verifier, 1)
    exchanged = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=auth,
    )
    assert exchanged.status_code == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": exchanged.json()["refresh_token"]}

    app.services.runtime.database.write_queue.timeout = 0.5  # type: ignore[union-attr]
    path = runtime.settings.sqlite_path()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        refused = await http.post("/token", data=refresh, auth=auth)
        ticking.cancel()
        assert refused.status_code == 503
        assert refused.json()["error"] == "temporarily_unavailable"
        assert refused.headers["retry-after"].isdigit()
        assert ticks >= 10  # the server went on while the request waited
    finally:
        holder.kill()
        holder.wait()

    again = await http.post("/token", data=refresh, auth=auth)
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] != refresh["refresh_token"]
