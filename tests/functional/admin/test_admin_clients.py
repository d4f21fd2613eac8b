"""The admin API's clients: reads with ``clients:read``; update, rotate the secret,
disable, enable and delete behind a step-up naming the application; bad input as
``{"error", "message"}``; the whole of it in ``/openapi.json``. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from onepass.clock import FrozenClock
from onepass.operators.models import AuditLogEntry
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, AdminInfo, make_admin, make_client, make_rp
from tests.functional.admin.test_admin_api import bearer, nonce_for

CLIENT_SCOPES = ("clients:read", "clients:write")


@pytest.fixture
async def operator(rt: Runtime) -> AdminInfo:
    return await make_admin(rt, "clients-ops@example.com", scopes=CLIENT_SCOPES)


async def act(
    api: httpx.AsyncClient,
    who: AdminInfo,
    clock: FrozenClock,
    action: str,
    target: str,
    path: str,
    body: dict[str, Any] | None = None,
    method: str = "POST",
) -> httpx.Response:
    nonce = await nonce_for(api, who, clock, action, target)
    return await api.request(
        method,
        path,
        json={**(body or {}), "action_request_nonce": nonce},
        headers=bearer(who.token),
    )


async def test_list_and_show_need_clients_read_and_never_show_a_secret(
    api: httpx.AsyncClient, rt: Runtime, operator: AdminInfo, admin: AdminInfo
) -> None:
    rp = await make_rp(rt)
    listed = await api.get("/api/v1/admin/clients", headers=bearer(operator.token))
    assert listed.status_code == 200
    [row] = listed.json()["clients"]
    assert row["client_id"] == rp.client_id and row["disabled"] is False
    assert "client_secret" not in row and "client_secret_hash" not in row
    assert rp.client_secret not in listed.text
    for ref in (rp.client_id, str(rp.id)):
        shown = await api.get(f"/api/v1/admin/clients/{ref}", headers=bearer(operator.token))
        assert shown.json() == row
    missing = await api.get("/api/v1/admin/clients/nope", headers=bearer(operator.token))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    # The default test administrator's token has no clients:* scope.
    refused = await api.get("/api/v1/admin/clients", headers=bearer(admin.token))
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"


async def test_update_needs_a_step_up_naming_the_client_and_is_audited(
    api: httpx.AsyncClient, rt: Runtime, operator: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    other = await make_rp(rt, name="other")
    path = f"/api/v1/admin/clients/{rp.client_id}/update"
    change = {"add_redirect_uris": ["https://rp.example/two"], "client_name": "renamed"}
    without = await api.post(path, json=change, headers=bearer(operator.token))
    assert without.status_code == 403 and without.json()["error"] == "step_up_required"

    # A nonce for another application does not serve this one.
    foreign = await nonce_for(api, operator, clock, "clients.update", other.client_id)
    refused = await api.post(
        path, json={**change, "action_request_nonce": foreign}, headers=bearer(operator.token)
    )
    assert refused.status_code == 403

    # A nonce asked for by internal id serves the client_id (canonical target).
    done = await act(api, operator, clock, "clients.update", str(rp.id), path, change)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["client_name"] == "renamed"
    assert body["redirect_uris"] == [REDIRECT_URI, "https://rp.example/two"]
    async with rt.database.session() as session:
        row = await session.scalar(
            select(AuditLogEntry).where(
                AuditLogEntry.action == "clients.update", AuditLogEntry.outcome == "ok"
            )
        )
    assert row is not None and row.target == rp.client_id
    assert row.detail == {"changed": ["client_name", "redirect_uris"]}


async def test_update_sets_and_removes_the_policy_and_terms_urls(
    api: httpx.AsyncClient, rt: Runtime, operator: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    path = f"/api/v1/admin/clients/{rp.client_id}/update"
    change = {"policy_uri": "https://rp.example/privacy", "tos_uri": "https://rp.example/terms"}
    done = await act(api, operator, clock, "clients.update", rp.client_id, path, change)
    assert done.status_code == 200, done.text
    assert done.json()["policy_uri"] == "https://rp.example/privacy"
    shown = await api.get(f"/api/v1/admin/clients/{rp.client_id}", headers=bearer(operator.token))
    assert shown.json()["tos_uri"] == "https://rp.example/terms"
    removed = await act(
        api, operator, clock, "clients.update", rp.client_id, path, {"policy_uri": ""}
    )
    assert removed.json()["policy_uri"] is None
    assert removed.json()["tos_uri"] == "https://rp.example/terms"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"add_redirect_uris": "https://rp.example/x"}, '"add_redirect_uris" must be a list'),
        ({"add_redirect_uris": ["https://rp.example/x#f"]}, "fragment"),
        ({"grant_types": ["password"]}, "unsupported grant type"),
        ({"webhook_url": "ftp://rp.example/hook"}, "webhook URL"),
        ({"add_redirect_uris": ["http://[::1"]}, "not a valid URL"),
        ({"first_party": "yes"}, '"first_party" must be true or false'),
        ({"webhook_events": ["client.updated"]}, "needs --webhook-url"),
        ({"client_name": "x" * 501}, '"client_name" must be a string'),
        ({"policy_uri": "ftp://rp.example/privacy"}, "policy URI"),
        ({"tos_uri": "rp.example/terms"}, "terms URI"),
        ({"authorization_signed_response_alg": "HS256"}, "must be one of"),
        ({"authorization_signed_response_alg": "PS256"}, "has no signing key"),
    ],
)
async def test_update_with_bad_input_is_400_with_the_reason(
    api: httpx.AsyncClient,
    rt: Runtime,
    operator: AdminInfo,
    clock: FrozenClock,
    body: dict[str, Any],
    says: str,
) -> None:
    rp = await make_rp(rt)
    path = f"/api/v1/admin/clients/{rp.client_id}/update"
    answer = await act(api, operator, clock, "clients.update", rp.client_id, path, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert says in answer.json()["message"]


async def test_update_sets_the_jarm_signing_alg_and_returns_to_the_default(
    api: httpx.AsyncClient, rt: Runtime, operator: AdminInfo, clock: FrozenClock
) -> None:
    rp = await make_rp(rt)
    path = f"/api/v1/admin/clients/{rp.client_id}/update"
    body = {"authorization_signed_response_alg": "ES256"}
    done = await act(api, operator, clock, "clients.update", rp.client_id, path, body)
    assert done.status_code == 200, done.text
    assert done.json()["authorization_signed_response_alg"] == "ES256"
    body = {"authorization_signed_response_alg": ""}
    back = await act(api, operator, clock, "clients.update", rp.client_id, path, body)
    assert back.json()["authorization_signed_response_alg"] == "RS256"


async def test_empty_update_is_400(
    api: httpx.AsyncClient, rt: Runtime, operator: AdminInfo
) -> None:
    rp = await make_rp(rt)
    answer = await api.post(
        f"/api/v1/admin/clients/{rp.client_id}/update", json={}, headers=bearer(operator.token)
    )
    assert answer.status_code == 400 and "nothing to change" in answer.json()["message"]


async def test_rotate_secret_disable_enable_delete_through_the_api(
    api: httpx.AsyncClient, rt: Runtime, operator: AdminInfo, clock: FrozenClock
) -> None:
    client = await make_client(rt)
    base = f"/api/v1/admin/clients/{client.client_id}"
    rotated = await act(
        api,
        operator,
        clock,
        "clients.rotate_secret",
        client.client_id,
        f"{base}/rotate_secret",
        {"grace": "1h"},
    )
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert set(body) == {"client_id", "client_secret", "previous_secret_expires_at"}
    assert body["previous_secret_expires_at"] is not None
    too_long = await act(
        api,
        operator,
        clock,
        "clients.rotate_secret",
        client.client_id,
        f"{base}/rotate_secret",
        {"grace": "31d"},
    )
    assert too_long.status_code == 400 and "30d" in too_long.json()["message"]

    disabled = await act(
        api, operator, clock, "clients.disable", client.client_id, f"{base}/disable"
    )
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    await asyncio.sleep(rt.settings.client_cache_ttl + 0.1)
    token = await api.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, body["client_secret"]),
    )
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"

    enabled = await act(api, operator, clock, "clients.enable", client.client_id, f"{base}/enable")
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False

    deleted = await act(api, operator, clock, "clients.delete", client.client_id, f"{base}/delete")
    assert deleted.json() == {"id": client.id, "client_id": client.client_id, "deleted": True}
    gone = await api.get(base, headers=bearer(operator.token))
    assert gone.status_code == 404


async def test_openapi_documents_the_client_routes_bodies_and_answers(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    update = paths["/api/v1/admin/clients/{app}/update"]["post"]
    schema = update["requestBody"]["content"]["application/json"]["schema"]
    assert {"add_redirect_uris", "grant_types", "webhook_url", "action_request_nonce"} <= set(
        schema["properties"]
    )
    answer = update["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["$ref"].endswith("/UpdatedClient")
    assert "disabled" in document["components"]["schemas"]["ClientOut"]["properties"]
    for verb in ("rotate_secret", "disable", "enable", "delete"):
        assert "post" in paths[f"/api/v1/admin/clients/{{app}}/{verb}"]
