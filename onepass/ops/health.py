"""Health checks behind ``GET /up`` (and, later, ``onepass triage``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text

from onepass.db import Database
from onepass.keys import service as keys
from onepass.keys.keyring import KeyRing
from onepass.release import Release, schema_state

CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def check_database(database: Database) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", False, f"unreachable: {type(exc).__name__}")
    return Check("database", True, "ok")


async def check_signing_keys(database: Database, required: set[str]) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), database.session(readonly=True) as session:
            active = await keys.active_algorithms(session)
    except Exception as exc:
        return Check("signing_keys", False, f"cannot be read: {type(exc).__name__}")
    missing = sorted(required - active)
    if missing:
        return Check("signing_keys", False, f"no active key for {', '.join(missing)}")
    return Check("signing_keys", True, "ok")


def check_key_ring(keyring: KeyRing, required: set[str]) -> Check:
    """What this process signs with: every needed key loaded, and not stale.

    A process whose refreshes keep failing would keep signing with a key that the
    rest of the fleet has rotated away from; after a while that is unhealthy.
    """
    missing = sorted(alg for alg in required if not keyring.has_signer(alg))
    if missing:
        return Check(
            "key_ring", False, f"this process holds no active key for {', '.join(missing)}"
        )
    age = keyring.staleness()
    limit = max(30.0, 10 * keyring.refresh_interval)
    if age is None or age > limit:
        return Check("key_ring", False, f"keys not refreshed for over {limit:.0f}s")
    return Check("key_ring", True, "ok")


async def run_checks(database: Database, keyring: KeyRing, required_algs: set[str]) -> list[Check]:
    db = await check_database(database)
    if not db.ok:
        keys_check = Check("signing_keys", False, "not checked: database unreachable")
    else:
        keys_check = await check_signing_keys(database, required_algs)
    return [db, keys_check, check_key_ring(keyring, required_algs)]


async def applied_revision(database: Database) -> str | None:
    """The migration the database is at (Alembic's ``alembic_version``)."""
    async with asyncio.timeout(CHECK_TIMEOUT), database.engine.connect() as conn:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def check_schema(database: Database, release: Release) -> Check:
    try:
        applied = await applied_revision(database)
    except Exception as exc:
        return Check("schema", False, f"cannot be read: {type(exc).__name__}")
    ok, detail = schema_state(applied, release.revision)
    return Check("schema", ok, detail)


async def run_readiness(
    database: Database, keyring: KeyRing, required_algs: set[str], release: Release, draining: bool
) -> list[Check]:
    """``/readyz``: this process may take traffic. The database answers at a schema this
    release runs on, the process holds its signing keys, and it is not shutting down."""
    db = await check_database(database)
    schema = (
        await check_schema(database, release)
        if db.ok
        else Check("schema", False, "not checked: database unreachable")
    )
    shutdown = Check("shutdown", not draining, "draining" if draining else "serving")
    return [db, schema, check_key_ring(keyring, required_algs), shutdown]
