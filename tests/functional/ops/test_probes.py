"""GET /livez and /readyz: the probes a load balancer and an orchestrator poll, and the
release every process reports (/readyz, /metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import text

from onepass.app import OnePass
from onepass.process import DRAINING
from onepass.release import current
from onepass.runtime import Runtime
from tests.conftest import database_stopped


@contextlib.asynccontextmanager
async def schema_marked_at(runtime: Runtime, revision: str) -> AsyncIterator[None]:
    """The database says it is at ``revision`` (the PostgreSQL database is shared by the
    tests of a worker: put the real revision back)."""
    update = text("UPDATE alembic_version SET version_num = :v")
    async with runtime.database.session() as session:
        await session.execute(update, {"v": revision})
    try:
        yield
    finally:
        async with runtime.database.session() as session:
            await session.execute(update, {"v": current().revision})


async def test_livez_answers_with_the_release(http: httpx.AsyncClient) -> None:
    response = await http.get("/livez")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "ok"
    assert body["release"]["revision"] == current().revision


async def test_readyz_is_ready_on_a_migrated_database(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {
        "database": "ok",
        "schema": f"at {current().revision}",
        "key_ring": "ok",
        "shutdown": "serving",
    }
    assert body["release"] == current().describe()


async def test_readyz_is_not_ready_on_a_schema_behind_this_release(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with schema_marked_at(runtime, "0012"):
        response = await http.get("/readyz")
        assert (await http.get("/livez")).status_code == 200, "liveness never asks the schema"
    assert response.status_code == 503
    assert "run onepass db upgrade" in response.json()["checks"]["schema"]


async def test_readyz_is_ready_on_a_schema_ahead_of_this_release(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Expand/contract: during a rolling upgrade the previous release serves on the new
    schema."""
    ahead = f"{int(current().revision) + 1:04d}"
    async with schema_marked_at(runtime, ahead):
        response = await http.get("/readyz")
    assert response.status_code == 200
    assert "expand/contract" in response.json()["checks"]["schema"]


async def test_readyz_is_503_when_the_database_stops_answering(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    async with database_stopped(app.services.runtime.database):
        response = await http.get("/readyz")
        assert (await http.get("/livez")).status_code == 200
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("unreachable")
    assert checks["schema"] == "not checked: database unreachable"
    assert "Traceback" not in response.text
    assert (await http.get("/readyz")).status_code == 200, "ready again once it answers"


async def test_readyz_is_503_while_draining(http: httpx.AsyncClient) -> None:
    DRAINING.since = 1.0
    try:
        response = await http.get("/readyz")
    finally:
        DRAINING.since = None
    assert response.status_code == 503
    assert response.json()["checks"]["shutdown"] == "draining"


async def test_metrics_carry_the_release_info(http: httpx.AsyncClient) -> None:
    text_ = (await http.get("/metrics")).text
    release = current()
    assert (
        f'onepass_release_info{{commit="{release.commit or "unknown"}",'
        f'revision="{release.revision}",version="{release.version}"}} 1.0'
    ) in text_
