"""The admin API: tokens and scopes, step-up with TOTP and single-use nonces, the
playbook's actions through it, the audit log, and bad input. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from onepass.accounts import totp
from onepass.accounts.models import User
from onepass.clock import FrozenClock
from onepass.identity.models import IdentityLink
from onepass.operators.models import AuditLogEntry
from onepass.runtime import Runtime
from onepass.webhooks.models import WebhookSigningKey
from tests.factories import AdminInfo, make_admin, make_user
from tests.webhook_helpers import Receiver, dispatch_once, enqueue, entry, make_webhook_app, status


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def code(admin: AdminInfo, clock: FrozenClock, steps_ahead: int = 0) -> str:
    return totp.code_at(admin.totp_secret, clock.timestamp() + 30 * steps_ahead)


async def step_up(
    api: httpx.AsyncClient, admin: AdminInfo, action: str, target: str, totp_code: str
) -> httpx.Response:
    return await api.post(
        "/api/v1/admin/step-up",
        json={"totp_code": totp_code, "action": action, "target": target},
        headers=bearer(admin.token),
    )


async def nonce_for(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock, action: str, target: str
) -> str:
    """A nonce from a fresh code: each call moves the clock to the next TOTP step."""
    clock.advance(30)
    response = await step_up(api, admin, action, target, code(admin, clock))
    assert response.status_code == 200, response.text
    return str(response.json()["action_request_nonce"])


async def dead_entry(rt: Runtime, receiver: Receiver, name: str = "rp") -> tuple[Any, int]:
    """An RP whose endpoint answers 400, and one of its webhooks, dead-lettered."""
    receiver.routes[f"/{name}"] = status(400, body=b"no such tenant")
    app = await make_webhook_app(rt, receiver.url(f"/{name}"), name=name)
    entry_id = await enqueue(rt, app.id)
    await dispatch_once(rt)
    assert (await entry(rt, entry_id)).dlq_at is not None
    return app, entry_id


async def audit_rows(rt: Runtime) -> list[AuditLogEntry]:
    async with rt.database.session() as session:
        return list(await session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)))


# -- tokens and scopes ----------------------------------------------------------------


async def test_whoami_names_the_administrator_and_scopes(
    api: httpx.AsyncClient, admin: AdminInfo
) -> None:
    response = await api.get("/api/v1/admin/whoami", headers=bearer(admin.token))
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == admin.email and body["totp_enrolled"] is True
    assert "webhooks:write" in body["scopes"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Basic b3BzOnNlY3JldA=="},
        {"authorization": "Bearer "},
        {"authorization": "Bearer opa_not-a-real-token"},
        {"authorization": "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"},
    ],
)
async def test_no_valid_token_is_401_invalid_token(
    api: httpx.AsyncClient, admin: AdminInfo, headers: dict[str, str]
) -> None:
    response = await api.get("/api/v1/admin/webhook_outbox", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expired_revoked_and_demoted_tokens_stop_working(
    api: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    from onepass.operators import service

    short = await make_admin(rt, "short@example.com", ttl=60)
    clock.advance(61)
    expired = await api.get("/api/v1/admin/whoami", headers=bearer(short.token))
    assert expired.status_code == 401 and "expired" in expired.json()["message"]

    revoked = await make_admin(rt, "revoked@example.com")
    async with rt.database.session() as session:
        tokens = await service.list_tokens(session)
        await service.revoke_token(session, clock, tokens[-1].id)
    response = await api.get("/api/v1/admin/whoami", headers=bearer(revoked.token))
    assert response.status_code == 401 and "revoked" in response.json()["message"]

    demoted = await make_admin(rt, "demoted@example.com")
    async with rt.database.session() as session:
        await session.execute(update(User).where(User.id == demoted.id).values(is_admin=False))
    response = await api.get("/api/v1/admin/whoami", headers=bearer(demoted.token))
    assert response.status_code == 401


async def test_a_missing_scope_is_403_and_audited(api: httpx.AsyncClient, rt: Runtime) -> None:
    reader = await make_admin(rt, "reader@example.com", scopes=("webhooks:read",))
    response = await api.get("/api/v1/admin/audit_log", headers=bearer(reader.token))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert "audit:read" in response.json()["message"]
    # A write scope is needed to ask for a step-up for a write action, too.
    response = await step_up(api, reader, "webhook_outbox.retry", "1", "123456")
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    denied = [r for r in await audit_rows(rt) if r.outcome == "denied"]
    assert [r.action for r in denied] == ["scope:audit:read", "scope:webhooks:write"]
    assert denied[0].actor == "admin:reader@example.com" and denied[0].via == "api"


# -- step-up ---------------------------------------------------------------------------


async def test_retry_needs_a_step_up_then_requeues_the_dead_entry(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app, entry_id = await dead_entry(rt, receiver)
    listed = await api.get(
        "/api/v1/admin/webhook_outbox",
        params={"status": "dead", "app": app.client_id},
        headers=bearer(admin.token),
    )
    assert [e["id"] for e in listed.json()["entries"]] == [entry_id]
    assert listed.json()["entries"][0]["last_status_code"] == 400

    without = await api.post(
        f"/api/v1/admin/webhook_outbox/{entry_id}/retry", headers=bearer(admin.token)
    )
    assert without.status_code == 403
    assert without.json()["error"] == "step_up_required"
    assert "/api/v1/admin/step-up" in without.json()["message"]
    assert (await entry(rt, entry_id)).dlq_at is not None  # nothing changed

    wrong = await step_up(api, admin, "webhook_outbox.retry", str(entry_id), "000000")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_totp"

    granted = await step_up(api, admin, "webhook_outbox.retry", str(entry_id), code(admin, clock))
    assert granted.status_code == 200
    body = granted.json()
    assert body["action"] == "webhook_outbox.retry" and body["target"] == str(entry_id)
    assert datetime.fromisoformat(body["expires_at"]) == clock.now() + timedelta(minutes=5)
    nonce = body["action_request_nonce"]

    retried = await api.post(
        f"/api/v1/admin/webhook_outbox/{entry_id}/retry",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert retried.status_code == 200, retried.text
    requeued = await entry(rt, entry_id)
    assert requeued.dlq_at is None and requeued.attempts == 0 and requeued.last_error is None
    assert requeued.enqueued_at == clock.now()

    again = await api.post(
        f"/api/v1/admin/webhook_outbox/{entry_id}/retry",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert again.status_code == 403 and "already used" in again.json()["message"]

    rows = [(r.action, r.outcome, r.target) for r in await audit_rows(rt)]
    assert ("webhook_outbox.retry", "ok", str(entry_id)) in rows
    assert ("step_up:webhook_outbox.retry", "denied", str(entry_id)) in rows
    assert rows.count(("webhook_outbox.retry", "denied", str(entry_id))) == 2


async def test_a_totp_code_is_accepted_once(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    first = await step_up(api, admin, "signing_keys.rotate", "jwks", code(admin, clock))
    assert first.status_code == 200
    replayed = await step_up(api, admin, "signing_keys.rotate", "jwks", code(admin, clock))
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_totp"
    # The previous step's code is older than the one used: refused as well.
    older = await step_up(api, admin, "signing_keys.rotate", "jwks", code(admin, clock, -1))
    assert older.status_code == 401
    # The next step's code (clock drift) is new: accepted.
    newer = await step_up(api, admin, "signing_keys.rotate", "jwks", code(admin, clock, 1))
    assert newer.status_code == 200


async def test_wrong_codes_are_throttled_per_administrator(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    for _ in range(rt.settings.admin_totp_max_failures):
        response = await step_up(api, admin, "signing_keys.rotate", "jwks", "111111")
        assert response.status_code == 401
    blocked = await step_up(api, admin, "signing_keys.rotate", "jwks", code(admin, clock))
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_attempts"
    assert int(blocked.headers["retry-after"]) > 0


async def test_a_nonce_is_bound_to_its_action_target_and_administrator(
    api: httpx.AsyncClient,
    rt: Runtime,
    admin: AdminInfo,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    app, first = await dead_entry(rt, receiver)
    second = await enqueue(rt, app.id)
    await dispatch_once(rt)
    nonce = await nonce_for(api, admin, clock, "webhook_outbox.retry", str(first))

    other_entry = await api.post(
        f"/api/v1/admin/webhook_outbox/{second}/retry",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert other_entry.status_code == 403
    assert f"issued for 'webhook_outbox.retry' on '{first}'" in other_entry.json()["message"]

    other_action = await api.post(
        f"/api/v1/admin/applications/{app.client_id}/replay_dlq",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert other_action.status_code == 403

    colleague = await make_admin(rt, "colleague@example.com")
    stolen = await api.post(
        f"/api/v1/admin/webhook_outbox/{first}/retry",
        json={"action_request_nonce": nonce},
        headers=bearer(colleague.token),
    )
    assert stolen.status_code == 403 and "unknown" in stolen.json()["message"]
    assert (await entry(rt, first)).dlq_at is not None
    assert (await entry(rt, second)).dlq_at is not None

    clock.advance(rt.settings.admin_step_up_ttl + 1)
    expired = await api.post(
        f"/api/v1/admin/webhook_outbox/{first}/retry",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    assert (await entry(rt, first)).dlq_at is not None


async def test_a_nonce_asked_for_by_client_id_works_for_the_same_application(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app, entry_id = await dead_entry(rt, receiver)
    nonce = await nonce_for(api, admin, clock, "webhook_outbox.replay_dlq", app.client_id)
    replayed = await api.post(
        f"/api/v1/admin/applications/{app.id}/replay_dlq",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["entry_ids"] == [entry_id]


async def test_two_requests_racing_with_one_nonce_act_once(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    await make_user(rt, "a@example.com")
    await make_user(rt, "b@example.com")
    nonce = await nonce_for(api, admin, clock, "cache.invalidate_canonical", "*")
    responses = await asyncio.gather(
        *(
            api.post(
                "/api/v1/admin/cache/invalidate_canonical",
                json={"all": True, "action_request_nonce": nonce},
                headers=bearer(admin.token),
            )
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 403, 403, 403, 403]
    done = [r for r in await audit_rows(rt) if r.action == "cache.invalidate_canonical"]
    assert [r.outcome for r in done].count("ok") == 1


# -- the playbook through the API ------------------------------------------------------


async def test_dead_counts_and_entry_detail(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, receiver: Receiver
) -> None:
    app, entry_id = await dead_entry(rt, receiver)
    counts = await api.get("/api/v1/admin/webhook_outbox/dead_counts", headers=bearer(admin.token))
    assert counts.json() == [
        {"oauth_application_id": app.id, "client_id": app.client_id, "dead_count": 1}
    ]
    detail = await api.get(f"/api/v1/admin/webhook_outbox/{entry_id}", headers=bearer(admin.token))
    attempts = detail.json()["delivery_attempts"]
    assert len(attempts) == 1 and attempts[0]["status_code"] == 400
    assert attempts[0]["response_body"] == "no such tenant"
    missing = await api.get("/api/v1/admin/webhook_outbox/999999", headers=bearer(admin.token))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_replay_dlq_dry_run_counts_without_a_step_up(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app, entry_id = await dead_entry(rt, receiver)
    dry = await api.post(
        f"/api/v1/admin/applications/{app.client_id}/replay_dlq",
        json={"dry_run": True},
        headers=bearer(admin.token),
    )
    assert dry.status_code == 200
    assert dry.json()["matched"] == 1 and dry.json()["replayed"] == 0
    assert (await entry(rt, entry_id)).dlq_at is not None
    nonce = await nonce_for(api, admin, clock, "webhook_outbox.replay_dlq", app.client_id)
    done = await api.post(
        f"/api/v1/admin/applications/{app.client_id}/replay_dlq",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert done.json()["replayed"] == 1
    assert (await entry(rt, entry_id)).dlq_at is None


async def test_merge_through_the_api_is_recorded_with_its_administrator(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    source = await make_user(rt, "old@example.com")
    target = await make_user(rt, "new@example.com")
    nonce = await nonce_for(api, admin, clock, "users.merge", "old@example.com->new@example.com")
    merged = await api.post(
        "/api/v1/admin/users/merge",
        json={
            "source": str(source.id),
            "target": target.sub,
            "reason": "duplicate signup",
            "action_request_nonce": nonce,
        },
        headers=bearer(admin.token),
    )
    assert merged.status_code == 200, merged.text
    assert (merged.json()["source_id"], merged.json()["target_id"]) == (source.id, target.id)
    async with rt.database.session() as session:
        link = await session.scalar(select(IdentityLink))
    assert link is not None and link.actor == f"admin:{admin.email}"
    record = [r for r in await audit_rows(rt) if r.action == "users.merge"]
    assert record[0].outcome == "ok" and record[0].target == f"{source.id}->{target.id}"
    assert record[0].actor_user_id == admin.id

    # Merging it again is refused by the merge service: 409 with its message, audited.
    nonce = await nonce_for(api, admin, clock, "users.merge", f"{source.id}->{target.id}")
    again = await api.post(
        "/api/v1/admin/users/merge",
        json={"source": str(source.id), "target": str(target.id), "action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert "already" in again.json()["message"]
    assert [r.outcome for r in await audit_rows(rt) if r.action == "users.merge"] == [
        "ok",
        "failed",
    ]


async def test_merge_through_the_api_refuses_administrators_either_way(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    user = await make_user(rt, "ada@example.com")
    for source, target in ((admin.id, user.id), (user.id, admin.id)):
        nonce = await nonce_for(api, admin, clock, "users.merge", f"{source}->{target}")
        refused = await api.post(
            "/api/v1/admin/users/merge",
            json={"source": str(source), "target": str(target), "action_request_nonce": nonce},
            headers=bearer(admin.token),
        )
        assert refused.status_code == 409 and refused.json()["error"] == "conflict"
        assert f"user {admin.id}" in refused.json()["message"]
        assert "is an administrator" in refused.json()["message"]
    async with rt.database.session() as session:
        assert await session.scalar(select(IdentityLink)) is None


async def test_compromise_and_rotation_through_the_api(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app = await make_webhook_app(rt, receiver.url("/rp"))
    target = f"{app.client_id}/{app.kid}"
    nonce = await nonce_for(api, admin, clock, "webhook_keys.compromise", target)
    response = await api.post(
        f"/api/v1/admin/applications/{app.client_id}/webhook_keys/{app.kid}/compromise",
        json={"action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revoked_kid"] == app.kid and body["secret"].startswith("whsec_")
    async with rt.database.session() as session:
        old = await session.scalar(
            select(WebhookSigningKey).where(WebhookSigningKey.kid == app.kid)
        )
    assert old is not None and old.revoked_at is not None

    nonce = await nonce_for(api, admin, clock, "webhook_keys.rotate", app.client_id)
    rotated = await api.post(
        f"/api/v1/admin/applications/{app.client_id}/webhook_keys/rotate",
        json={"action_request_nonce": nonce, "grace": "1h"},
        headers=bearer(admin.token),
    )
    assert rotated.status_code == 200
    assert rotated.json()["retired_kids"] == [body["kid"]]

    nonce = await nonce_for(api, admin, clock, "signing_keys.rotate", "jwks")
    jwks = await api.post(
        "/api/v1/admin/signing_keys/rotate",
        json={"action_request_nonce": nonce, "force": True},
        headers=bearer(admin.token),
    )
    assert jwks.status_code == 200
    assert {r["alg"] for r in jwks.json()} == {"RS256", "ES256"}
    nonce = await nonce_for(api, admin, clock, "signing_keys.rotate", "jwks")
    one = await api.post(
        "/api/v1/admin/signing_keys/rotate",
        json={"action_request_nonce": nonce, "force": True, "algs": ["ES256"]},
        headers=bearer(admin.token),
    )
    assert one.status_code == 200 and [r["alg"] for r in one.json()] == ["ES256"]
    nonce = await nonce_for(api, admin, clock, "signing_keys.rotate", "jwks")
    refused = await api.post(
        "/api/v1/admin/signing_keys/rotate",
        json={"action_request_nonce": nonce, "force": True, "algs": ["HS256"]},
        headers=bearer(admin.token),
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert "'HS256' is not a signing algorithm of 1pass" in refused.json()["message"]
    actions = {(r.action, r.outcome) for r in await audit_rows(rt)}
    assert {
        ("webhook_keys.compromise", "ok"),
        ("webhook_keys.rotate", "ok"),
        ("signing_keys.rotate", "ok"),
    } <= actions


async def test_audit_log_lists_newest_first_and_pages(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    for _ in range(3):
        await nonce_for(api, admin, clock, "signing_keys.rotate", "jwks")
    page = await api.get(
        "/api/v1/admin/audit_log", params={"limit": 2}, headers=bearer(admin.token)
    )
    ids = [e["id"] for e in page.json()["entries"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    rest = await api.get(
        "/api/v1/admin/audit_log",
        params={"before_id": page.json()["next_before_id"]},
        headers=bearer(admin.token),
    )
    assert all(e["id"] < ids[-1] for e in rest.json()["entries"])
    assert all(e["action"] == "step_up:signing_keys.rotate" for e in page.json()["entries"])


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        (b"{not json", "application/json", 400, "invalid_request"),
        (b"[1, 2]", "application/json", 400, "invalid_request"),
        (b"totp_code=1", "application/x-www-form-urlencoded", 415, "invalid_request"),
        (
            b'{"action": "nope", "target": "x", "totp_code": "1"}',
            "application/json",
            400,
            "invalid_request",
        ),
        (
            b'{"action": "webhook_outbox.retry", "target": "abc", "totp_code": "1"}',
            "application/json",
            400,
            "invalid_request",
        ),
        (
            b'{"action": "users.merge", "target": "1->", "totp_code": "1"}',
            "application/json",
            400,
            "invalid_request",
        ),
        (
            b'{"action": 5, "target": "x", "totp_code": "1"}',
            "application/json",
            400,
            "invalid_request",
        ),
        (b'{"target": "x", "totp_code": "1"}', "application/json", 400, "invalid_request"),
        (
            b'{"action": "webhook_outbox.replay_dlq", "target": "no-such-app", "totp_code": "1"}',
            "application/json",
            404,
            "not_found",
        ),
        (b"x" * 20000, "application/json", 413, "invalid_request"),
    ],
)
async def test_bad_step_up_requests_get_clear_errors(
    api: httpx.AsyncClient,
    admin: AdminInfo,
    body: bytes,
    content_type: str,
    status: int,
    error: str,
) -> None:
    response = await api.post(
        "/api/v1/admin/step-up",
        content=body,
        headers={**bearer(admin.token), "content-type": content_type},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/api/v1/admin/webhook_outbox", {"status": "lost"}),
        ("GET", "/api/v1/admin/webhook_outbox", {"limit": "0"}),
        ("GET", "/api/v1/admin/webhook_outbox", {"limit": "many"}),
        ("GET", "/api/v1/admin/webhook_outbox/abc", {}),
        ("POST", "/api/v1/admin/webhook_outbox/abc/retry", {}),
        ("GET", "/api/v1/admin/audit_log", {"before_id": "-1"}),
    ],
)
async def test_bad_parameters_are_400_not_500(
    api: httpx.AsyncClient, admin: AdminInfo, method: str, path: str, params: dict[str, str]
) -> None:
    response = await api.request(method, path, params=params, headers=bearer(admin.token))
    assert response.status_code in (400, 404, 422), response.text
    assert response.status_code < 500
    assert "error" in response.json()


async def test_bad_action_bodies_are_refused_before_any_step_up_is_spent(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock, receiver: Receiver
) -> None:
    app, _ = await dead_entry(rt, receiver)
    for body, message in [
        ({"since": "yesterday"}, "since"),
        ({"event_type": "nope.nope"}, "event"),
        ({"dry_run": "yes"}, "dry_run"),
    ]:
        response = await api.post(
            f"/api/v1/admin/applications/{app.client_id}/replay_dlq",
            json=body,
            headers=bearer(admin.token),
        )
        assert response.status_code == 400, response.text
        assert message in response.json()["message"]
    response = await api.post(
        "/api/v1/admin/cache/invalidate_canonical",
        json={"user": "1", "all": True},
        headers=bearer(admin.token),
    )
    assert response.status_code == 400


async def test_a_nonce_works_only_through_the_token_that_asked_for_it(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    from datetime import timedelta as _td

    from onepass.operators import service

    async with rt.database.session() as session:
        user = await session.get(User, admin.id)
        assert user is not None
        second = await service.create_token(
            session, rt.hasher, clock, user, ["users:write"], _td(hours=1), max_ttl=_td(days=1)
        )
    nonce = await nonce_for(api, admin, clock, "cache.invalidate_canonical", "*")
    other = await api.post(
        "/api/v1/admin/cache/invalidate_canonical",
        json={"all": True, "action_request_nonce": nonce},
        headers=bearer(second.token),
    )
    assert other.status_code == 403
    assert "another admin token" in other.json()["message"]
    same = await api.post(
        "/api/v1/admin/cache/invalidate_canonical",
        json={"all": True, "action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert same.status_code == 200
