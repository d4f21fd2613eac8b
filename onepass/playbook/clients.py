"""The playbook's clients chapter: register, update, disable, enable and delete an RP,
rotate its secret (with a grace). Each change and its audit row commit in one
transaction; ``update`` enqueues ``client.updated`` for the RP in it too. The rules are
``onepass.clients.registry``'s; every process sees a change within the client cache's
TTL (``ONEPASS_CLIENT_CACHE_TTL``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from onepass.clients import registry, subjects
from onepass.clients.models import OAuthApplication
from onepass.clients.registry import ClientChanges, describe_client, find_client
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook.actions import (
    CREATE_CLIENT,
    DELETE_CLIENT,
    DISABLE_CLIENT,
    ENABLE_CLIENT,
    ROTATE_CLIENT_SECRET,
    UPDATE_CLIENT,
)
from onepass.runtime import Runtime
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks import outbox
from onepass.webhooks.events import EventType
from onepass.webhooks.fetch import fetch_document
from onepass.webhooks.models import WebhookSigningKey
from onepass.webhooks.outbox import timestamp_text


async def create(
    runtime: Runtime,
    actor: Actor,
    *,
    webhook_scheme: str = "v1",
    **options: Any,
) -> dict[str, Any]:
    """Register an application (``registry.create_client``'s options) with its first
    webhook signing key; the answer holds the secret and the key's secret, this once."""
    settings = runtime.settings
    sector_uri = options.get("sector_identifier_uri") or None
    document = await sector_document(runtime, sector_uri, options.get("subject_type"))
    async with runtime.database.session() as session:
        new = await registry.create_client(
            session,
            runtime.hasher,
            runtime.clock,
            production=settings.is_production,
            signing_algs=settings.signing_algorithms,
            **options,
        )
        # In the same transaction: a refused webhook setting creates nothing. The
        # back-channel logout URI is delivered to by the same dispatcher: the same rules.
        webhook_keys.check_backchannel_logout_uri(
            new.application.backchannel_logout_uri,
            production=settings.is_production,
            allow_private=settings.webhook_allow_private_targets,
        )
        signing_key = await webhook_keys.setup_application(
            session,
            runtime.box,
            runtime.clock,
            new.application,
            scheme=webhook_scheme,
            production=settings.is_production,
            allow_private=settings.webhook_allow_private_targets,
        )
        check_sector(new.application, sector_uri, document)
        data = describe_client(new.application)
        audit.add(
            session,
            runtime.clock,
            actor,
            CREATE_CLIENT,
            new.application.client_id,
            detail={"client_name": new.application.client_name},
        )
    if new.client_secret is not None:
        data["client_secret"] = new.client_secret
        data["client_secret_expires_at"] = 0
    if signing_key is not None:
        data["webhook_signing_key"] = signing_key.as_json()
    return data


async def update(
    runtime: Runtime, actor: Actor, app_ref: str, changes: ClientChanges
) -> dict[str, Any]:
    """Change an application's registration under the rules of its creation, audited
    with the names of the fields that changed; ``client.updated`` goes to the RP if it
    subscribed. An application given a webhook URL for the first time gets its first
    signing key (its secret in the answer, this once)."""
    settings = runtime.settings
    sector_uri, document = None, None
    if (
        changes.add_redirect_uris
        or changes.remove_redirect_uris
        or changes.subject_type is not None
        or changes.sector_identifier_uri is not None
    ):
        async with runtime.database.session(readonly=True) as session:
            current = await find_client(session, app_ref)
            sector_uri = current.sector_identifier_uri
            subject_type = current.subject_type
        if changes.sector_identifier_uri is not None:
            sector_uri = changes.sector_identifier_uri or None
        document = await sector_document(runtime, sector_uri, changes.subject_type or subject_type)
    async with runtime.database.session() as session:
        app = await find_client(session, app_ref)
        had_webhook = app.webhook_url is not None
        changed = await registry.update_client(
            session,
            runtime.clock,
            app,
            changes,
            production=settings.is_production,
            signing_algs=settings.signing_algorithms,
        )
        if {"redirect_uris", "subject_type", "sector_identifier_uri"} & set(changed):
            check_sector(app, sector_uri, document)
        signing_key = None
        if "backchannel_logout_uri" in changed:
            webhook_keys.check_backchannel_logout_uri(
                app.backchannel_logout_uri,
                production=settings.is_production,
                allow_private=settings.webhook_allow_private_targets,
            )
        if "webhook_url" in changed or "webhook_events" in changed:
            webhook_keys.check_webhook_settings(
                app.webhook_url,
                app.webhook_events,
                production=settings.is_production,
                allow_private=settings.webhook_allow_private_targets,
            )
            if app.webhook_url is not None and not had_webhook:
                keys = await webhook_keys.list_keys(session, app.id)
                if not any(_signs(k, runtime) for k in keys):
                    signing_key = await webhook_keys.create_key(
                        session, runtime.box, runtime.clock, app.id, "v1"
                    )
        if changed:
            await outbox.enqueue(
                session,
                app,
                EventType.CLIENT_UPDATED,
                {
                    "client_id": app.client_id,
                    "changed": changed,
                    "updated_at": timestamp_text(app.updated_at),
                },
                f"client.updated:{app.client_id}:{uuid.uuid4().hex}",
                clock=runtime.clock,
                max_payload_bytes=settings.webhook_max_payload_bytes,
            )
        audit.add(
            session, runtime.clock, actor, UPDATE_CLIENT, app.client_id, detail={"changed": changed}
        )
        data = describe_client(app)
    if signing_key is not None:
        data["webhook_signing_key"] = signing_key.as_json()
    return data


async def sector_document(
    runtime: Runtime, uri: str | None, subject_type: str | None
) -> bytes | None:
    """A pairwise client's sector identifier document (OpenID Connect Registration §5),
    fetched before the transaction (a slow server holds no lock) with the webhooks'
    guard against SSRF; None when there is none to fetch."""
    if uri is None or subject_type != subjects.PAIRWISE:
        return None
    settings = runtime.settings
    # The URL's own rules first: a refusal says what is wrong with it, not the fetch's.
    subjects.check_subject_settings(subjects.PAIRWISE, (), uri, production=settings.is_production)
    return await fetch_document(
        uri,
        what="sector_identifier_uri",
        production=settings.is_production,
        allow_private=settings.webhook_allow_private_targets,
        max_bytes=subjects.MAX_SECTOR_DOCUMENT_BYTES,
    )


def check_sector(app: OAuthApplication, fetched_uri: str | None, document: bytes | None) -> None:
    """A pairwise client with a sector identifier URI: its document lists every redirect
    URI the client now has (checked at registration and whenever they change)."""
    if app.subject_type != subjects.PAIRWISE or app.sector_identifier_uri is None:
        return
    if document is None or fetched_uri != app.sector_identifier_uri:
        raise subjects.SubjectSettingsRefused(
            "the client's sector_identifier_uri changed while this update ran; try again"
        )
    subjects.check_sector_document(document, app.redirect_uris)


def _signs(key: WebhookSigningKey, runtime: Runtime) -> bool:
    return key.signs_at(runtime.clock.now())


async def rotate_secret(
    runtime: Runtime, actor: Actor, app_ref: str, *, grace: timedelta = timedelta(0)
) -> dict[str, Any]:
    """A new client secret (in the answer, this once); the old one keeps verifying for
    ``grace``, then only the new one does."""
    async with runtime.database.session() as session:
        app = await find_client(session, app_ref)
        secret = await registry.rotate_secret(
            session, runtime.hasher, runtime.clock, app, grace=grace
        )
        expires = app.previous_secret_expires_at if app.previous_secret_hash else None
        audit.add(
            session,
            runtime.clock,
            actor,
            ROTATE_CLIENT_SECRET,
            app.client_id,
            detail={"grace_seconds": grace.total_seconds()},
        )
        return {
            "client_id": app.client_id,
            "client_secret": secret,
            "previous_secret_expires_at": expires,
        }


async def set_disabled(
    runtime: Runtime, actor: Actor, app_ref: str, *, disabled: bool
) -> dict[str, Any]:
    """Disable (or enable) an application: while disabled it is served nowhere, its
    tokens are refused and its webhooks wait (pending) until it is enabled."""
    async with runtime.database.session() as session:
        app = await find_client(session, app_ref)
        changed = registry.set_disabled(runtime.clock, app, disabled)
        audit.add(
            session,
            runtime.clock,
            actor,
            DISABLE_CLIENT if disabled else ENABLE_CLIENT,
            app.client_id,
            detail={"changed": changed},
        )
        return describe_client(app)


async def delete(runtime: Runtime, actor: Actor, app_ref: str) -> dict[str, Any]:
    """Delete an application: its tokens are refused everywhere within the cache TTL."""
    async with runtime.database.session() as session:
        app = await find_client(session, app_ref)
        result = {"id": app.id, "client_id": app.client_id, "deleted": True}
        await registry.delete_client(session, app)
        audit.add(session, runtime.clock, actor, DELETE_CLIENT, app.client_id)
        return result
