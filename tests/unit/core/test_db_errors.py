"""Which failures count as "the database is away" (503) rather than a bug (500)."""

from __future__ import annotations

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
