"""Which failures count as "the database is away" (503) rather than a bug (500)."""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy import exc as sa

from onepass.db.errors import is_unavailable


def _wrapped(orig: BaseException, cls: type[sa.DBAPIError] = sa.DBAPIError) -> sa.DBAPIError:
    return cls("SELECT 1", {}, orig)  # type: ignore[arg-type]


def test_connection_failures_count_as_unavailable_however_wrapped() -> None:
    assert is_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert is_unavailable(_wrapped(ConnectionResetError()))
    assert is_unavailable(_wrapped(asyncpg.exceptions.AdminShutdownError()))
    assert is_unavailable(sa.OperationalError("SELECT 1", {}, Exception("database is locked")))
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("the pool gave up") from inner
    except RuntimeError as outer:
        assert is_unavailable(outer)


def test_a_bug_in_a_statement_is_not_unavailable() -> None:
    assert not is_unavailable(sa.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_unavailable(_wrapped(asyncpg.exceptions.UndefinedColumnError()))
    assert not is_unavailable(ValueError("a bug"))


def test_refusals_at_connect_that_drivers_raise_as_their_own_errors_are_unavailable() -> None:
    assert is_unavailable(asyncpg.exceptions.ObjectNotInPrerequisiteStateError("not accepting"))
    assert is_unavailable(asyncpg.exceptions.TooManyConnectionsError())
    assert not is_unavailable(asyncpg.exceptions.LockNotAvailableError())  # a statement's
    not_a_database = sqlite3.DatabaseError("file is not a database")
    not_a_database.sqlite_errorcode = sqlite3.SQLITE_NOTADB  # type: ignore[attr-defined]
    assert is_unavailable(not_a_database)
    assert is_unavailable(_wrapped(not_a_database, sa.DatabaseError))
    assert not is_unavailable(sqlite3.DatabaseError("some other failure"))
