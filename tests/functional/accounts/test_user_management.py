"""Day-2 management of users through the playbook, and what an RP and the user see:
disabled users cannot sign in and their tokens stop working, deleted users are
anonymised and RPs told, a new password ends sessions, a revoked consent is asked
again; the user.* webhooks. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from sqlalchemy import select

from onepass.accounts.models import LoginSession, User
from onepass.app import OnePass
from onepass.identity.canonical import CanonicalResolver
from onepass.oauth.models import Consent, RefreshToken
from onepass.operators.audit import Actor
from onepass.operators.models import AuditLogEntry
from onepass.playbook import merges, users
from onepass.refusals import Conflict, Invalid, NotFound
from onepass.runtime import Runtime
from onepass.webhooks.models import WebhookOutboxEntry
from tests.conftest import ISSUER
from tests.factories import Client, UserInfo, make_rp, make_user
from tests.flow import authorize_url, submit_login
from tests.functional.oauth.test_code_flow import rp_client
from tests.functional.oauth.test_deleted_client import sign_in, userinfo
from tests.webhook_helpers import make_webhook_app

ACTOR = Actor("cli:test", "cli")


async def introspect(http: httpx.AsyncClient, client: Client, token: str) -> bool:
    response = await http.post(
        "/introspect", data={"token": token}, auth=(client.client_id, client.client_secret or "")
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


async def refresh(app: OnePass, client: Client, refresh_token: str) -> dict[str, Any]:
    async with rp_client(app, client.client_id, client.client_secret) as rp:
        return dict(await rp.refresh_token(f"{ISSUER}/token", refresh_token=refresh_token))


async def signed_in_page(http: httpx.AsyncClient, client: Client) -> bool:
    """Whether 1pass still knows the browser: /authorize answers without a login form."""
    page = await http.get(authorize_url(client))
    return page.status_code == 303 or 'name="password"' not in page.text


async def login_refused(http: httpx.AsyncClient, client: Client, user: UserInfo) -> bool:
    """Whether the login page answers the user's email and password as a wrong password."""
    page = await http.get(authorize_url(client))
    response = await submit_login(http, page, user.email, user.password)
    return response.status_code == 401 and "Incorrect email or password." in response.text


async def events(runtime: Runtime, event_type: str) -> list[WebhookOutboxEntry]:
    async with runtime.database.session(readonly=True) as session:
        return list(
            await session.scalars(
                select(WebhookOutboxEntry)
                .where(WebhookOutboxEntry.event_type == event_type)
                .order_by(WebhookOutboxEntry.id)
            )
        )


async def audit_actions(runtime: Runtime) -> list[tuple[str, str | None]]:
    async with runtime.database.session(readonly=True) as session:
        rows = await session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id))
        return [(r.action, r.target) for r in rows]


async def test_disabled_user_cannot_sign_in_and_their_tokens_stop_working(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    user = await make_user(runtime)
    hook = await make_webhook_app(runtime, "http://127.0.0.1:9/hook", events=["user.disabled"])
    token = await sign_in(app, http, client, user)
    assert (await userinfo(http, token["access_token"])).status_code == 200
    assert await signed_in_page(http, client)

    done = await users.disable_user(runtime, ACTOR, user.email)
    assert done["changed"] and done["sessions_ended"] == 1
    assert done["refresh_tokens_revoked"] == 1 and done["webhooks_enqueued"] == 1

    refused = await userinfo(http, token["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
    assert not await introspect(http, client, token["access_token"])
    assert not await introspect(http, client, token["refresh_token"])
    with pytest.raises(AuthlibOAuthError) as failed:
        await refresh(app, client, token["refresh_token"])
    assert failed.value.error == "invalid_grant"
    assert not await signed_in_page(http, client)  # the session ended
    assert await login_refused(http, client, user)  # the right password is a wrong one now

    [sent] = await events(runtime, "user.disabled")
    assert sent.oauth_application_id == hook.id
    assert sent.payload["sub"] == user.sub and sent.payload["disabled_at"].endswith("Z")
    again = await users.disable_user(runtime, ACTOR, str(user.id))
    assert not again["changed"] and again["webhooks_enqueued"] == 0

    enabled = await users.enable_user(runtime, ACTOR, user.sub)
    assert enabled["changed"] and not enabled["disabled"]
    fresh = await sign_in(app, http, client, user)
    assert (await userinfo(http, fresh["access_token"])).status_code == 200
    assert ("users.disable", str(user.id)) in await audit_actions(runtime)
    assert ("users.enable", str(user.id)) in await audit_actions(runtime)


async def test_deleted_user_is_anonymised_revoked_and_rps_told(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    user = await make_user(runtime, name="Ada Lovelace", email_verified=True)
    other = await make_user(runtime, "grace@example.com")
    subscribed = await make_webhook_app(runtime, "http://127.0.0.1:9/a", events=["user.deleted"])
    await make_webhook_app(runtime, "http://127.0.0.1:9/b", events=["identity.link.created"])
    token = await sign_in(app, http, client, user)

    done = await users.delete_user(runtime, ACTOR, user.email)
    assert done["deleted"] and done["webhooks_enqueued"] == 1 and done["consents_deleted"] == 1
    assert done["email"] == f"deleted-{user.id}@deleted.invalid"

    async with runtime.database.session(readonly=True) as session:
        row = await session.get(User, user.id)
        assert row is not None and row.sub == user.sub
        assert (row.email, row.name, row.password_hash) == (done["email"], None, None)
        assert row.disabled_at is not None and row.deleted_at is not None
        assert not row.email_verified
        assert not list(
            await session.scalars(select(LoginSession).where(LoginSession.user_id == user.id))
        )
        assert not list(await session.scalars(select(Consent).where(Consent.user_id == user.id)))
        tokens = list(
            await session.scalars(select(RefreshToken).where(RefreshToken.user_id == user.id))
        )
        assert tokens and all(t.revoked_at is not None for t in tokens)
        shown = await users.show(session, runtime.clock, str(user.id))
    assert shown["deleted"] and shown["disabled"] and shown["name"] is None
    assert (await userinfo(http, token["access_token"])).status_code == 401

    [sent] = await events(runtime, "user.deleted")
    assert sent.oauth_application_id == subscribed.id
    assert set(sent.payload) == {"sub", "deleted_at"} and sent.payload["sub"] == user.sub
    # The address is free again for a new account; the deleted row keeps its own.
    await make_user(runtime, user.email)
    with pytest.raises(Conflict):
        await users.enable_user(runtime, ACTOR, str(user.id))
    with pytest.raises(Conflict):
        await users.delete_user(runtime, ACTOR, str(user.id))
    async with runtime.database.session(readonly=True) as session:
        assert (await users.show(session, runtime.clock, other.email))["deleted"] is False


async def test_update_user_changes_fields_and_sends_only_their_names(
    runtime: Runtime,
) -> None:
    user = await make_user(runtime, email_verified=True)
    await make_user(runtime, "grace@example.com")
    await make_webhook_app(runtime, "http://127.0.0.1:9/a", events=["user.updated"])

    done = await users.update_user(runtime, ACTOR, user.sub, email="Ada@New.example", name="Ada")
    assert done["changed"] == ["email", "email_verified", "name"]
    assert done["email"] == "Ada@New.example" and done["email_verified"] is False
    [sent] = await events(runtime, "user.updated")
    assert sent.payload["sub"] == user.sub
    assert sent.payload["changed"] == ["email", "email_verified", "name"]
    assert "Ada@New.example" not in str(sent.payload)  # names, never values

    same = await users.update_user(runtime, ACTOR, user.sub, name="Ada")
    assert same["changed"] == [] and same["webhooks_enqueued"] == 0
    with pytest.raises(Conflict, match="already exists"):
        await users.update_user(runtime, ACTOR, user.sub, email="GRACE@example.com")
    with pytest.raises(Invalid, match="not an email address"):
        await users.update_user(runtime, ACTOR, user.sub, email="not an email")
    with pytest.raises(Invalid, match="control characters"):
        await users.update_user(runtime, ACTOR, user.sub, name="a\x07b")
    with pytest.raises(NotFound):
        await users.update_user(runtime, ACTOR, "nobody@example.com", name="x")
    verified = await users.update_user(runtime, ACTOR, user.sub, email_verified=True)
    assert verified["changed"] == ["email_verified"]


async def test_set_password_ends_sessions_and_only_the_new_password_works(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    user = await make_user(runtime)
    await sign_in(app, http, client, user)

    with pytest.raises(Invalid, match="at least 8"):
        await users.set_password(runtime, ACTOR, user.email, "short")
    done = await users.set_password(runtime, ACTOR, user.email, "a brand new password")
    assert done["sessions_ended"] == 1
    assert not await signed_in_page(http, client)
    assert await login_refused(http, client, user)
    renewed = UserInfo(user.id, user.sub, user.email, "a brand new password")
    assert "access_token" in await sign_in(app, http, client, renewed)
    assert ("users.set_password", str(user.id)) in await audit_actions(runtime)


async def test_revoke_sessions_and_consent_end_the_browser_and_the_rp_grant(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_rp(runtime)
    user = await make_user(runtime)
    token = await sign_in(app, http, client, user)
    async with runtime.database.session(readonly=True) as session:
        shown = await users.show(session, runtime.clock, user.email)
    assert len(shown["sessions"]) == 1
    [consent] = shown["consents"]
    assert consent["client_id"] == client.client_id and consent["refresh_tokens"] == 1

    ended = await users.revoke_sessions(runtime, ACTOR, user.email)
    assert ended["sessions_ended"] == 1 and not await signed_in_page(http, client)

    done = await users.revoke_consent(runtime, ACTOR, user.email, client.client_id)
    assert done["consent_removed"] and done["refresh_tokens_revoked"] == 1
    assert not await introspect(http, client, token["refresh_token"])
    with pytest.raises(NotFound):
        await users.revoke_consent(runtime, ACTOR, user.email, client.client_id)
    # Signing in again asks for consent again.
    page = await http.get(authorize_url(client))
    asked = await submit_login(http, page, user.email, user.password)
    assert asked.status_code == 200 and 'action="/consent"' in asked.text
    assert (
        "users.revoke_consent",
        f"{user.id}/{client.client_id}",
    ) in await audit_actions(runtime)


async def test_disabled_canonical_user_cannot_be_signed_in_through_a_merged_account(
    runtime: Runtime,
) -> None:
    from onepass.app import create_app
    from onepass.startup import prepare
    from tests.conftest import make_settings

    settings = make_settings(
        runtime.settings.database_url,
        runtime.settings.redis_url,
        enforce_canonical_resolution=True,
    )
    enforced = Runtime.build(settings)
    await prepare(enforced)
    try:
        client = await make_rp(enforced)
        source = await make_user(enforced, "old@example.com")
        target = await make_user(enforced, "new@example.com")
        await merges.merge_by_reference(
            enforced,
            CanonicalResolver(enforced.cache, 0.1),
            ACTOR,
            source.email,
            target.email,
        )
        hook = await make_webhook_app(enforced, "http://127.0.0.1:9/a", events=["user.disabled"])
        # A merged-away account: its own password stops; RPs (who know the target) hear nothing.
        quiet = await users.disable_user(enforced, ACTOR, source.email)
        assert quiet["changed"] and quiet["webhooks_enqueued"] == 0
        await users.enable_user(enforced, ACTOR, source.email)
        told = await users.disable_user(enforced, ACTOR, target.email)
        assert told["webhooks_enqueued"] == 1 and hook.id

        application = create_app(settings)
        async with application.api.router.lifespan_context(application.api):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
                # The source's own password, its canonical user disabled.
                assert await login_refused(browser, client, source)
    finally:
        await enforced.close()


async def test_administrators_are_managed_with_admin_commands_not_users(runtime: Runtime) -> None:
    from tests.factories import make_admin

    admin = await make_admin(runtime)
    for change in (users.disable_user, users.delete_user):
        with pytest.raises(Conflict, match="administrator"):
            await change(runtime, ACTOR, admin.email)


async def test_merge_refuses_a_deleted_user_as_source_or_target(runtime: Runtime) -> None:
    gone = await make_user(runtime, "gone@example.com")
    kept = await make_user(runtime, "kept@example.com")
    await users.delete_user(runtime, ACTOR, gone.email)
    resolver = CanonicalResolver(runtime.cache, 0.1)
    for source, target in ((str(gone.id), kept.email), (kept.email, str(gone.id))):
        with pytest.raises(Conflict, match="was deleted"):
            await merges.merge_by_reference(runtime, resolver, ACTOR, source, target)
