"""Shared fixtures.

Every functional test runs on SQLite, and again on PostgreSQL (with Redis as the
cache) when ``ONEPASS_TEST_DATABASE_URL`` / ``ONEPASS_TEST_REDIS_URL`` are set.
CI sets ``ONEPASS_REQUIRE_SERVICES=1``: then any skipped test fails the run, so a
PostgreSQL or Redis test can never be skipped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

from onepass.app import OnePass, create_app
from onepass.db import Database
from onepass.db.base import Base
from onepass.db.migrate import upgrade
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare


def _worker_redis(url: str | None) -> str | None:
    """The Redis database of this pytest-xdist worker: tests empty theirs, so each
    worker has its own. ``gw0`` keeps the number given, ``gwN`` takes the N-th below it
    (above it, past 0)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    given = int(parts.path.strip("/") or 0)
    offset = int(worker[2:])
    number = given - offset if given - offset >= 0 else given + offset
    return urlunsplit(parts._replace(path=f"/{number}"))


# The real SMTP server fixture (``smtp``) of the mail tests.
pytest_plugins = ["tests.smtp"]

PG_URL = os.environ.get("ONEPASS_TEST_DATABASE_URL")
REDIS_URL = _worker_redis(os.environ.get("ONEPASS_TEST_REDIS_URL"))
REQUIRE_SERVICES = os.environ.get("ONEPASS_REQUIRE_SERVICES") == "1"
TEST_SECRET_KEY = "test-secret-key-" + "k" * 32
ISSUER = "http://testserver"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not REQUIRE_SERVICES:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(
            f"ONEPASS_REQUIRE_SERVICES=1: {skipped} test(s) skipped; every test must run in CI",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def require_postgres() -> str:
    if not PG_URL:
        pytest.skip("ONEPASS_TEST_DATABASE_URL is not set")
    return PG_URL


def require_redis() -> str:
    """This worker's Redis: each pytest-xdist worker has a database number of its own,
    counting down from the URL's (``/15``: gw0 15, gw1 14, ...), since each test
    empties it first and must not empty another worker's test's counts."""
    if not REDIS_URL:
        pytest.skip("ONEPASS_TEST_REDIS_URL is not set")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    parts = urlsplit(REDIS_URL)
    base = int(parts.path.strip("/") or 0)
    if index > base:
        pytest.fail(f"ONEPASS_TEST_REDIS_URL's database {base} leaves none for worker {worker}")
    return urlunsplit(parts._replace(path=f"/{base - index}"))


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.close()


# The signing keys ``prepare`` made once per database: each test starts with them, as a
# server started once before would (an RSA key takes ~50 ms to make; the tests of key
# creation and rotation make their own).
_KEYS: dict[str, list[dict[str, object]]] = {}


async def _prepared_keys(url: str) -> list[dict[str, object]]:
    from sqlalchemy import select

    from onepass.keys.models import SigningKey

    runtime = Runtime.build(make_settings(url))
    try:
        await prepare(runtime)
        async with runtime.database.session(readonly=True) as session:
            rows = (await session.execute(select(SigningKey.__table__))).mappings().all()
        return [dict(row) for row in rows]
    finally:
        await runtime.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file with its first signing keys, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    asyncio.run(_prepared_keys(f"sqlite:///{path}"))
    return path


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.host,
        port=parsed.port or 5432,
        database=parsed.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_pg_database(base_url: str) -> str:
    """A new, empty PostgreSQL database on the test server; returns its URL."""
    name = f"onepass_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(base_url, f'CREATE DATABASE "{name}"')
    # A throwaway database: a commit need not wait for its WAL to reach the disk (a
    # crash of the server loses the last commits, never consistency). Production keeps
    # PostgreSQL's default.
    await _pg_admin(base_url, f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    base = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated PostgreSQL database for the session, emptied before each test."""
    url = asyncio.run(create_pg_database(require_postgres()))
    asyncio.run(_migrate(url))
    _KEYS[url] = asyncio.run(_prepared_keys(url))
    yield url
    asyncio.run(drop_pg_database(url))


async def _truncate(url: str) -> None:
    database = Database(url)
    try:
        from sqlalchemy import text

        # DELETE, children first, then the sequences back to 1: what TRUNCATE … RESTART
        # IDENTITY does, without new files for every table (the tables hold a test's rows).
        async with database.session() as session:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(text(f'DELETE FROM "{table.name}"'))
            sequences = await session.scalars(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            )
            for sequence in sequences.all():
                await session.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
            keys = _KEYS.get(url)
            if keys:
                from sqlalchemy import insert

                from onepass.keys.models import SigningKey

                await session.execute(insert(SigningKey.__table__), keys)
                await session.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('signing_keys', 'id'), "
                        "(SELECT max(id) FROM signing_keys))"
                    )
                )
    finally:
        await database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if engine_name == "sqlite":
        path = tmp_path / "onepass.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_database")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def redis_url(engine_name: str) -> str | None:
    """PostgreSQL runs are production-shaped: they use Redis as the cache, emptied
    before each test (the test database number is the suite's alone)."""
    if engine_name != "postgresql":
        return None
    import redis

    url = require_redis()
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


def make_settings(database_url: str, redis_url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": TEST_SECRET_KEY,
        "issuer": ISSUER,
        "client_cache_ttl": 0.2,
        "key_refresh_interval": 0.2,
        # Cheap argon2 keeps the suite fast; production parameters are the defaults.
        "argon2_time_cost": 1,
        "argon2_memory_cost": 8 * 1024,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, redis_url: str | None) -> Settings:
    return make_settings(database_url, redis_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.build(settings)
    await prepare(rt)
    yield rt
    await rt.close()


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[OnePass]:
    application = create_app(runtime.settings)
    async with application.api.router.lifespan_context(application.api):
        yield application


@pytest.fixture
async def http(app: OnePass) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


@contextlib.asynccontextmanager
async def database_stopped(database: Database) -> AsyncIterator[None]:
    """Make the database stop answering for the duration, for real.

    PostgreSQL refuses new connections and drops the open ones; a SQLite file is
    replaced by garbage after the pool is closed.
    """
    url = database.url
    if url.startswith("sqlite"):
        await database.engine.dispose()
        path = Path(make_url(url).database or "")
        files = [path.with_name(path.name + suffix) for suffix in ("", "-wal", "-shm")]
        saved = {f: f.read_bytes() for f in files if f.exists()}
        for f in saved:
            f.unlink()
        path.write_bytes(b"this is not a database" * 100)
        try:
            yield
        finally:
            await database.engine.dispose()
            for f, content in saved.items():
                f.write_bytes(content)
        return
    name = make_url(url).database
    admin = PG_URL or ""
    await _pg_admin(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await _pg_admin(
        admin,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )
    try:
        yield
    finally:
        await _pg_admin(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
