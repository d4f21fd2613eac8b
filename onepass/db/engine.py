"""Engine and sessions.

``Database`` owns one async engine and its session factory. It is created in the
application's lifespan (or by a CLI command) and closed with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from onepass.db.direct import WriteQueue, open_store

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class UnsupportedDatabase(ValueError):
    pass


def to_async_url(url: str) -> str:
    """Map ``sqlite:///PATH`` and ``postgresql://…`` to their async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise UnsupportedDatabase(
            f"ONEPASS_DATABASE_URL: unsupported database {backend!r}; use sqlite:///PATH or postgresql://…"
        )
    return parsed.set(drivername=_ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN, so that a transaction can ask for
    # BEGIN IMMEDIATE (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes writers wait
    # for each other instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # An exclusive transaction takes SQLite's write lock at BEGIN, so two writers
    # that read before they write cannot both act on the same stale read.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    async_url = to_async_url(url)
    if async_url.startswith("sqlite"):
        engine = create_async_engine(async_url, pool_pre_ping=False)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        async_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: this process's writers queue here, in arrival order (see ``session``).
        self.write_queue = WriteQueue() if self.dialect == "sqlite" else None
        # The hot paths' statements, straight to the driver (onepass.db.direct).
        self.direct = open_store(url, pool_size=pool_size, write_queue=self.write_queue)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(
        self, *, exclusive: str | None = None, readonly: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        ``exclusive`` names a lock for transactions that read, decide, then write
        (key rotation, merges): on PostgreSQL a transaction-scoped advisory lock of
        that name, on SQLite ``BEGIN IMMEDIATE``. Holders of one name run one at a time.

        On SQLite every transaction not marked ``readonly`` starts with
        ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes fails
        at once with "database is locked" when another writer committed in between
        (WAL cannot upgrade a stale snapshot, and no busy timeout helps), so writers
        queue at BEGIN instead. Readers never wait.

        Before BEGIN, a SQLite writer takes its place in this process's ``write_queue``
        (shared with ``direct``): writers of one process are served in arrival order
        instead of racing each other's busy-timeout retries, which gave some a wait of
        seconds under load. Writers of other processes still meet at SQLite's lock.
        """
        if self.write_queue is None or readonly:
            async with self._session(exclusive, readonly) as session:
                yield session
            return
        async with self.write_queue.turn(), self._session(exclusive, readonly) as session:
            yield session

    @asynccontextmanager
    async def _session(self, exclusive: str | None, readonly: bool) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session, session.begin():
            if exclusive is not None:
                await lock(session, exclusive)
            elif not readonly and self.dialect == "sqlite":
                await session.connection(execution_options={"sqlite_immediate": True})
            yield session

    async def close(self) -> None:
        await self.direct.close()
        await self.engine.dispose()


async def lock(session: AsyncSession, name: str) -> None:
    """Take the named exclusive lock for the rest of the session's transaction.

    On SQLite this must be the transaction's first statement.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.connection(execution_options={"sqlite_immediate": True})
    else:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name)})


def _lock_key(name: str) -> int:
    # A stable signed 64-bit key per lock name.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
