"""Migrations build the schema the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

# Every domain's models, as the migration environment (onepass/db/migrations/env.py)
# imports them, so that the metadata compared is the whole schema.
import onepass.accounts.models
import onepass.clients.models
import onepass.identity.models
import onepass.keys.models
import onepass.mail.models
import onepass.oauth.models
import onepass.operators.models
import onepass.ops.models
import onepass.webhooks.models  # noqa: F401 (each import registers its tables)
from onepass.db import Database
from onepass.db.base import Base
from onepass.db.migrate import schema_is_current, upgrade
from tests.conftest import create_pg_database, drop_pg_database, require_postgres


async def _check_fresh_database(url: str) -> None:
    database = Database(url)
    try:
        assert not await schema_is_current(database)
        await upgrade(database)
        await upgrade(database)  # idempotent
        assert await schema_is_current(database)
        async with database.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        await database.close()


async def test_migrations_match_models_on_sqlite(tmp_path) -> None:
    await _check_fresh_database(f"sqlite:///{tmp_path}/fresh.db")


async def test_migrations_match_models_on_postgresql() -> None:
    url = await create_pg_database(require_postgres())
    try:
        await _check_fresh_database(url)
    finally:
        await drop_pg_database(url)
