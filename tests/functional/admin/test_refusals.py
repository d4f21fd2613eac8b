"""A refusal is an answer, a bug is a 500: the admin API answers a domain's refusal
(``onepass.refusals``) with its error and status, and anything else (a plain
``ValueError`` from a procedure) with a 500 and its traceback in the log, never a tidy
409. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.keys.service import RotationTooSoon
from onepass.operators.models import AuditLogEntry
from onepass.playbook import keys as keys_playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import AdminInfo
from tests.functional.admin.test_admin_api import bearer, nonce_for


@pytest.fixture
async def api(rt: Runtime, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app as a server runs it: an unexpected exception is answered 500, not raised."""
    application: OnePass = create_app(rt.settings, clock)
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client


async def rotate(api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock) -> httpx.Response:
    nonce = await nonce_for(api, admin, clock, "signing_keys.rotate", "jwks")
    return await api.post(
        "/api/v1/admin/signing_keys/rotate",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )


async def test_a_domain_refusal_is_its_error_and_audited(
    api: httpx.AsyncClient,
    rt: Runtime,
    admin: AdminInfo,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(*_args: object, **_kwargs: object) -> None:
        raise RotationTooSoon("the next key was published too recently")

    monkeypatch.setattr(keys_playbook, "rotate_signing_keys", refused)
    response = await rotate(api, admin, clock)
    assert response.status_code == 409, response.text
    assert response.json() == {
        "error": "conflict",
        "message": "the next key was published too recently",
    }
    async with rt.database.session() as session:
        outcomes = list(
            await session.scalars(
                select(AuditLogEntry.outcome).where(AuditLogEntry.action == "signing_keys.rotate")
            )
        )
    assert outcomes == ["failed"]


async def test_a_bug_in_a_procedure_is_a_500_not_a_refusal(
    api: httpx.AsyncClient,
    admin: AdminInfo,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("invalid literal for int() with base 10: 'x'")

    monkeypatch.setattr(keys_playbook, "rotate_signing_keys", broken)
    response = await rotate(api, admin, clock)
    assert response.status_code == 500, response.text
    assert response.json()["error"] == "server_error"
    assert "invalid literal" not in response.text
