"""Apply Alembic migrations (``onepass db upgrade``, and on every ``onepass serve``)."""

from __future__ import annotations

import functools
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from onepass.db.engine import Database

log = structlog.get_logger("onepass.db.migrate")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: several processes starting at once take turns migrating.
_PG_MIGRATION_LOCK = 0x1BA55


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _ahead(applied: set[str], heads: frozenset[str] | set[str]) -> bool:
    """The database is at a later migration than this code ships (a newer release
    migrated it): expand/contract lets this release run on it unchanged, which is what a
    rollback and the old half of a rolling upgrade rely on (docs/deploying.md)."""
    if len(applied) != 1 or len(heads) != 1:
        return False
    (at,), (head,) = applied, heads
    return at.isdigit() and head.isdigit() and int(at) > int(head)


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    if revision == "head":
        applied = set(MigrationContext.configure(connection).get_current_heads())
        heads = shipped_heads()
        if applied == heads:
            return  # nothing to do: Alembic need not load every migration to say so
        if _ahead(applied, heads):
            log.warning(
                "migrations.schema_ahead",
                applied=sorted(applied),
                shipped=sorted(heads),
                hint="a newer release migrated this database; this release runs on it as is",
            )
            return
    command.upgrade(alembic_config(connection), revision)


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    """``PRAGMA foreign_keys`` on the driver's connection, outside any transaction (inside
    one SQLite ignores it)."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
        if not on:
            return
        cursor.execute("PRAGMA foreign_key_check")
        broken = cursor.fetchall()
    finally:
        cursor.close()
    if broken:
        raise RuntimeError(f"the migration left rows that break foreign keys: {broken[:5]}")


async def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations; concurrent callers (several starts at once) take turns.

    On SQLite, foreign keys are off while migrations run: a batch migration that
    rebuilds a table (adding a constraint does) drops the old one, and with foreign keys
    on, dropping a parent table deletes every row that cascades from it (every client's
    tokens, say). They are checked when the migrations are done."""
    async with database.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            async with conn.begin():
                await conn.run_sync(_upgrade, revision)
            return
        await conn.run_sync(_sqlite_foreign_keys, False)
        try:
            await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                await conn.run_sync(_upgrade, revision)
        finally:
            await conn.run_sync(_sqlite_foreign_keys, True)


@functools.cache
def shipped_heads() -> frozenset[str]:
    """The newest migration(s) this code ships; read once (Alembic loads every migration
    file to find them: a CLI command and a start would pay for it each time)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _current(connection: Connection) -> bool:
    applied = set(MigrationContext.configure(connection).get_current_heads())
    heads = shipped_heads()
    return applied == heads or _ahead(applied, heads)


async def schema_is_current(database: Database) -> bool:
    """True when every migration this code ships has been applied (a database a newer
    release migrated further is current too: expand/contract)."""
    async with database.engine.connect() as conn:
        return await conn.run_sync(_current)
