"""Apply Alembic migrations (``onepass db upgrade``, and on every ``onepass serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from onepass.db.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: several processes starting at once take turns migrating.
_PG_MIGRATION_LOCK = 0x1BA55


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), revision)


async def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations; concurrent callers (several starts at once) take turns."""
    async with database.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            await conn.run_sync(_upgrade, revision)


def _current(connection: Connection) -> bool:
    applied = set(MigrationContext.configure(connection).get_current_heads())
    return applied == set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def schema_is_current(database: Database) -> bool:
    """True when every migration has been applied."""
    async with database.engine.connect() as conn:
        return await conn.run_sync(_current)
