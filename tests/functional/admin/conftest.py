"""What the admin suites share: a frozen clock, a runtime and the app on it, an
administrator with TOTP and a token, and a webhook receiver. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import delete

from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.keys.models import SigningKey
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER
from tests.factories import AdminInfo, make_admin
from tests.webhook_helpers import Receiver

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def rt(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(
        settings.model_copy(update={"webhook_allow_private_targets": True}), clock
    )
    # The signing keys made on this clock (the database's were made at the real time,
    # which is after START: rotating them would be "too soon").
    async with runtime.database.session() as session:
        await session.execute(delete(SigningKey))
    await prepare(runtime)
    yield runtime
    await runtime.close()


@pytest.fixture
async def api(rt: Runtime, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the frozen clock, over HTTP (the admin API and the console alike)."""
    application: OnePass = create_app(rt.settings, clock)
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client


@pytest.fixture
async def admin(rt: Runtime) -> AdminInfo:
    return await make_admin(rt)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()
