"""Health checks behind ``GET /up`` (and, later, ``onepass triage``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text

from onepass.db import Database
from onepass.keys import service as keys

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
        async with asyncio.timeout(CHECK_TIMEOUT), database.session() as session:
            active = await keys.active_algorithms(session)
    except Exception as exc:
        return Check("signing_keys", False, f"cannot be read: {type(exc).__name__}")
    missing = sorted(required - active)
    if missing:
        return Check("signing_keys", False, f"no active key for {', '.join(missing)}")
    return Check("signing_keys", True, "ok")


async def run_checks(database: Database, required_algs: set[str]) -> list[Check]:
    db = await check_database(database)
    if not db.ok:
        return [db, Check("signing_keys", False, "not checked: database unreachable")]
    return [db, await check_signing_keys(database, required_algs)]
