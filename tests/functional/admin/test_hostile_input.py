"""Hostile input to the admin API and console (ids past 64 bits, NUL bytes, odd
digits, far dates and durations) is a 4xx: not a 500 on SQLite, nor a 503 "database
unavailable" on PostgreSQL, and a step-up refused for its target spends no code.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from onepass.accounts import totp
from onepass.app import OnePass, create_app
from onepass.clock import FrozenClock
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import AdminInfo, make_user
from tests.functional.admin.test_admin_api import bearer, step_up
from tests.functional.admin.test_console import signed_in

HUGE = "9" * 25  # past 64 bits


@pytest.fixture
async def api(rt: Runtime, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    """The app as a server runs it: an unexpected exception is answered 500, not raised."""
    application: OnePass = create_app(rt.settings, clock)
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client


def code_now(admin: AdminInfo, clock: FrozenClock) -> str:
    return totp.code_at(admin.totp_secret, clock.timestamp())


@pytest.mark.parametrize(
    "method,path,params",
    [
        ("GET", f"/api/v1/admin/webhook_outbox/{HUGE}", None),
        ("GET", "/api/v1/admin/webhook_outbox", {"after_id": HUGE}),
        ("GET", "/api/v1/admin/webhook_outbox", {"app": HUGE}),
        ("GET", "/api/v1/admin/webhook_outbox", {"app": "a\x00b"}),
        ("GET", "/api/v1/admin/audit_log", {"before_id": HUGE}),
        ("POST", f"/api/v1/admin/webhook_outbox/{HUGE}/retry", None),
        ("POST", f"/api/v1/admin/applications/{HUGE}/replay_dlq", None),
        ("POST", "/api/v1/admin/applications/a%00b/replay_dlq", None),
        ("POST", f"/api/v1/admin/applications/{HUGE}/webhook_keys/rotate", None),
    ],
)
async def test_admin_api_out_of_range_or_nul_ids_are_4xx(
    api: httpx.AsyncClient,
    admin: AdminInfo,
    method: str,
    path: str,
    params: dict[str, str] | None,
) -> None:
    response = await api.request(
        method,
        path,
        params=params,
        headers=bearer(admin.token),
        json={} if method == "POST" else None,
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/admin/users/merge", {"source": HUGE, "target": "b@example.com"}),
        ("/api/v1/admin/users/merge", {"source": "a\x00", "target": "b@example.com"}),
        ("/api/v1/admin/users/merge", {"source": "²", "target": "b@example.com"}),
        ("/api/v1/admin/users/merge", {"source": "1", "target": "2", "reason": "x\x00"}),
        ("/api/v1/admin/applications/rp/replay_dlq", {"since": "9999-12-31T23:00:00-05:00"}),
        ("/api/v1/admin/applications/rp/webhook_keys/rotate", {"grace": "99999999999d"}),
        ("/api/v1/admin/applications/rp/webhook_keys/rotate", {"grace": "3000000d"}),
    ],
)
async def test_admin_api_hostile_body_values_are_4xx(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, path: str, body: dict[str, Any]
) -> None:
    await make_user(rt, "b@example.com")
    response = await api.post(
        path, json={**body, "action_request_nonce": "arn_x"}, headers=bearer(admin.token)
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.status_code != 409, response.text  # "invalid literal for int()"


@pytest.mark.parametrize(
    "action,target",
    [
        ("webhook_outbox.retry", "9" * 400),
        ("users.merge", f"{HUGE}->1"),
        ("cache.invalidate_canonical", "a\x00"),
        ("webhook_keys.rotate", "x\x00"),
        ("webhook_keys.compromise", "x/" + "k" * 400),
    ],
)
async def test_step_up_with_hostile_targets_is_4xx_and_spends_no_code(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock, action: str, target: str
) -> None:
    response = await step_up(api, admin, action, target, code_now(admin, clock))
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    # The code was not used up on a refused target.
    retry = await step_up(api, admin, "signing_keys.rotate", "jwks", code_now(admin, clock))
    assert retry.status_code == 200, retry.text


@pytest.mark.parametrize(
    "path",
    [
        f"/admin/applications/{HUGE}/replay",
        f"/admin/webhooks?app={HUGE}",
        "/admin/webhooks?app=%C2%B2",
    ],
)
async def test_console_out_of_range_application_ids_are_404(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock, path: str
) -> None:
    await signed_in(api, admin, clock)
    response = await api.get(path)
    assert response.status_code == 404, (response.status_code, response.text[:300])
