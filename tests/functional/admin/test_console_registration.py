"""The admin console shows which applications registered themselves (Dynamic Client
Registration, RFC 7591) and how: with which initial access token, or by open
registration; those an operator registered say so. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx

from onepass.clock import FrozenClock
from onepass.operators.audit import Actor
from onepass.playbook import registration
from onepass.runtime import Runtime
from tests.factories import AdminInfo, make_client
from tests.functional.admin.test_console import signed_in


async def test_console_tells_dynamic_registrations_apart(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    issued = await registration.create_initial_token(
        rt, Actor.cli(), ttl=timedelta(hours=1), max_uses=None
    )
    response = await api.post(
        "/register",
        json={"client_name": "Self-registered", "grant_types": ["client_credentials"]},
        headers={"authorization": f"Bearer {issued['token']}"},
    )
    assert response.status_code == 201, response.text
    dynamic = response.json()["client_id"]
    operator = await make_client(rt, name="By hand")
    await signed_in(api, admin, clock)

    listing = (await api.get("/admin/applications")).text
    rows = {row.split("</tr>")[0] for row in listing.split("<tr>")[1:]}
    [dynamic_row] = [r for r in rows if dynamic in r]
    [operator_row] = [r for r in rows if operator.client_id in r]
    assert "registered dynamically" in dynamic_row
    assert "registered dynamically" not in operator_row

    page = (await api.get(f"/admin/applications/{dynamic}")).text
    assert f"dynamically, with initial access token {issued['id']}" in page
    page = (await api.get(f"/admin/applications/{operator.client_id}")).text
    assert "by an operator" in page


async def test_admin_api_says_how_a_client_was_registered(
    api: httpx.AsyncClient, rt: Runtime
) -> None:
    from tests.factories import make_admin
    from tests.functional.admin.test_admin_api import bearer

    operator = await make_admin(rt, "ops@example.com", scopes=["clients:read"])
    issued = await registration.create_initial_token(
        rt, Actor.cli(), ttl=timedelta(hours=1), max_uses=None
    )
    response = await api.post(
        "/register",
        json={"client_name": "Self-registered", "grant_types": ["client_credentials"]},
        headers={"authorization": f"Bearer {issued['token']}"},
    )
    client_id = response.json()["client_id"]
    operator_client = await make_client(rt, name="By hand")
    listed = await api.get("/api/v1/admin/clients", headers=bearer(operator.token))
    rows = {row["client_id"]: row for row in listed.json()["clients"]}
    assert rows[client_id]["registered_dynamically"] is True
    assert rows[client_id]["registration_source"] == "initial_access_token"
    assert rows[client_id]["initial_access_token_id"] == issued["id"]
    assert rows[operator_client.client_id]["registered_dynamically"] is False
    assert rows[operator_client.client_id]["registration_source"] is None
