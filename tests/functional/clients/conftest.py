"""What the client-management suites share: a frozen clock, a runtime that allows
webhook receivers on loopback, the app on both, and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER
from tests.webhook_helpers import Receiver


@pytest.fixture
def clock() -> FrozenClock:
    # The real time, frozen: login cookies and webhook timestamps are checked against it.
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def rt(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(
        settings.model_copy(update={"webhook_allow_private_targets": True}), clock
    )
    await prepare(runtime)
    yield runtime
    await runtime.close()


@pytest.fixture
async def served(rt: Runtime, clock: FrozenClock) -> AsyncIterator[OnePass]:
    application = create_app(rt.settings, clock)
    async with application.api.router.lifespan_context(application.api):
        yield application


@pytest.fixture
async def web(served: OnePass) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=served)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()
