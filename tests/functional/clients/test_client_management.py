"""Day-2 management of an RP through the playbook (``onepass clients …`` and the admin
API call the same functions): update under the rules of creation, rotate the secret
with a grace, disable and enable, the ``client.updated`` webhook, the audit rows, and
the default grants of a login client. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from onepass.app import OnePass
from onepass.clients.registry import ClientChanges, ClientError
from onepass.clock import FrozenClock
from onepass.operators.audit import Actor
from onepass.operators.models import AuditLogEntry
from onepass.playbook import clients as playbook
from onepass.runtime import Runtime
from onepass.settings import Environment
from onepass.webhooks.errors import WebhookError
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, make_client, make_rp, make_user
from tests.flow import authorize_url, log_in_and_consent
from tests.functional.oauth.test_code_flow import rp_client
from tests.webhook_helpers import (
    Receiver,
    dispatch_once,
    enqueue,
    entries,
    entry,
    make_webhook_app,
)

CLI = Actor.cli()
NEW_URI = "https://rp.example/other-callback"


async def settle(rt: Runtime) -> None:
    """Past every cached copy of a client (``ONEPASS_CLIENT_CACHE_TTL``)."""
    await asyncio.sleep(rt.settings.client_cache_ttl + 0.1)


async def audit_rows(rt: Runtime, action: str) -> list[AuditLogEntry]:
    async with rt.database.session() as session:
        return list(
            await session.scalars(
                select(AuditLogEntry)
                .where(AuditLogEntry.action == action)
                .order_by(AuditLogEntry.id)
            )
        )


async def test_update_adds_and_removes_redirect_uris_keeping_client_id_and_secret(
    rt: Runtime, web: httpx.AsyncClient
) -> None:
    rp = await make_rp(rt)
    shown = await playbook.update(
        rt,
        CLI,
        rp.client_id,
        ClientChanges(add_redirect_uris=(NEW_URI,), remove_redirect_uris=(REDIRECT_URI,)),
    )
    assert shown["client_id"] == rp.client_id and shown["redirect_uris"] == [NEW_URI]
    await settle(rt)
    url = authorize_url(rp, redirect_uri=NEW_URI)
    page = await web.get(url)
    assert page.status_code == 200 and "password" in page.text
    old = await web.get(authorize_url(rp))
    assert old.status_code == 400 and "location" not in old.headers
    # The secret is the same one.
    token = await web.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(rp.client_id, rp.client_secret or ""),
    )
    assert token.json()["error"] == "unauthorized_client"  # authenticated; grant not allowed

    [row] = await audit_rows(rt, "clients.update")
    assert row.target == rp.client_id and row.detail == {"changed": ["redirect_uris"]}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (ClientChanges(add_redirect_uris=("https://rp.example/cb#frag",)), "fragment"),
        (ClientChanges(add_redirect_uris=("not a url",)), "absolute URL"),
        (ClientChanges(remove_redirect_uris=("https://rp.example/never",)), "no redirect URI"),
        (ClientChanges(remove_redirect_uris=(REDIRECT_URI,)), "needs at least one redirect"),
        (ClientChanges(grant_types=("implicit",)), "unsupported grant type"),
        (ClientChanges(grant_types=("refresh_token",)), "comes with authorization_code"),
        (ClientChanges(scopes=("bad\x01scope",)), "scope"),
        (ClientChanges(name="  "), "name must be"),
        (ClientChanges(token_endpoint_auth_method="none"), "public"),
        (
            ClientChanges(token_endpoint_auth_method="private_key_jwt"),
            "needs the client's public keys",
        ),
        (ClientChanges(token_endpoint_auth_method="client_secret_jwt"), "unsupported"),
        (ClientChanges(webhook_url="ftp://rp.example/hook"), "absolute http(s) URL"),
        (ClientChanges(webhook_events=("client.updated",)), "needs --webhook-url"),
        (ClientChanges(webhook_events=("nope.event",)), "unknown webhook event type"),
        (ClientChanges(policy_uri="javascript:alert(1)"), "policy URI"),
        (ClientChanges(policy_uri="/privacy"), "must be an absolute https URL"),
        (ClientChanges(tos_uri="https://"), "terms URI"),
        (ClientChanges(tos_uri="https://rp.example/terms of use"), "spaces"),
        (ClientChanges(tos_uri="https://[::1/terms"), "not a valid URL"),
    ],
)
async def test_update_with_bad_input_is_refused_and_changes_nothing(
    rt: Runtime, changes: ClientChanges, says: str
) -> None:
    rp = await make_rp(rt)
    before = await playbook.set_disabled(rt, CLI, rp.client_id, disabled=False)
    with pytest.raises((ClientError, WebhookError)) as refused:
        await playbook.update(rt, CLI, rp.client_id, changes)
    assert says in str(refused.value)
    after = await playbook.set_disabled(rt, CLI, rp.client_id, disabled=False)
    assert after == before
    assert await audit_rows(rt, "clients.update") == []


async def test_update_refuses_a_webhook_url_on_a_private_address_as_create_does(
    settings: Any, clock: FrozenClock
) -> None:
    from tests.webhook_helpers import runtime_with

    strict = await runtime_with(
        settings.model_copy(update={"webhook_allow_private_targets": False}), clock
    )
    try:
        rp = await make_rp(strict)
        for url in ("http://127.0.0.1:9/hook", "http://10.0.0.1/hook", "http://[::1]/hook"):
            with pytest.raises(WebhookError):
                await playbook.update(strict, CLI, rp.client_id, ClientChanges(webhook_url=url))
    finally:
        await strict.close()


async def test_update_enqueues_client_updated_with_field_names_never_secrets(
    rt: Runtime, receiver: Receiver
) -> None:
    subscribed = await make_webhook_app(
        rt, receiver.url("/sub"), name="sub", events=["client.updated"]
    )
    other = await make_webhook_app(
        rt, receiver.url("/other"), name="other", events=["identity.link.created"]
    )
    await playbook.update(
        rt, CLI, subscribed.client_id, ClientChanges(name="renamed", scopes=("api:read",))
    )
    await playbook.update(rt, CLI, other.client_id, ClientChanges(name="renamed too"))
    await dispatch_once(rt)
    [delivery] = receiver.at("/sub")
    body = delivery.verify(subscribed.secret)
    assert body["type"] == "client.updated"
    assert body["data"] == {
        "client_id": subscribed.client_id,
        "changed": ["client_name", "scope"],
        "updated_at": body["timestamp"],
    }
    assert receiver.at("/other") == []
    # Nothing changed, nothing sent.
    before = len(await entries(rt))
    await playbook.update(rt, CLI, subscribed.client_id, ClientChanges(name="renamed"))
    assert len(await entries(rt)) == before


async def test_update_giving_a_first_webhook_url_creates_its_signing_key(
    rt: Runtime, receiver: Receiver
) -> None:
    client = await make_client(rt)
    shown = await playbook.update(
        rt, CLI, client.client_id, ClientChanges(webhook_url=receiver.url("/first"))
    )
    assert shown["webhook_url"] == receiver.url("/first")
    key = shown["webhook_signing_key"]
    assert key["kid"] and key["secret"]
    removed = await playbook.update(rt, CLI, client.client_id, ClientChanges(webhook_url=""))
    assert removed["webhook_url"] is None and "webhook_signing_key" not in removed


async def test_rotate_secret_with_grace_both_verify_then_only_the_new_one(
    rt: Runtime, web: httpx.AsyncClient, clock: FrozenClock
) -> None:
    client = await make_client(rt)
    data = {"grant_type": "client_credentials"}
    rotated = await playbook.rotate_secret(rt, CLI, client.client_id, grace=timedelta(hours=24))
    assert set(rotated) == {"client_id", "client_secret", "previous_secret_expires_at"}
    assert rotated["previous_secret_expires_at"] == clock.now() + timedelta(hours=24)
    new = rotated["client_secret"]
    await settle(rt)

    async def status(secret: str | None) -> int:
        answer = await web.post("/token", data=data, auth=(client.client_id, secret or ""))
        return answer.status_code

    assert [await status(s) for s in (client.client_secret, new, "wrong")] == [200, 200, 401]
    clock.advance(timedelta(hours=24))
    assert [await status(s) for s in (client.client_secret, new)] == [401, 200]

    # A rotation without a grace (the default) ends the old secret at once.
    again = await playbook.rotate_secret(rt, CLI, client.client_id)
    assert again["previous_secret_expires_at"] is None
    await settle(rt)
    assert [await status(s) for s in (new, again["client_secret"])] == [401, 200]
    assert len(await audit_rows(rt, "clients.rotate_secret")) == 2


async def test_rotate_secret_of_public_client_or_with_huge_grace_is_refused(rt: Runtime) -> None:
    spa = await make_rp(rt, public=True, token_endpoint_auth_method="none")
    with pytest.raises(ClientError, match="no secret"):
        await playbook.rotate_secret(rt, CLI, spa.client_id)
    client = await make_client(rt)
    with pytest.raises(ClientError, match="30 days"):
        await playbook.rotate_secret(rt, CLI, client.client_id, grace=timedelta(days=31))


async def test_disabled_client_is_invalid_client_and_unknown_at_authorize_until_enabled(
    rt: Runtime, web: httpx.AsyncClient
) -> None:
    rp = await make_rp(rt)
    shown = await playbook.set_disabled(rt, CLI, rp.client_id, disabled=True)
    assert shown["disabled"] is True and shown["disabled_at"] is not None
    await settle(rt)
    auth = (rp.client_id, rp.client_secret or "")
    for path, form in (
        ("/token", {"grant_type": "client_credentials"}),
        ("/revoke", {"token": "x"}),
        ("/introspect", {"token": "x"}),
    ):
        answer = await web.post(path, data=form, auth=auth)
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client", path
    keys = await web.get("/webhooks/signing-keys", auth=auth)
    assert keys.status_code == 401 and keys.json()["error"] == "invalid_client"
    page = await web.get(authorize_url(rp))
    unknown = await web.get(authorize_url(rp, client_id="nope"))
    assert page.status_code == unknown.status_code == 400 and "location" not in page.headers

    enabled = await playbook.set_disabled(rt, CLI, rp.client_id, disabled=False)
    assert enabled["disabled"] is False
    await settle(rt)
    introspected = await web.post("/introspect", data={"token": "x"}, auth=auth)
    assert introspected.status_code == 200 and introspected.json() == {"active": False}
    assert (await web.get(authorize_url(rp))).status_code == 200
    assert [r.target for r in await audit_rows(rt, "clients.disable")] == [rp.client_id]
    assert [r.target for r in await audit_rows(rt, "clients.enable")] == [rp.client_id]


async def test_disabled_clients_webhooks_stay_pending_and_are_delivered_after_enable(
    rt: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(rt, receiver.url("/held"))
    await playbook.set_disabled(rt, CLI, app.client_id, disabled=True)
    entry_id = await enqueue(rt, app.id)
    for _ in range(3):
        await dispatch_once(rt)
    held = await entry(rt, entry_id)
    assert held.delivered_at is None and held.dlq_at is None and held.attempts == 0
    assert receiver.at("/held") == []

    await playbook.set_disabled(rt, CLI, app.client_id, disabled=False)
    await dispatch_once(rt)
    assert (await entry(rt, entry_id)).delivered_at is not None
    assert len(receiver.at("/held")) == 1


async def test_delete_is_audited_and_the_client_is_gone(
    rt: Runtime, web: httpx.AsyncClient
) -> None:
    client = await make_client(rt)
    assert await playbook.delete(rt, CLI, client.client_id) == {
        "id": client.id,
        "client_id": client.client_id,
        "deleted": True,
    }
    [row] = await audit_rows(rt, "clients.delete")
    assert row.target == client.client_id and row.actor.startswith("cli:")
    await settle(rt)
    answer = await web.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret or ""),
    )
    assert answer.status_code == 401


async def test_client_created_with_redirect_uri_gets_a_refresh_token_by_default(
    rt: Runtime, served: OnePass, web: httpx.AsyncClient
) -> None:
    created = await playbook.create(
        rt,
        CLI,
        name="README login client",
        redirect_uris=[REDIRECT_URI],
        id_token_signed_response_alg="RS256",
    )
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    assert "offline_access" in created["scope"].split()
    [row] = await audit_rows(rt, "clients.create")
    assert row.target == created["client_id"]

    user = await make_user(rt)
    verifier = secrets.token_urlsafe(48)
    async with rp_client(served, created["client_id"], created["client_secret"]) as rp:
        url, _ = rp.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=verifier, scope="openid email offline_access"
        )
        callback = await log_in_and_consent(web, url, user.email, user.password)
        token = await rp.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier
        )
    assert token.get("refresh_token")
    refreshed = await web.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(created["client_id"], created["client_secret"]),
    )
    assert refreshed.status_code == 200 and refreshed.json()["access_token"]

    # An explicit --grant-type still decides.
    explicit = await playbook.create(
        rt, CLI, name="code only", redirect_uris=[REDIRECT_URI], grant_types=["authorization_code"]
    )
    assert explicit["grant_types"] == ["authorization_code"]


async def test_policy_and_terms_are_set_shown_and_removed_and_https_in_production(
    rt: Runtime,
) -> None:
    rp = await make_rp(rt, policy_uri="https://rp.example/privacy")
    shown = await playbook.update(
        rt, CLI, rp.client_id, ClientChanges(tos_uri="https://rp.example/terms")
    )
    assert shown["policy_uri"] == "https://rp.example/privacy"
    assert shown["tos_uri"] == "https://rp.example/terms"
    [row] = await audit_rows(rt, "clients.update")
    assert row.detail == {"changed": ["tos_uri"]}
    cleared = await playbook.update(rt, CLI, rp.client_id, ClientChanges(policy_uri="", tos_uri=""))
    assert cleared["policy_uri"] is None and cleared["tos_uri"] is None

    production = rt.settings.model_copy(
        update={"env": Environment.PRODUCTION, "issuer": "https://id.example.com"}
    )
    strict = Runtime.build(production, rt.clock)
    try:
        with pytest.raises(ClientError, match=r"policy URI .* must use https in production"):
            await playbook.update(
                strict, CLI, rp.client_id, ClientChanges(policy_uri="http://rp.example/p")
            )
        # On this machine http stays allowed, as for redirect URIs.
        done = await playbook.update(
            strict, CLI, rp.client_id, ClientChanges(policy_uri="http://localhost:3000/p")
        )
        assert done["policy_uri"] == "http://localhost:3000/p"
    finally:
        await strict.close()
