"""Triage's check of the shared cache (Redis, ``ONEPASS_REDIS_URL``)."""

from __future__ import annotations

import asyncio

from onepass.cache import RedisCache
from onepass.ops.severity import Finding, Severity
from onepass.ops.triage.report import CheckResult


async def check_redis(redis: RedisCache | None, within: float) -> CheckResult:
    """Redis down is sev2: requests go on, on each process's own cache (RedisCache)."""
    if redis is None:
        return CheckResult("redis", True, None, "not configured: each process caches alone")
    try:
        async with asyncio.timeout(within):
            answers = await redis.ping()
    except TimeoutError:
        answers = False
    if answers:
        return CheckResult("redis", True, True, "answers")
    return CheckResult(
        "redis",
        False,
        False,
        "does not answer",
        [
            Finding(
                Severity.SEV2,
                "Redis (ONEPASS_REDIS_URL) does not answer: logins, tokens and merges go on, "
                "each server process on its own cache (login throttling per process, "
                "canonical-user answers kept 5 s). Bring Redis back, then run "
                "`onepass cache invalidate-canonical --all` once.",
            )
        ],
    )
