"""Statements sent straight to the driver, for the few paths every login takes.

The token grants and userinfo run a handful of fixed statements per request. Through
the ORM each one pays the unit of work, statement compilation, the engine's events and
the pool's pre-ping; here each is a prepared statement on the driver's connection:
asyncpg on PostgreSQL, the standard library's ``sqlite3`` on SQLite. The schema and
migrations stay SQLAlchemy's; this module only sends SQL written for both engines.

PostgreSQL: a pool of asyncpg connections of its own (``pool_size``), whose prepared
statements are cached per connection by asyncpg. A write is one transaction.

SQLite: two connections of the process, one that reads and one that writes, called
synchronously from the event loop. A statement here is a point lookup or a one-row
write by a unique index that takes microseconds, less than the two thread switches
that running it on a thread would cost. Writers of this process, these and the ORM's,
queue FIFO on one ``WriteQueue`` (so a waiting request is served in arrival order, not
whenever a busy-timeout retry happens to win the lock), then ``BEGIN IMMEDIATE`` with no
busy timeout: if another process (the CLI, a dispatcher) holds SQLite's write lock, the
writer waits for it with ``asyncio.sleep``, never blocking the loop, for at most the
queue's timeout. The whole transaction runs without yielding to the loop unless
its body awaits something else, so SQLite's write lock is held for microseconds.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import orjson
import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger("onepass.db")

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class DatabaseBusy(sqlite3.OperationalError):
    """SQLite's write lock stayed with another writer for longer than ``lock_timeout``."""


class WriteQueue:
    """The writers of one process to one SQLite database, served in arrival order
    (``asyncio.Lock`` is FIFO). A wait longer than ``timeout`` raises ``DatabaseBusy``."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a lock serves one event loop
            self._lock, self._loop = asyncio.Lock(), loop
        lock = self._lock
        try:
            async with asyncio.timeout(self.timeout):
                await lock.acquire()
        except TimeoutError:
            raise DatabaseBusy("database is locked: too many writers waiting") from None
        try:
            yield
        finally:
            lock.release()


@dataclass(frozen=True)
class Statement:
    """One SQL statement with ``:name`` parameters, valid on SQLite and PostgreSQL.

    ``datetimes`` and ``json`` name the columns (results) and parameters that hold
    timestamps (``UTCDateTime``: aware UTC) and JSON values, so that both engines take
    and give the same Python values as the ORM does.
    """

    sql: str
    datetimes: frozenset[str] = frozenset()
    json: frozenset[str] = frozenset()
    postgres: str = field(init=False)
    order: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        order: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in order:
                order.append(name)
            return f"${order.index(name) + 1}"

        object.__setattr__(self, "postgres", _NAMED.sub(number, self.sql))
        object.__setattr__(self, "order", tuple(order))


def statement(sql: str, *, datetimes: Iterable[str] = (), json: Iterable[str] = ()) -> Statement:
    return Statement(" ".join(sql.split()), frozenset(datetimes), frozenset(json))


Row = dict[str, Any]


class Transaction(Protocol):
    async def one(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        """The first row the statement returns, or None."""
        ...

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> None: ...


class DirectStore(Protocol):
    dialect: str

    async def read(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        """One row, outside any transaction (SQLite: the latest commit)."""
        ...

    def write(self) -> AbstractAsyncContextManager[Transaction]:
        """``async with store.write() as tx``: commits on success, rolls back on error."""
        ...

    async def write_one(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        """One statement that writes, committed on its own; its first row, or None."""
        ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------- SQLite


def _sqlite_time(value: datetime) -> str:
    # The text SQLAlchemy's SQLite dialect stores, so that both read and compare alike.
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _sqlite_params(stmt: Statement, params: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for name in stmt.datetimes.intersection(out):
        if out[name] is not None:
            out[name] = _sqlite_time(out[name])
    for name in stmt.json.intersection(out):
        if out[name] is not None:
            out[name] = orjson.dumps(out[name]).decode()
    return out


def _sqlite_row(stmt: Statement, cursor: sqlite3.Cursor) -> Row | None:
    values = cursor.fetchone()
    if values is None:
        return None
    row = {column[0]: value for column, value in zip(cursor.description, values, strict=True)}
    for name in stmt.datetimes.intersection(row):
        if row[name] is not None:
            row[name] = datetime.fromisoformat(row[name]).replace(tzinfo=UTC)
    for name in stmt.json.intersection(row):
        if row[name] is not None:
            row[name] = orjson.loads(row[name])
    return row


class _SQLiteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def one(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        cursor = self._connection.execute(stmt.sql, _sqlite_params(stmt, params))
        try:
            return _sqlite_row(stmt, cursor)
        finally:
            cursor.close()

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> None:
        self._connection.execute(stmt.sql, _sqlite_params(stmt, params)).close()


def _sqlite_connect(path: str, *, busy_timeout: int = 0) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


class SQLiteStore:
    """See the module's docstring. The writer never checkpoints the WAL at a commit
    (SQLite's default every 1,000 pages, which would stop the event loop for the
    checkpoint's fsync): every ``CHECKPOINT_EVERY`` commits a checkpoint runs on a thread
    of its own connection, in a turn of the write queue."""

    dialect = "sqlite"
    CHECKPOINT_EVERY = 500

    def __init__(self, path: str, queue: WriteQueue) -> None:
        self._path = path
        self._queue = queue  # shared with the ORM's writers of this process (db.engine)
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._commits = 0
        self._checkpoint: asyncio.Future[None] | None = None

    def _connections(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self._reader is None or self._writer is None:
            self._reader = _sqlite_connect(self._path)
            self._writer = _sqlite_connect(self._path)
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
        return self._reader, self._writer

    def _committed(self) -> None:
        self._commits += 1
        if self._commits < self.CHECKPOINT_EVERY or self._checkpoint is not None:
            return
        self._commits = 0
        self._checkpoint = asyncio.ensure_future(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        # First beside the writers, which copies most of the WAL into the database; then
        # in a turn of the write queue, which copies what was appended meanwhile, so that
        # the WAL is copied whole and the next writer starts it again from its beginning
        # (a checkpoint racing the writers never catches up, and the WAL would grow without
        # end). Writers wait, asynchronously, for the second, short one only; the event
        # loop never waits.
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _passive_checkpoint, self._path)
            async with self._queue.turn():
                await loop.run_in_executor(None, _passive_checkpoint, self._path)
        except Exception as exc:
            # Not fatal: the next one, or any other connection's commit, checkpoints.
            log.warning("db.checkpoint_failed", error=type(exc).__name__)
        finally:
            self._checkpoint = None

    async def read(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        reader = self._connections()[0]
        return await _SQLiteTransaction(reader).one(stmt, params)

    async def _begin(self, writer: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._queue.timeout
        pause = 0.001
        while True:
            try:
                writer.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise DatabaseBusy("database is locked by another process") from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        async with self._queue.turn():
            writer = self._connections()[1]
            await self._begin(writer)
            try:
                yield _SQLiteTransaction(writer)
            except BaseException:
                writer.execute("ROLLBACK")
                raise
            writer.execute("COMMIT")
        self._committed()

    async def write_one(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        async with self.write() as tx:
            return await tx.one(stmt, params)

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None


def _passive_checkpoint(path: str) -> None:
    connection = _sqlite_connect(path, busy_timeout=1000)
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
    finally:
        connection.close()


# ---------------------------------------------------------------------------- PostgreSQL


def _pg_params(stmt: Statement, params: Mapping[str, Any]) -> list[Any]:
    for name in stmt.datetimes.intersection(params):
        value = params[name]
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
    return [params[name] for name in stmt.order]


def _pg_row(stmt: Statement, record: asyncpg.Record | None) -> Row | None:
    if record is None:
        return None
    row = dict(record.items())
    for name in stmt.datetimes.intersection(row):
        if row[name] is not None:
            row[name] = row[name].astimezone(UTC)
    return row


class _PostgresTransaction:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def one(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        record = await self._connection.fetchrow(stmt.postgres, *_pg_params(stmt, params))
        return _pg_row(stmt, record)

    async def execute(self, stmt: Statement, params: Mapping[str, Any]) -> None:
        await self._connection.execute(stmt.postgres, *_pg_params(stmt, params))


async def _pg_setup(connection: asyncpg.Connection) -> None:
    # JSON and JSONB columns in and out as Python values, as the ORM gives them.
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _no_reset(_connection: asyncpg.Connection) -> None:
    # These connections never change session state (no SET, LISTEN, advisory locks or
    # cursors), so asyncpg's reset query would be a round trip for nothing.
    return None


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, dsn: str, *, pool_size: int) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._creating: asyncio.Lock | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._creating is None:
            self._creating = asyncio.Lock()
        async with self._creating:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    init=_pg_setup,
                    reset=_no_reset,
                    timeout=5,
                    command_timeout=30,
                )
            return self._pool

    async def read(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        pool = await self._get_pool()
        async with pool.acquire() as connection:
            return await _PostgresTransaction(connection).one(stmt, params)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        pool = await self._get_pool()
        async with pool.acquire() as connection, connection.transaction():
            yield _PostgresTransaction(connection)

    async def write_one(self, stmt: Statement, params: Mapping[str, Any]) -> Row | None:
        # A statement outside a transaction block is its own transaction in PostgreSQL.
        return await self.read(stmt, params)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def open_store(
    url: str, *, pool_size: int, write_queue: WriteQueue | None
) -> SQLiteStore | PostgresStore:
    """The direct store of ``ONEPASS_DATABASE_URL`` (``sqlite:///PATH`` or ``postgresql://``)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return SQLiteStore(parsed.database or ":memory:", write_queue or WriteQueue())
    if backend in ("postgresql", "postgres"):
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresStore(dsn, pool_size=pool_size)
    raise ValueError(f"unsupported database {backend!r}")
