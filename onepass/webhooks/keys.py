"""Per-application webhook signing keys: creation, rotation with grace, compromise.

Each application has its own keys, each with a kid; secrets are encrypted at rest
(``SecretBox``, bound to the kid). Every key that is valid when an attempt starts
signs it:

- ``active``: the newest key;
- ``retired``: replaced by a rotation, still signing until ``expires_at`` (the grace
  period, 72 h by default), so RPs can switch to the new secret without a gap;
- ``revoked``: compromised; never signs again.

``compromise`` is the playbook's emergency procedure, in one transaction: revoke the
key, issue a new one, re-stamp every undelivered entry of the application (an attempt
in flight across the revocation does not count; the entry is sent again, signed only
with valid keys) and enqueue ``webhook_key.compromised``.

Callers hold the application's exclusive lock (``Database.session(exclusive=
keys_lock(app_id))``) for rotation and compromise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.webhooks import logout_tokens, outbox, outbox_queries, safety, signing
from onepass.webhooks.errors import (
    EventsWithoutUrl,
    SigningKeyNotFound,
    UnknownEventType,
    WebhookError,
)
from onepass.webhooks.events import NOT_WEBHOOKS, EventType, parse_event_type
from onepass.webhooks.models import KeyState, WebhookOutboxEntry, WebhookSigningKey
from onepass.webhooks.outbox_queries import Status

DEFAULT_GRACE = timedelta(hours=72)


def keys_lock(app_id: int) -> str:
    return f"webhook_keys:{app_id}"


def box_context(kid: str) -> str:
    return f"webhook_signing_key:{kid}"


@dataclass(frozen=True)
class NewKey:
    """A key just created; its secret is shown this once."""

    kid: str
    scheme: str
    secret: str | None  # v1: whsec_…
    public_key: str | None  # v1a: whpk_…

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kid": self.kid, "secret": self.secret, "scheme": self.scheme}
        if self.public_key is not None:
            data["public_key"] = self.public_key
        return data


@dataclass(frozen=True)
class Compromise:
    revoked_kid: str
    new_key: NewKey
    restamped: int
    event_id: int | None


def load_signer(box: SecretBox, key: WebhookSigningKey) -> signing.Signer:
    """Decrypt a key; ``DecryptionError`` if ONEPASS_SECRET_KEY is not the one it was made with."""
    secret = box.decrypt(key.secret_encrypted, box_context(key.kid))
    return signing.Signer.create(key.kid, key.scheme, secret)


async def create_key(
    session: AsyncSession, box: SecretBox, clock: Clock, app_id: int, scheme: str = signing.V1
) -> NewKey:
    """Add an active key to an application (other keys are left as they are)."""
    if scheme not in signing.SCHEMES:
        raise WebhookError(f"unknown signature scheme {scheme!r}; use v1 (HMAC) or v1a (Ed25519)")
    kid = signing.generate_kid()
    secret = signing.generate_secret()
    public = signing.public_key(secret) if scheme == signing.V1A else None
    session.add(
        WebhookSigningKey(
            oauth_application_id=app_id,
            kid=kid,
            scheme=scheme,
            state=KeyState.ACTIVE,
            secret_encrypted=box.encrypt(secret, box_context(kid)),
            public_key=public,
            created_at=clock.now(),
        )
    )
    await session.flush()
    if scheme == signing.V1A:
        return NewKey(kid, scheme, None, public)
    return NewKey(kid, scheme, signing.format_secret(secret), None)


def check_webhook_settings(
    webhook_url: str | None, events: list[str], *, production: bool, allow_private: bool
) -> None:
    """Refuse an unknown event type or an unsafe webhook URL, with the reason."""
    for event in events:
        if parse_event_type(event) in NOT_WEBHOOKS:
            raise UnknownEventType(
                f"{event} is not a webhook one subscribes to: it goes to the application's "
                "back-channel logout URI (--backchannel-logout-uri)"
            )
    if webhook_url is not None:
        safety.check_url(webhook_url, production=production, allow_private=allow_private)
    elif events:
        raise EventsWithoutUrl("--event needs --webhook-url: there is nowhere to send the events")


def check_backchannel_logout_uri(uri: str | None, *, production: bool, allow_private: bool) -> None:
    """Refuse a back-channel logout URI 1pass would not deliver to: the webhook URLs'
    rules (https in production, no credentials, no fragment, no private, loopback or
    link-local address unless ``ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS``), since the
    outbox's dispatcher delivers there through the same guard."""
    if uri is not None:
        safety.check_url(
            uri, production=production, allow_private=allow_private, what=logout_tokens.URI_NAME
        )


async def setup_application(
    session: AsyncSession,
    box: SecretBox,
    clock: Clock,
    app: OAuthApplication,
    *,
    scheme: str = signing.V1,
    production: bool,
    allow_private: bool,
) -> NewKey | None:
    """Check a new application's webhook settings and create its first signing key."""
    check_webhook_settings(
        app.webhook_url, app.webhook_events, production=production, allow_private=allow_private
    )
    if app.webhook_url is None:
        return None
    return await create_key(session, box, clock, app.id, scheme)


async def list_keys(session: AsyncSession, app_id: int) -> list[WebhookSigningKey]:
    """Every key of an application, newest first."""
    return list(
        await session.scalars(
            select(WebhookSigningKey)
            .where(WebhookSigningKey.oauth_application_id == app_id)
            .order_by(WebhookSigningKey.created_at.desc(), WebhookSigningKey.id.desc())
        )
    )


async def rotate(
    session: AsyncSession,
    box: SecretBox,
    clock: Clock,
    app_id: int,
    *,
    grace: timedelta = DEFAULT_GRACE,
    scheme: str | None = None,
) -> tuple[NewKey, list[str]]:
    """Create a new active key; the active ones retire and keep signing for ``grace``.

    Returns the new key and the kids retired. ``scheme`` defaults to the current one.
    """
    if grace < timedelta(0):
        raise WebhookError("the grace period cannot be negative")
    now = clock.now()
    keys = await list_keys(session, app_id)
    active = [k for k in keys if k.state == KeyState.ACTIVE and k.signs_at(now)]
    scheme = scheme or (active[0].scheme if active else signing.V1)
    for key in active:
        key.state = KeyState.RETIRED
        key.expires_at = now + grace
    new = await create_key(session, box, clock, app_id, scheme)
    return new, [k.kid for k in active]


async def compromise(
    session: AsyncSession,
    box: SecretBox,
    clock: Clock,
    app: OAuthApplication,
    kid: str,
    *,
    max_payload_bytes: int = outbox.DEFAULT_MAX_PAYLOAD_BYTES,
) -> Compromise:
    """Revoke a leaked key, issue a new one, re-stamp undelivered entries, tell the RP.

    All in the caller's transaction: when it commits, no attempt that starts
    afterwards is signed with the revoked key, including entries claimed before
    (dispatchers read the keys when an attempt starts, and an attempt that was in
    flight across the commit does not count: its entry is sent again).
    """
    now = clock.now()
    key = await session.scalar(
        select(WebhookSigningKey)
        .where(WebhookSigningKey.oauth_application_id == app.id, WebhookSigningKey.kid == kid)
        .with_for_update()
    )
    if key is None:
        raise SigningKeyNotFound(
            f"application {app.client_id} has no webhook signing key {kid[:80]!r} "
            f"(see `onepass webhooks keys list {app.client_id}`)"
        )
    if key.revoked_at is not None:
        raise WebhookError(
            f"webhook signing key {kid} was already revoked at {outbox.timestamp_text(key.revoked_at)}"
        )
    key.revoked_at = now
    key.state = KeyState.REVOKED
    # The new key takes over; any other active key retires with the usual grace.
    for other in await list_keys(session, app.id):
        if other.id != key.id and other.state == KeyState.ACTIVE and other.signs_at(now):
            other.state = KeyState.RETIRED
            other.expires_at = now + DEFAULT_GRACE
    new = await create_key(session, box, clock, app.id, key.scheme)
    table = cast(Table, WebhookOutboxEntry.__table__)
    restamped = await session.execute(
        update(table)
        .where(
            table.c.oauth_application_id == app.id,
            ~outbox_queries.condition(Status.DELIVERED, table.c),  # pending or dead
        )
        .values(key_epoch=table.c.key_epoch + 1)
        .returning(table.c.id)
    )
    count = len(restamped.all())
    event_id = await outbox.enqueue(
        session,
        app,
        EventType.WEBHOOK_KEY_COMPROMISED,
        {
            "revoked_kid": kid,
            "kid": new.kid,
            "revoked_at": outbox.timestamp_text(now),
            "message": "this signing key was revoked as compromised; stop accepting it and "
            "fetch your current webhook signing keys",
        },
        f"webhook_key.compromised.{kid}",
        clock=clock,
        max_payload_bytes=max_payload_bytes,
    )
    return Compromise(kid, new, count, event_id)
