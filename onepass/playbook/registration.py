"""The playbook's Dynamic Client Registration chapter (RFC 7591, RFC 7592): initial
access tokens issued and revoked by operators, and the registrations, updates and
deletions clients make at ``/register``. Each change and its audit row commit in one
transaction; the rules are ``clients.registration``'s and the registry's (the same as
``onepass clients create``), and the webhook URLs' address rules (``webhooks.safety``)
apply to every URL 1pass itself fetches or posts to (``jwks_uri``,
``backchannel_logout_uri``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients import registration, registry
from onepass.clients.models import OAuthApplication
from onepass.clients.registration import InvalidClientMetadata, TokenRefused
from onepass.clients.registry import InvalidClientSettings, describe_client
from onepass.clients.subjects import SubjectSettingsRefused
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook import clients as clients_playbook
from onepass.runtime import Runtime
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks import outbox, safety
from onepass.webhooks.errors import WebhookError
from onepass.webhooks.events import EventType
from onepass.webhooks.fetch import FetchFailed
from onepass.webhooks.outbox import timestamp_text

CREATE_INITIAL_TOKEN = "clients.initial_token_create"
REVOKE_INITIAL_TOKEN = "clients.initial_token_revoke"
REGISTER = "clients.register"  # POST /register
UPDATE_REGISTRATION = "clients.registration_update"  # PUT /register/{client_id}
DELETE_REGISTRATION = "clients.registration_delete"  # DELETE /register/{client_id}
VIA = "registration"  # the audit log's door: /register
OPEN_ACTOR = "open registration"


# -- initial access tokens (operators) ------------------------------------------------


async def create_initial_token(
    runtime: Runtime, actor: Actor, *, ttl: timedelta, max_uses: int | None
) -> dict[str, Any]:
    """An initial access token (in the answer, this once)."""
    async with runtime.database.session() as session:
        new = await registration.create_initial_token(
            session,
            runtime.hasher,
            runtime.clock,
            ttl=ttl,
            max_uses=max_uses,
            created_by=actor.name,
        )
        audit.add(
            session,
            runtime.clock,
            actor,
            CREATE_INITIAL_TOKEN,
            str(new.record.id),
            detail={"ttl_seconds": ttl.total_seconds(), "max_uses": max_uses},
        )
        data = registration.describe_initial_token(new.record, runtime.clock.now())
    data["token"] = new.token
    return data


async def list_initial_tokens(runtime: Runtime) -> list[dict[str, Any]]:
    async with runtime.database.session(readonly=True) as session:
        now = runtime.clock.now()
        return [
            registration.describe_initial_token(record, now)
            for record in await registration.list_initial_tokens(session)
        ]


async def revoke_initial_token(runtime: Runtime, actor: Actor, token_id: int) -> dict[str, Any]:
    """Revoke an initial access token: refused at once; the clients it registered stay."""
    async with runtime.database.session() as session:
        record = await registration.revoke_initial_token(session, runtime.clock, token_id)
        audit.add(session, runtime.clock, actor, REVOKE_INITIAL_TOKEN, str(token_id))
        return registration.describe_initial_token(record, runtime.clock.now())


# -- registrations (clients, at /register) ---------------------------------------------


def _check_targets(runtime: Runtime, app: OAuthApplication) -> None:
    """The addresses 1pass will fetch (``jwks_uri``) or post to (back-channel logout):
    the webhook URLs' rules (no private, loopback or metadata address unless
    ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS; https in production)."""
    settings = runtime.settings
    try:
        webhook_keys.check_backchannel_logout_uri(
            app.backchannel_logout_uri,
            production=settings.is_production,
            allow_private=settings.webhook_allow_private_targets,
        )
        if app.jwks_uri is not None:
            safety.check_url(
                app.jwks_uri,
                production=settings.is_production,
                allow_private=settings.webhook_allow_private_targets,
                what="jwks_uri",
            )
    except WebhookError as exc:
        raise InvalidClientMetadata(str(exc)) from None


async def register(
    runtime: Runtime, metadata: dict[str, Any], *, initial_access_token: str | None, ip: str
) -> dict[str, Any]:
    """RFC 7591 §3: register a client with an initial access token (one use of it is
    counted, in the same transaction: a refused registration uses none), or without one
    when ONEPASS_OPEN_REGISTRATION is on. The answer holds the client secret (when
    confidential) and the registration access token, this once."""
    settings = runtime.settings
    if initial_access_token is None and not settings.open_registration:
        raise TokenRefused("an initial access token is required (Authorization: Bearer)")
    sector_uri, document = await _sector(runtime, metadata)
    async with runtime.database.session() as session:
        token_id = None
        if initial_access_token is not None:
            token_id = await registration.spend_initial_token(
                session, runtime.hasher, runtime.clock, initial_access_token
            )
        options = registration.client_options(metadata)
        if "client_secret" in metadata or "client_id" in metadata:
            raise InvalidClientMetadata("client_id and client_secret are issued by the server")
        try:
            new = await registry.create_client(
                session,
                runtime.hasher,
                runtime.clock,
                production=settings.is_production,
                signing_algs=settings.signing_algorithms,
                **options,
            )
        except InvalidClientSettings as exc:
            raise registration.redirect_uri_refusal(exc) from None
        app = new.application
        _check_targets(runtime, app)
        _checked_sector(app, sector_uri, document)
        app.registration_source = (
            registration.OPEN if token_id is None else registration.BY_INITIAL_TOKEN
        )
        app.initial_access_token_id = token_id
        raw = registration.issue_registration_token(runtime.hasher, app)
        actor = _registrant(token_id, ip)
        audit.add(
            session,
            runtime.clock,
            actor,
            REGISTER,
            app.client_id,
            detail={"client_name": app.client_name, "initial_access_token_id": token_id},
        )
        data = registration.describe_registration(app, settings.issuer)
    if new.client_secret is not None:
        data["client_secret"] = new.client_secret
    data["registration_access_token"] = raw
    return data


async def _sector(runtime: Runtime, metadata: dict[str, Any]) -> tuple[str | None, bytes | None]:
    """A pairwise registrant's sector identifier document (OIDC Registration §5),
    fetched before the transaction with the webhooks' SSRF guard, as for the CLI."""
    options = registration.client_options(metadata)
    uri = options.get("sector_identifier_uri") or None
    try:
        return uri, await clients_playbook.sector_document(
            runtime, uri, options.get("subject_type")
        )
    except (SubjectSettingsRefused, FetchFailed) as exc:
        raise InvalidClientMetadata(str(exc)) from None


def _checked_sector(app: OAuthApplication, uri: str | None, document: bytes | None) -> None:
    try:
        clients_playbook.check_sector(app, uri, document)
    except SubjectSettingsRefused as exc:
        raise InvalidClientMetadata(str(exc)) from None


def _registrant(token_id: int | None, ip: str) -> Actor:
    name = OPEN_ACTOR if token_id is None else f"initial_access_token:{token_id}"
    return Actor(name, VIA, ip_address=ip)


def _manager(app: OAuthApplication, ip: str) -> Actor:
    return Actor(f"registration_access_token:{app.client_id}", VIA, ip_address=ip)


async def _managed(
    session: AsyncSession, runtime: Runtime, client_id: str, token: str | None
) -> OAuthApplication:
    return await registration.managed_client(session, runtime.hasher, client_id, token)


async def read(runtime: Runtime, client_id: str, token: str | None) -> dict[str, Any]:
    """RFC 7592 §2.1: the client's current registration (no secret: only its hash is kept)."""
    async with runtime.database.session(readonly=True) as session:
        app = await _managed(session, runtime, client_id, token)
        return registration.describe_registration(app, runtime.settings.issuer)


async def update(
    runtime: Runtime, client_id: str, token: str | None, metadata: dict[str, Any], *, ip: str
) -> dict[str, Any]:
    """RFC 7592 §2.2: replace the client's registration metadata (what it omits goes back
    to RFC 7591's defaults) under the rules of its registration. The registration access
    token is replaced: the answer holds the new one, the old one stops working."""
    settings = runtime.settings
    sector_uri, document = await _sector(runtime, metadata)
    async with runtime.database.session() as session:
        app = await _managed(session, runtime, client_id, token)
        registration.check_identity(metadata, app, runtime.hasher)
        options = registration.client_options(metadata)
        try:
            checked = registration.replace_settings(
                app,
                options,
                production=settings.is_production,
                signing_algs=settings.signing_algorithms,
            )
        except InvalidClientSettings as exc:
            raise registration.redirect_uri_refusal(exc) from None
        changed = checked.apply(app)
        _check_targets(runtime, app)
        _checked_sector(app, sector_uri, document)
        now = runtime.clock.now()
        if changed:
            app.updated_at = now
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
        raw = registration.issue_registration_token(runtime.hasher, app)
        audit.add(
            session,
            runtime.clock,
            _manager(app, ip),
            UPDATE_REGISTRATION,
            app.client_id,
            detail={"changed": changed},
        )
        data = registration.describe_registration(app, settings.issuer)
    data["registration_access_token"] = raw
    return data


async def delete(runtime: Runtime, client_id: str, token: str | None, *, ip: str) -> dict[str, Any]:
    """RFC 7592 §2.3: delete the client as ``onepass clients delete`` does: its tokens
    are refused everywhere within the client cache's TTL."""
    async with runtime.database.session() as session:
        app = await _managed(session, runtime, client_id, token)
        result = describe_client(app)
        await registry.delete_client(session, app)
        audit.add(session, runtime.clock, _manager(app, ip), DELETE_REGISTRATION, app.client_id)
        return result
