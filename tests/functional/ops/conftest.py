"""Operations tests: real app and database; webhooks to a real receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from onepass.settings import Settings
from tests.conftest import make_settings
from tests.webhook_helpers import Receiver

OPS_SETTINGS = {
    "webhook_allow_private_targets": True,
    "webhook_timeout": 0.5,
    "webhook_lease_seconds": 5,
    "webhook_retry_schedule": "50ms,50ms",
    "webhook_poll_interval": 0.05,
    "status_cache_ttl": 0,
}


@pytest.fixture
def settings(database_url: str, redis_url: str | None) -> Settings:
    return make_settings(database_url, redis_url, **OPS_SETTINGS)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()
