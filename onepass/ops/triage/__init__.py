"""``onepass triage``: the playbook's first-line checks, and the severity they add up to.

Three kinds of checks, classified by the severity table (``ops/severity.py``):

- ``probes``: against the running server, over HTTP (``http``: an ``httpx.AsyncClient``
  whose ``base_url`` is the server's): ``GET /up``, the discovery document, the JWKS,
  and the token endpoint, ``rounds`` times each; their p95 latency is the sev2 latency
  check;
- ``database``: against the database (``session``): webhook deliveries failing across
  RPs, the dispatchers' liveness, the backlog, and the dead-letter queue per RP;
- ``cache``: the server's Redis, when it has one;
- ``config``: settings of this environment that no request needs but the playbook
  does (the escalation target), when triage is given the settings.

``report`` holds the thresholds, each check's result and the report they add up to.
The service takes the HTTP client, the session and a clock so that tests run it
against a real app and database with a frozen clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.cache import RedisCache
from onepass.clock import Clock
from onepass.ops.triage.cache import check_redis
from onepass.ops.triage.config import check_escalation
from onepass.ops.triage.database import database_checks, database_failed
from onepass.ops.triage.probes import http_checks
from onepass.ops.triage.report import CheckResult, Report, Thresholds, report_of
from onepass.settings import Settings

__all__ = ["CheckResult", "Report", "Thresholds", "triage"]


async def triage(
    http: httpx.AsyncClient,
    session: AsyncSession | None,
    clock: Clock,
    thresholds: Thresholds,
    *,
    database_problem: str | None = None,
    timer: Callable[[], float] = time.perf_counter,
    redis: RedisCache | None = None,
    settings: Settings | None = None,
) -> Report:
    """Run every check; ``session`` None (with ``database_problem`` saying why) skips
    the database checks and reports the database check as failed. ``redis``: the
    server's Redis (``ONEPASS_REDIS_URL``), when it has one. ``settings``: this
    environment's, for the configuration checks (none run without them)."""
    checks = await http_checks(http, thresholds, timer=timer)
    if session is None:
        checks.append(database_failed(database_problem or "no database session"))
    else:
        checks.extend(await database_checks(session, clock.now(), thresholds))
    checks.append(await check_redis(redis, thresholds.timeout))
    if settings is not None:
        checks.append(check_escalation(settings))
    return report_of(checks)
