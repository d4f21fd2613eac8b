"""The admin API's users and administrators: reads with users:read / admins:read,
changes behind a step-up naming their target, bad input as 400/404 JSON, and what a
disabled or reset administrator can still do. SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from onepass.clock import FrozenClock
from onepass.operators.models import AuditLogEntry
from onepass.runtime import Runtime
from tests.factories import AdminInfo, make_admin, make_user
from tests.functional.admin.test_admin_api import bearer, nonce_for

ALL = (
    "users:read",
    "users:write",
    "admins:read",
    "admins:write",
    "audit:read",
)


async def manager(rt: Runtime) -> AdminInfo:
    return await make_admin(rt, "manager@example.com", scopes=ALL)


async def test_users_search_and_detail_need_users_read(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo
) -> None:
    user = await make_user(rt, name="Ada")
    await make_user(rt, "grace@example.com")
    refused = await api.get("/api/v1/admin/users", headers=bearer(admin.token))
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"

    reader = await manager(rt)
    found = await api.get("/api/v1/admin/users", params={"q": "ADA@"}, headers=bearer(reader.token))
    assert found.status_code == 200
    assert [u["sub"] for u in found.json()["users"]] == [user.sub]
    for ref in (str(user.id), user.sub):
        by = await api.get("/api/v1/admin/users", params={"q": ref}, headers=bearer(reader.token))
        assert [u["id"] for u in by.json()["users"]] == [user.id]
    everyone = await api.get("/api/v1/admin/users", headers=bearer(reader.token))
    assert len(everyone.json()["users"]) == 4  # two users, two administrators

    detail = await api.get(f"/api/v1/admin/users/{user.sub}", headers=bearer(reader.token))
    assert detail.status_code == 200
    body = detail.json()
    assert body["email"] == user.email and body["canonical_id"] == user.id
    assert body["disabled"] is False and body["links"] == body["sessions"] == body["consents"] == []
    missing = await api.get("/api/v1/admin/users/nobody@example.com", headers=bearer(reader.token))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_user_changes_need_a_step_up_for_that_user(
    api: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    ops = await manager(rt)
    user = await make_user(rt)
    other = await make_user(rt, "grace@example.com")

    unasked = await api.post(f"/api/v1/admin/users/{user.id}/disable", headers=bearer(ops.token))
    assert unasked.status_code == 403 and unasked.json()["error"] == "step_up_required"

    # A nonce asked for another user does not delete this one.
    nonce = await nonce_for(api, ops, clock, "users.delete", other.email)
    wrong = await api.post(
        f"/api/v1/admin/users/{user.sub}/delete",
        json={"action_request_nonce": nonce},
        headers=bearer(ops.token),
    )
    assert wrong.status_code == 403 and "was issued for" in wrong.json()["message"]

    nonce = await nonce_for(api, ops, clock, "users.disable", user.email)
    disabled = await api.post(
        f"/api/v1/admin/users/{user.id}/disable",  # the id names the same user
        json={"action_request_nonce": nonce},
        headers=bearer(ops.token),
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True and disabled.json()["changed"] is True

    nonce = await nonce_for(api, ops, clock, "users.update", user.sub)
    updated = await api.post(
        f"/api/v1/admin/users/{user.sub}/update",
        json={"action_request_nonce": nonce, "name": "Ada L.", "email_verified": True},
        headers=bearer(ops.token),
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["changed"] == ["email_verified", "name"]

    nonce = await nonce_for(api, ops, clock, "users.set_password", user.sub)
    short = await api.post(
        f"/api/v1/admin/users/{user.sub}/set_password",
        json={"action_request_nonce": nonce, "password": "short"},
        headers=bearer(ops.token),
    )
    assert short.status_code == 400 and "at least 8" in short.json()["message"]

    nonce = await nonce_for(api, ops, clock, "users.delete", user.sub)
    deleted = await api.post(
        f"/api/v1/admin/users/{user.sub}/delete",
        json={"action_request_nonce": nonce},
        headers=bearer(ops.token),
    )
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    shown = await api.get(f"/api/v1/admin/users/{user.sub}", headers=bearer(ops.token))
    assert shown.json()["email"] == f"deleted-{user.id}@deleted.invalid"

    async with rt.database.session(readonly=True) as session:
        rows = list(await session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)))
    trail = [(r.action, r.target, r.outcome) for r in rows if r.action.startswith("users.")]
    assert trail == [
        ("users.disable", str(user.id), "denied"),
        ("users.delete", str(user.id), "denied"),
        ("users.disable", str(user.id), "ok"),
        ("users.update", str(user.id), "ok"),
        ("users.set_password", str(user.id), "failed"),
        ("users.delete", str(user.id), "ok"),
    ]


async def test_user_change_bad_input_is_a_clear_400(
    api: httpx.AsyncClient, rt: Runtime, clock: FrozenClock
) -> None:
    ops = await manager(rt)
    user = await make_user(rt)
    empty = await api.post(
        f"/api/v1/admin/users/{user.sub}/update", json={}, headers=bearer(ops.token)
    )
    assert empty.status_code == 400 and "at least one of" in empty.json()["message"]
    typed = await api.post(
        f"/api/v1/admin/users/{user.sub}/update",
        json={"email_verified": "yes"},
        headers=bearer(ops.token),
    )
    assert (
        typed.status_code == 400
        and typed.json()["message"] == '"email_verified" must be true or false'
    )
    long = await api.post(
        f"/api/v1/admin/users/{user.sub}/set_password",
        json={"password": "x" * 501},
        headers=bearer(ops.token),
    )
    assert long.status_code == 400 and "at most 500 characters" in long.json()["message"]
    nonce = await nonce_for(api, ops, clock, "users.update", user.sub)
    bad = await api.post(
        f"/api/v1/admin/users/{user.sub}/update",
        json={"action_request_nonce": nonce, "email": "no at sign"},
        headers=bearer(ops.token),
    )
    assert bad.status_code == 400 and "not an email address" in bad.json()["message"]
    unknown = await api.post(
        "/api/v1/admin/step-up",
        json={
            "totp_code": "000000",
            "action": "users.revoke_consent",
            "target": f"{user.sub}/nope",
        },
        headers=bearer(ops.token),
    )
    assert unknown.status_code == 404 and "no application" in unknown.json()["message"]


async def test_disabled_administrator_is_locked_out_and_reset_totp_voids_nonces(
    api: httpx.AsyncClient, rt: Runtime, clock: FrozenClock, admin: AdminInfo
) -> None:
    ops = await manager(rt)
    listed = await api.get("/api/v1/admin/administrators", headers=bearer(ops.token))
    assert listed.status_code == 200
    assert {a["email"] for a in listed.json()["administrators"]} == {admin.email, ops.email}

    # A nonce the other administrator holds dies with its second factor.
    held = await nonce_for(api, admin, clock, "signing_keys.rotate", "jwks")
    nonce = await nonce_for(api, ops, clock, "admins.reset_totp", admin.email.upper())
    reset = await api.post(
        f"/api/v1/admin/administrators/{admin.email}/reset_totp",
        json={"action_request_nonce": nonce},
        headers=bearer(ops.token),
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["totp_enrolled"] is False and reset.json()["nonces_voided"] == 1
    spent = await api.post(
        "/api/v1/admin/signing_keys/rotate",
        json={"action_request_nonce": held, "force": True},
        headers=bearer(admin.token),
    )
    assert spent.status_code == 403 and "already used" in spent.json()["message"]

    nonce = await nonce_for(api, ops, clock, "admins.disable", admin.email)
    disabled = await api.post(
        f"/api/v1/admin/administrators/{admin.email}/disable",
        json={"action_request_nonce": nonce},
        headers=bearer(ops.token),
    )
    assert disabled.status_code == 200 and disabled.json()["tokens_revoked"] == 1
    locked_out = await api.get("/api/v1/admin/whoami", headers=bearer(admin.token))
    assert locked_out.status_code == 401 and locked_out.json()["error"] == "invalid_token"

    nonce = await nonce_for(api, ops, clock, "admins.disable", ops.email)
    own = await api.post(
        f"/api/v1/admin/administrators/{ops.email}/disable",
        json={"action_request_nonce": nonce},
        headers=bearer(ops.token),
    )
    assert own.status_code == 409 and "your own account" in own.json()["message"]
    not_admin = await api.post(
        "/api/v1/admin/step-up",
        json={"totp_code": "000000", "action": "admins.disable", "target": "nobody@example.com"},
        headers=bearer(ops.token),
    )
    assert not_admin.status_code == 404 and "no administrator" in not_admin.json()["message"]


async def test_disabled_or_reset_administrator_loses_the_console(
    api: httpx.AsyncClient, rt: Runtime, clock: FrozenClock, admin: AdminInfo
) -> None:
    from onepass.operators.audit import Actor
    from onepass.playbook import admins
    from tests.functional.admin.test_console import GENERIC, code_now, sign_in, signed_in

    cli = Actor("cli:test", "cli")
    await signed_in(api, admin, clock)
    assert (await api.get("/admin")).status_code == 200
    await admins.set_disabled(rt, cli, email=admin.email, disabled=True)
    assert (await api.get("/admin")).status_code == 303  # back to the sign-in page
    clock.advance(30)
    refused = await sign_in(api, admin.email, admin.password, code_now(admin, clock))
    assert refused.status_code == 401 and GENERIC in refused.text

    await admins.set_disabled(rt, cli, email=admin.email, disabled=False)
    clock.advance(30)
    await signed_in(api, admin, clock)
    assert (await api.get("/admin")).status_code == 200
    await admins.reset_totp(rt, cli, email=admin.email)
    assert (await api.get("/admin")).status_code == 303
    clock.advance(30)
    again = await sign_in(api, admin.email, admin.password, code_now(admin, clock))
    assert again.status_code in (401, 403) and "onepass_admin" not in again.headers.get(
        "set-cookie", ""
    )  # no second factor until enroll-totp
