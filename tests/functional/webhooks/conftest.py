"""Webhook tests: a real receiver on 127.0.0.1, loopback allowed, short timeouts and schedules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import create_pg_database, drop_pg_database, make_settings, require_postgres
from tests.webhook_helpers import Receiver

# Delays short enough that a test can let a schedule run out instead of faking time.
FAST = {
    "webhook_allow_private_targets": True,
    "webhook_timeout": 0.5,
    "webhook_lease_seconds": 5,
    "webhook_retry_schedule": "50ms,50ms",
    "webhook_poll_interval": 0.05,
}


@pytest.fixture
def settings(database_url: str, redis_url: str | None) -> Settings:
    return make_settings(database_url, redis_url, **FAST)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def pg_runtime() -> AsyncIterator[Runtime]:
    """A runtime on a fresh PostgreSQL database, for PostgreSQL-only tests."""
    url = await create_pg_database(require_postgres())
    runtime = Runtime.build(make_settings(url, None, **FAST))
    try:
        await prepare(runtime)
        yield runtime
    finally:
        await runtime.close()
        await drop_pg_database(url)
