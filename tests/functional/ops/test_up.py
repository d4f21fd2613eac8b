"""GET /up: 200 when healthy, 503 naming the failing check."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import text

from onepass.app import OnePass
from onepass.keys.keyring import KEYRING
from onepass.runtime import Runtime
from tests.conftest import database_stopped


async def test_up_reports_ok_with_every_check(http: httpx.AsyncClient) -> None:
    response = await http.get("/up")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "signing_keys": "ok", "key_ring": "ok"},
    }


async def test_up_is_503_naming_signing_keys_when_keys_are_removed(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.session() as session:
        await session.execute(text("DELETE FROM signing_keys"))
    response = await http.get("/up")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["signing_keys"].startswith("no active key for ")


async def test_up_is_503_naming_database_when_it_stops_answering(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    async with database_stopped(app.services.runtime.database):
        response = await http.get("/up")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"].startswith("unreachable")
    assert "Traceback" not in response.text
    assert (await http.get("/up")).status_code == 200, "recovers when the database is back"


async def test_up_is_503_naming_key_ring_when_this_process_stopped_refreshing(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    keyring = app.services.get(KEYRING)
    keyring.last_refreshed = time.monotonic() - 3600
    response = await http.get("/up")
    assert response.status_code == 503
    assert response.json()["checks"]["key_ring"].startswith("keys not refreshed")
