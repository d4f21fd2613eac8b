"""The direct store (``onepass.db.direct``) against the real engines: what it writes
the ORM reads back identically and the other way round, its transactions commit or
roll back as a whole, SQLite's writers of one process queue in one line (the ORM's and
the direct store's), a writer of another process is waited for without stopping the
event loop, the WAL is checkpointed, and PostgreSQL's pool is opened only when used."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from onepass.db import Database
from onepass.db.direct import (
    DatabaseBusy,
    PostgresStore,
    SQLiteStore,
    WriteQueue,
    open_store,
    statement,
)
from onepass.db.errors import is_unavailable
from onepass.oauth.models import RefreshToken, RevokedAccessToken
from onepass.oauth.statements import INSERT_REFRESH_TOKEN, ROTATE_REFRESH_TOKEN
from onepass.runtime import Runtime
from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.factories import make_rp, make_user

# ----------------------------------------------------------------------------- helpers

REVOKE = statement(
    "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) "
    "VALUES (:jti, :expires_at, :revoked_at, :reason)",
    datetimes=("expires_at", "revoked_at"),
)
REVOKED = statement(
    "SELECT jti, expires_at, revoked_at, reason FROM revoked_access_tokens WHERE jti = :jti",
    datetimes=("expires_at", "revoked_at"),
)
COUNT_REVOKED = statement("SELECT count(*) AS n FROM revoked_access_tokens")
TOKEN = statement(
    "SELECT token_hash, family_id, scope, sid, auth_time, acr, amr, created_at, expires_at, "
    "family_expires_at, rotated_at, revoked_at, access_token_jti, access_token_expires_at "
    "FROM refresh_tokens WHERE token_hash = :token_hash",
    datetimes=(
        "auth_time",
        "created_at",
        "expires_at",
        "family_expires_at",
        "rotated_at",
        "revoked_at",
        "access_token_expires_at",
    ),
    json=("amr",),
)
LIVE_TOKENS = statement(
    "SELECT count(*) AS n FROM refresh_tokens WHERE expires_at > :now",
    datetimes=("now",),
)

# A time with microseconds, given in a zone that is not UTC.
PLUS_TWO = timezone(timedelta(hours=2))
AUTH_TIME = datetime(2026, 3, 4, 7, 6, 5, 123456, tzinfo=PLUS_TWO)


def revocation(jti: str, reason: str = "test") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"jti": jti, "expires_at": now + timedelta(hours=1), "revoked_at": now, "reason": reason}


async def user_and_client(runtime: Runtime) -> tuple[int, int]:
    user = await make_user(runtime)
    client = await make_rp(runtime)
    return user.id, client.id


def refresh_values(user_id: int, app_id: int, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "token_hash": secrets.token_hex(32),
        "family_id": secrets.token_hex(16),
        "oauth_application_id": app_id,
        "user_id": user_id,
        "scope": "openid offline_access",
        "sid": None,
        "auth_time": AUTH_TIME,
        "acr": None,
        "amr": ["pwd", "otp"],
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
        "family_expires_at": now + timedelta(days=30),
        "access_token_jti": None,
        "access_token_expires_at": None,
        "dpop_jkt": None,
        "resource": None,
    }
    values.update(overrides)
    return values


async def orm_token(runtime: Runtime, token_hash: str) -> RefreshToken:
    async with runtime.database.session(readonly=True) as session:
        token = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
    assert token is not None
    return token


def assert_utc(value: datetime | None, expected: datetime) -> None:
    assert value is not None
    assert value == expected
    assert value.utcoffset() == timedelta(0), f"{value!r} is not UTC"
    assert value.microsecond == expected.astimezone(UTC).microsecond


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "onepass.db"
    shutil.copy(sqlite_template, path)
    return path


@pytest.fixture
async def sqlite_database(sqlite_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{sqlite_path}")
    yield database
    await database.close()


def main_file_rows(path: Path, table: str = "revoked_access_tokens") -> int:
    """The rows in the database file itself, WAL ignored: what checkpoints put there."""
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


# ------------------------------------------------- the same values as the ORM, both ways


async def test_a_token_written_directly_reads_back_identically_through_the_orm(
    runtime: Runtime,
) -> None:
    user_id, app_id = await user_and_client(runtime)
    values = refresh_values(user_id, app_id)
    async with runtime.database.direct.write() as tx:
        await tx.execute(INSERT_REFRESH_TOKEN, values)

    token = await orm_token(runtime, values["token_hash"])
    assert_utc(token.auth_time, AUTH_TIME)
    assert_utc(token.created_at, values["created_at"])
    assert_utc(token.expires_at, values["expires_at"])
    assert_utc(token.family_expires_at, values["family_expires_at"])
    assert token.amr == ["pwd", "otp"]
    assert token.sid is None
    assert token.acr is None
    assert token.rotated_at is None
    assert token.access_token_jti is None
    assert token.access_token_expires_at is None
    assert (token.user_id, token.oauth_application_id, token.scope) == (
        user_id,
        app_id,
        "openid offline_access",
    )
    # And the direct store reads its own write as it was given.
    row = await runtime.database.direct.read(TOKEN, {"token_hash": values["token_hash"]})
    assert row is not None
    assert_utc(row["auth_time"], AUTH_TIME)
    assert row["amr"] == ["pwd", "otp"]
    assert row["sid"] is None


async def test_a_token_written_through_the_orm_reads_back_identically_directly(
    runtime: Runtime,
) -> None:
    user_id, app_id = await user_and_client(runtime)
    values = refresh_values(
        user_id,
        app_id,
        sid="sid-1",
        acr="urn:example:loa:2",
        amr=[],
        access_token_jti="jti-1",
        access_token_expires_at=datetime(2027, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
    )
    async with runtime.database.session() as session:
        session.add(RefreshToken(**values))

    row = await runtime.database.direct.read(TOKEN, {"token_hash": values["token_hash"]})
    assert row is not None
    for name in ("auth_time", "created_at", "expires_at", "family_expires_at"):
        assert_utc(row[name], values[name])
    assert_utc(row["access_token_expires_at"], values["access_token_expires_at"])
    assert row["rotated_at"] is None and row["revoked_at"] is None
    assert row["amr"] == []
    assert (row["sid"], row["acr"], row["access_token_jti"]) == (
        "sid-1",
        "urn:example:loa:2",
        "jti-1",
    )


async def test_a_naive_datetime_is_refused_and_nothing_is_written(runtime: Runtime) -> None:
    user_id, app_id = await user_and_client(runtime)
    values = refresh_values(user_id, app_id, auth_time=datetime(2026, 3, 4, 5, 6, 7))  # naive
    with pytest.raises(ValueError, match="naive"):
        async with runtime.database.direct.write() as tx:
            await tx.execute(INSERT_REFRESH_TOKEN, values)
    assert await runtime.database.direct.read(TOKEN, {"token_hash": values["token_hash"]}) is None


async def test_expiry_comparisons_in_sql_agree_with_what_the_orm_stored(runtime: Runtime) -> None:
    """SQLite compares the stored text: the direct store's parameters must be the same
    text the ORM stores, to the microsecond, whatever zone the value was given in."""
    user_id, app_id = await user_and_client(runtime)
    expiry = datetime(2030, 6, 7, 8, 9, 10, tzinfo=UTC)  # no microseconds: ".000000"
    past = datetime.now(UTC) - timedelta(seconds=1)
    live = refresh_values(user_id, app_id, expires_at=expiry)
    expired = refresh_values(user_id, app_id, expires_at=past)
    async with runtime.database.session() as session:
        session.add_all([RefreshToken(**live), RefreshToken(**expired)])
    direct = runtime.database.direct

    just_before = expiry - timedelta(microseconds=1)
    assert await direct.read(LIVE_TOKENS, {"now": just_before}) == {"n": 1}
    assert await direct.read(LIVE_TOKENS, {"now": just_before.astimezone(PLUS_TWO)}) == {"n": 1}
    assert await direct.read(LIVE_TOKENS, {"now": expiry}) == {"n": 0}
    assert await direct.read(LIVE_TOKENS, {"now": expiry.astimezone(PLUS_TWO)}) == {"n": 0}

    # The grant's own statement: the live token rotates, the expired one does not.
    now = datetime.now(UTC)
    async with direct.write() as tx:
        rotated = await tx.one(
            ROTATE_REFRESH_TOKEN,
            {
                "now": now,
                "token_hash": live["token_hash"],
                "client": app_id,
                "enforce": False,
                "jkt": None,
                "resource": None,
            },
        )
        refused = await tx.one(
            ROTATE_REFRESH_TOKEN,
            {
                "now": now,
                "token_hash": expired["token_hash"],
                "client": app_id,
                "enforce": False,
                "jkt": None,
                "resource": None,
            },
        )
    assert rotated is not None and refused is None
    assert rotated["amr"] == ["pwd", "otp"]
    assert_utc(rotated["auth_time"], AUTH_TIME)
    assert rotated["user_disabled_at"] is None
    token = await orm_token(runtime, live["token_hash"])
    assert_utc(token.rotated_at, now)
    # The ORM's comparisons see the direct store's datetime as the same instant.
    async with runtime.database.session(readonly=True) as session:
        found = await session.scalar(
            select(RefreshToken.token_hash).where(RefreshToken.rotated_at == now)
        )
    assert found == live["token_hash"]


async def test_json_values_round_trip(runtime: Runtime) -> None:
    value = {"a": [1, 2.5, "é", None, True], "b": {"c": []}}
    if runtime.database.dialect == "postgresql":
        echo = statement("SELECT :v::jsonb AS v", json=("v",))
    else:
        echo = statement("SELECT json(:v) AS v", json=("v",))
    assert await runtime.database.direct.read(echo, {"v": value}) == {"v": value}
    async with runtime.database.direct.write() as tx:
        assert await tx.one(echo, {"v": ["x"]}) == {"v": ["x"]}


# --------------------------------------------------------------------------- transactions


async def test_an_error_inside_a_write_rolls_the_whole_transaction_back(runtime: Runtime) -> None:
    direct = runtime.database.direct
    with pytest.raises(RuntimeError, match="the handler failed"):
        async with direct.write() as tx:
            await tx.execute(REVOKE, revocation("first"))
            await tx.execute(REVOKE, revocation("second"))
            raise RuntimeError("the handler failed")
    assert await direct.read(COUNT_REVOKED, {}) == {"n": 0}
    async with runtime.database.session(readonly=True) as session:
        assert await session.get(RevokedAccessToken, "first") is None

    # A failing statement rolls back the statements before it, too.
    async with direct.write() as tx:
        await tx.execute(REVOKE, revocation("taken"))
    with pytest.raises(Exception) as raised:  # the driver's unique violation
        async with direct.write() as tx:
            await tx.execute(REVOKE, revocation("new"))
            await tx.execute(REVOKE, revocation("taken"))
    assert not is_unavailable(raised.value), "a bug in a statement is not the database away"
    assert await direct.read(REVOKED, {"jti": "new"}) is None


async def test_a_successful_write_is_visible_to_new_orm_sessions_and_direct_reads(
    runtime: Runtime,
) -> None:
    values = revocation("committed", reason="logout")
    async with runtime.database.direct.write() as tx:
        await tx.execute(REVOKE, values)
    async with runtime.database.session(readonly=True) as session:
        row = await session.get(RevokedAccessToken, "committed")
    assert row is not None and row.reason == "logout"
    assert_utc(row.expires_at, values["expires_at"])
    direct_row = await runtime.database.direct.read(REVOKED, {"jti": "committed"})
    assert direct_row is not None and direct_row["reason"] == "logout"
    # A Database opened afresh (another worker of the server) sees it too.
    other = Database(runtime.database.url)
    try:
        assert await other.direct.read(REVOKED, {"jti": "committed"}) is not None
    finally:
        await other.close()


# ------------------------------------------------ SQLite: one line for the process's writers


@pytest.mark.parametrize("engine_name", ["sqlite"])
async def test_orm_sessions_and_direct_writes_queue_in_one_fifo_line(runtime: Runtime) -> None:
    database = runtime.database
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with database.session() as session:
            session.add(RevokedAccessToken(**revocation("orm-0")))
            await session.flush()
            order.append("orm-0")
            holding.set()
            await release.wait()

    async def orm(number: int) -> None:
        async with database.session() as session:
            order.append(f"orm-{number}")
            session.add(RevokedAccessToken(**revocation(f"orm-{number}")))

    async def direct(number: int) -> None:
        async with database.direct.write() as tx:
            order.append(f"direct-{number}")
            await tx.execute(REVOKE, revocation(f"direct-{number}"))

    holder = asyncio.create_task(first())
    await holding.wait()
    arrivals = ["orm-0"]
    tasks = []
    for number in range(1, 21):
        kind = orm if number % 2 else direct
        arrivals.append(f"{kind.__name__}-{number}")
        tasks.append(asyncio.create_task(kind(number)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(holder, *tasks)
    assert order == arrivals
    assert await database.direct.read(COUNT_REVOKED, {}) == {"n": 21}


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
async def test_many_interleaved_orm_and_direct_writes_all_succeed(runtime: Runtime) -> None:
    database = runtime.database

    async def orm(number: int) -> None:
        async with database.session() as session:
            session.add(RevokedAccessToken(**revocation(f"orm-{number}")))
            await session.flush()
            # A read in the same transaction, as a grant's slow path does.
            assert await session.get(RevokedAccessToken, f"orm-{number}") is not None

    async def direct(number: int) -> None:
        async with database.direct.write() as tx:
            await tx.execute(REVOKE, revocation(f"direct-{number}"))
            await asyncio.sleep(0)  # a body that yields keeps its turn
            assert await tx.one(REVOKED, {"jti": f"direct-{number}"}) is not None

    writers = [w(n) for n in range(50) for w in (orm, direct)]
    results = await asyncio.gather(*writers, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert await database.direct.read(COUNT_REVOKED, {}) == {"n": 100}
    async with database.session(readonly=True) as session:
        jtis = set((await session.scalars(select(RevokedAccessToken.jti))).all())
    assert jtis == {f"{kind}-{n}" for n in range(50) for kind in ("orm", "direct")}


# ------------------------------------------------- SQLite: a writer of another process

HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute(
    "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at, reason) VALUES "
    "('other-process', '2099-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', 'cli')"
)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
print("committed", flush=True)
"""


@pytest.fixture
def lock_holder(sqlite_path: Path) -> Iterator[Any]:
    """``start(seconds)``: another process takes SQLite's write lock for that long."""
    processes: list[subprocess.Popen[str]] = []

    def start(seconds: float) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(sqlite_path), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)


class Ticker:
    """Counts how often the event loop got to run it."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            self.ticks += 1

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_direct_write_waits_for_another_process_without_blocking_the_loop(
    sqlite_database: Database, lock_holder: Any
) -> None:
    process = lock_holder(1.0)
    with Ticker() as ticker:
        started = time.monotonic()
        async with sqlite_database.direct.write() as tx:
            seen = await tx.one(
                statement("SELECT count(*) AS n FROM revoked_access_tokens WHERE jti = :jti"),
                {"jti": "other-process"},
            )
            await tx.execute(REVOKE, revocation("after-the-cli"))
        waited = time.monotonic() - started
    assert seen == {"n": 1}, "the write ran after the other process committed"
    assert waited > 0.5
    assert ticker.ticks >= 10, f"the loop ran {ticker.ticks} times in {waited:.2f} s"
    assert process.wait(10) == 0
    assert await sqlite_database.direct.read(REVOKED, {"jti": "after-the-cli"}) is not None


async def test_a_direct_write_gives_up_with_database_busy_if_the_other_process_never_lets_go(
    sqlite_path: Path, lock_holder: Any
) -> None:
    process = lock_holder(60)
    store = SQLiteStore(str(sqlite_path), WriteQueue(timeout=0.5))
    try:
        with Ticker() as ticker:
            started = time.monotonic()
            with pytest.raises(DatabaseBusy) as raised:
                async with store.write() as tx:
                    await tx.execute(REVOKE, revocation("never"))
            waited = time.monotonic() - started
        assert is_unavailable(raised.value)
        assert 0.4 < waited < 5
        assert ticker.ticks >= 5
        # Once the other process is gone, the same store writes again.
        process.kill()
        process.wait(10)
        async with store.write() as tx:
            await tx.execute(REVOKE, revocation("later"))
        assert await store.read(REVOKED, {"jti": "later"}) is not None
        assert await store.read(REVOKED, {"jti": "never"}) is None
    finally:
        await store.close()


async def test_orm_writes_wait_for_another_process_too(
    sqlite_database: Database, lock_holder: Any
) -> None:
    lock_holder(0.5)
    async with sqlite_database.session() as session:
        session.add(RevokedAccessToken(**revocation("orm-after-the-cli")))
    async with sqlite_database.direct.write() as tx:
        await tx.execute(REVOKE, revocation("direct-after"))
    assert await sqlite_database.direct.read(COUNT_REVOKED, {}) == {"n": 3}


# ------------------------------------------------------------------ SQLite: checkpoints


async def write_many(store: SQLiteStore, count: int, prefix: str) -> None:
    for number in range(count):
        async with store.write() as tx:
            await tx.execute(REVOKE, revocation(f"{prefix}-{number}"))
        await asyncio.sleep(0)


async def wait_for(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_wal_is_checkpointed_after_checkpoint_every_commits(sqlite_path: Path) -> None:
    keep_open = sqlite3.connect(sqlite_path)  # so that no close checkpoints for us
    store = SQLiteStore(str(sqlite_path), WriteQueue())
    try:
        every = SQLiteStore.CHECKPOINT_EVERY
        await write_many(store, every - 1, "before")
        # No commit of the direct writer checkpointed (on the event loop).
        assert main_file_rows(sqlite_path) == 0
        await write_many(store, 2, "after")
        await wait_for(lambda: main_file_rows(sqlite_path) >= every)
        assert await store.read(COUNT_REVOKED, {}) == {"n": every + 1}
    finally:
        await store.close()
        keep_open.close()


async def test_the_wal_stops_growing_under_a_steady_stream_of_writes(sqlite_path: Path) -> None:
    """What a user watches on a busy server: the -wal file's size. SQLite's own
    autocheckpoint keeps it near 1,000 pages; a checkpoint every CHECKPOINT_EVERY
    commits should too, even though the writes never stop."""
    keep_open = sqlite3.connect(sqlite_path)
    store = SQLiteStore(str(sqlite_path), WriteQueue())
    wal = Path(f"{sqlite_path}-wal")
    every = SQLiteStore.CHECKPOINT_EVERY
    try:
        sizes = []
        for batch in range(6):
            for number in range(every):
                async with store.write() as tx:
                    await tx.execute(REVOKE, revocation(f"{batch}-{number}"))
                await asyncio.sleep(0.001)  # about 1,000 writes a second
            sizes.append(os.path.getsize(wal))
        assert main_file_rows(sqlite_path) >= every, "checkpoints ran"
        assert sizes[-1] <= 2 * sizes[1], f"the WAL kept growing: {sizes} bytes"
    finally:
        await store.close()
        keep_open.close()


async def test_close_waits_for_a_running_checkpoint(sqlite_path: Path) -> None:
    keep_open = sqlite3.connect(sqlite_path)  # the store's close is not the last one
    store = SQLiteStore(str(sqlite_path), WriteQueue())
    try:
        every = SQLiteStore.CHECKPOINT_EVERY
        for number in range(every):
            async with store.write() as tx:
                await tx.execute(REVOKE, revocation(f"r-{number}"))
        # The last commit started a checkpoint on a thread; close at once.
        await store.close()
        assert main_file_rows(sqlite_path) == every
    finally:
        keep_open.close()


# -------------------------------------------------------------------------- PostgreSQL


async def connections_to(name: str) -> int:
    admin = make_url(require_postgres())
    connection = await asyncpg.connect(
        user=admin.username,
        password=admin.password,
        host=admin.host,
        port=admin.port or 5432,
        database="postgres",
    )
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
            )
        )
    finally:
        await connection.close()


async def settle(name: str, expected: int) -> int:
    deadline = time.monotonic() + 10
    while (count := await connections_to(name)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """A database of this test alone, so that every connection to it is the test's."""
    url = await create_pg_database(require_postgres())
    yield url
    await drop_pg_database(url)


async def test_postgres_opens_its_pool_only_when_the_direct_store_is_used(
    fresh_pg_url: str,
) -> None:
    name = make_url(fresh_pg_url).database
    assert name is not None
    database = Database(fresh_pg_url)
    try:
        async with database.session(readonly=True) as session:
            await session.execute(select(1))
        assert await settle(name, 1) == 1, "only the ORM's connection"
        assert await database.direct.read(statement("SELECT 1 AS one"), {}) == {"one": 1}
        assert await settle(name, 2) == 2, "the direct store's pool opened one"
        await database.direct.close()
        assert await settle(name, 1) == 1, "close() closed the direct store's pool"
    finally:
        await database.close()
    assert await settle(name, 0) == 0


async def test_postgres_pool_reopens_after_close(fresh_pg_url: str) -> None:
    store = open_store(fresh_pg_url, pool_size=2, write_queue=None)
    assert isinstance(store, PostgresStore)
    try:
        assert await store.read(statement("SELECT 1 AS one"), {}) == {"one": 1}
        await store.close()
        assert await store.read(statement("SELECT 2 AS two"), {}) == {"two": 2}
    finally:
        await store.close()


@pytest.mark.parametrize("engine_name", ["postgresql"])
async def test_postgres_json_codec_round_trips_through_a_jsonb_column(runtime: Runtime) -> None:
    user_id, app_id = await user_and_client(runtime)
    values = refresh_values(user_id, app_id, amr=["pwd", "mfa", "é"])
    async with runtime.database.direct.write() as tx:
        await tx.execute(INSERT_REFRESH_TOKEN, values)
    row = await runtime.database.direct.read(
        statement(
            "SELECT amr, jsonb_typeof(amr) AS kind FROM refresh_tokens WHERE token_hash = :h"
        ),
        {"h": values["token_hash"]},
    )
    assert row == {"amr": ["pwd", "mfa", "é"], "kind": "array"}, "a JSON array, not a string"
    assert (await orm_token(runtime, values["token_hash"])).amr == ["pwd", "mfa", "é"]


async def test_a_postgres_server_that_is_away_counts_as_unavailable() -> None:
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{unused_port()}/postgres", pool_size=2)
    try:
        with pytest.raises(Exception) as raised:
            await store.read(statement("SELECT 1 AS one"), {})
        assert is_unavailable(raised.value), repr(raised.value)
        with pytest.raises(Exception) as again:
            async with store.write() as tx:
                await tx.execute(statement("SELECT 1"), {})
        assert is_unavailable(again.value), repr(again.value)
    finally:
        await store.close()


def unused_port() -> int:
    """A port that was free a moment ago: nothing listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_sqlite_file_that_cannot_be_opened_counts_as_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "missing" / "onepass.db"), WriteQueue())
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            await store.read(statement("SELECT 1 AS one"), {})
        assert is_unavailable(raised.value)
    finally:
        await store.close()
