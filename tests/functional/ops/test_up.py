"""GET /up: 200 when healthy, 503 naming the failing check."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from onepass.app import OnePass
from onepass.runtime import Runtime
from tests.conftest import PG_URL, _pg_admin


async def test_up_reports_ok_with_every_check(http: httpx.AsyncClient) -> None:
    response = await http.get("/up")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "signing_keys": "ok"}}


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
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    database = app.state.runtime.database
    url = runtime.settings.database_url
    if url.startswith("sqlite"):
        # The file is replaced by garbage: every new connection fails.
        await database.engine.dispose()
        path = runtime.settings.sqlite_path()
        assert path is not None
        for suffix in ("", "-wal", "-shm"):
            p = path.with_name(path.name + suffix)
            if p.exists():
                p.unlink()
        path.write_bytes(b"this is not a database" * 100)
        restore = None
    else:
        # PostgreSQL refuses new connections and drops the open ones.
        name = database.engine.url.database
        await _pg_admin(PG_URL or "", f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await _pg_admin(
            PG_URL or "",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        restore = f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
    try:
        response = await http.get("/up")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "fail"
        assert body["checks"]["database"].startswith("unreachable")
        assert "Traceback" not in response.text
    finally:
        if restore:
            await _pg_admin(PG_URL or "", restore)
