"""Telling "the database is away" from a bug.

A request that cannot reach the database is answered 503 with ``Retry-After``
(RFC 6749 §5.2 ``temporarily_unavailable`` for the OAuth endpoints), and a bug stays a
500 with its traceback in the log: only connection-level failures count as away.
asyncpg raises ``OSError`` (refused, reset) or its own connection errors, sometimes
wrapped by SQLAlchemy (``DBAPIError`` with the driver's error as ``orig``); SQLite
raises ``OperationalError`` for a file it cannot open or a lock it waited out.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy import exc as sa

_AWAY = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    sa.TimeoutError,  # no connection from the pool in time
    sa.OperationalError,
    sa.InterfaceError,
    sqlite3.OperationalError,  # the driver's own, from onepass.db.direct
    asyncpg.TooManyConnectionsError,  # 53300: the server refuses one more connection
)


def _refused_at_connect(exc: BaseException) -> bool:
    """Failures a driver reports as an error of its own rather than a connection error:
    PostgreSQL's 55000 "database … is not currently accepting connections" (exactly that
    class: its subclasses, such as 55P03 lock_not_available, are statements' errors), and
    SQLite's "file is not a database" (a file replaced or not yet restored)."""
    if type(exc) is asyncpg.ObjectNotInPrerequisiteStateError:
        return True
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB
    )


# What a handler must be registered for to see every such failure (``is_unavailable``
# then decides): the classes above, and SQLAlchemy's and asyncpg's bases that wrap them.
CANDIDATES: tuple[type[Exception], ...] = (
    *_AWAY,
    sa.SQLAlchemyError,
    asyncpg.PostgresError,
    sqlite3.DatabaseError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database could not be reached."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, _AWAY) or _refused_at_connect(current):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        wrapped = current.orig if isinstance(current, sa.DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
        seen += 1
    return False
