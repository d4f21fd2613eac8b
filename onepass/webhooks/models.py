"""Webhook tables: the outbox (with its dead-letter state), the attempt log, signing keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base, JSONType
from onepass.db.types import IdType, UTCDateTime
from onepass.webhooks.outbox_queries import Status, sql

# The partial indexes' predicates, from the states' one definition (outbox_queries).
PENDING = sql(Status.PENDING)
DEAD = sql(Status.DEAD)


class WebhookOutboxEntry(Base):
    """One event for one application, written in the transaction of the change behind it.

    Pending, delivered or dead (the dead-letter queue): ``outbox_queries.STATES``.
    """

    __tablename__ = "webhook_outbox_entries"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Sent as ``webhook-id``: stable across retries, so the RP can deduplicate.
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # When the event happened: the body's ``timestamp``; never changes.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When it was (re)queued: set again by ``webhooks retry`` and ``replay-dlq``.
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next retry is scheduled; NULL for a first attempt (or after a manual retry).
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dlq_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Claims. A pending entry may be claimed once ``due_at`` has passed (on enqueue,
    # at its next retry) and it is not leased: a dispatcher's claim holds it until
    # ``lease_expires_at``, so an entry whose dispatcher died is claimed again then,
    # and no sooner.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_by: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Raised by a key compromise ("re-stamp"): the outcome of an attempt that was in
    # flight across it is not trusted, and the entry is sent again with valid keys.
    key_epoch: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("oauth_application_id", "idempotency_key"),
        # The claim: pending entries in due order.
        Index(
            "ix_webhook_outbox_entries_due",
            "due_at",
            postgresql_where=text(PENDING),
            sqlite_where=text(PENDING),
        ),
        # The dead-letter queue per application (playbook: dead count per application).
        Index(
            "ix_webhook_outbox_entries_dead",
            "oauth_application_id",
            "dlq_at",
            postgresql_where=text(DEAD),
            sqlite_where=text(DEAD),
        ),
    )


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    # The attempt's result was not applied: the entry was re-stamped by a key
    # compromise while it was in flight (it is sent again), or the lease was lost.
    DISCARDED = "discarded"


class WebhookDeliveryAttempt(Base):
    """One delivery attempt, whatever its outcome."""

    __tablename__ = "webhook_delivery_attempts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    outbox_entry_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_outbox_entries.id", ondelete="CASCADE"), index=True
    )
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    # "http_status", "timeout", "connection", "dns", "unsafe_target", "no_signing_key", …
    error_class: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    # The first few KB of the response body.
    response_body: Mapped[str | None] = mapped_column(Text)
    # The kids that signed this attempt, in header order.
    signed_kids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    outcome: Mapped[str] = mapped_column(String(16))
    dispatcher: Mapped[str] = mapped_column(String(200))


class KeyState(StrEnum):
    ACTIVE = "active"  # the newest key: signs every delivery
    RETIRED = "retired"  # replaced by a rotation: signs until ``expires_at`` (the grace)
    REVOKED = "revoked"  # compromised: never signs again


class WebhookSigningKey(Base):
    """A per-application webhook signing key (Standard Webhooks ``v1`` or ``v1a``)."""

    __tablename__ = "webhook_signing_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE"), index=True
    )
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    # "v1" (HMAC-SHA256, shared secret) or "v1a" (Ed25519, the RP holds the public key).
    scheme: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    # The HMAC secret or Ed25519 seed, AES-GCM under ONEPASS_SECRET_KEY, bound to the kid.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # v1a only: ``whpk_…``.
    public_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # End of the grace period after a rotation; NULL while the key is the active one.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def signs_at(self, when: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > when)


# --------------------------------------------------------------------------- Shared Signals


class SsfStream(Base):
    """An OpenID Shared Signals Framework 1.0 stream (§8.1): what one application asked
    to receive, and how. One stream per application (``oauth_application_id`` unique).

    Its SETs are delivered through the outbox (``ssf.set`` entries) when it pushes
    (RFC 8935), or kept in ``ssf_queued_sets`` until the RP polls them (RFC 8936); a
    paused push stream keeps them there too, until it is enabled again.
    """

    __tablename__ = "ssf_streams"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE"), unique=True
    )
    # §8.1.1 ``stream_id``: opaque, what the RP names it by.
    stream_id: Mapped[str] = mapped_column(String(64), unique=True)
    # ``urn:ietf:rfc:8935`` (push) or ``urn:ietf:rfc:8936`` (poll).
    delivery_method: Mapped[str] = mapped_column(String(40))
    # Push only: where SETs are POSTed (checked as webhook URLs are).
    endpoint_url: Mapped[str | None] = mapped_column(Text)
    # Push only: the ``Authorization`` header sent with them, AES-GCM under
    # ONEPASS_SECRET_KEY, bound to the stream id.
    authorization_header_encrypted: Mapped[str | None] = mapped_column(Text)
    events_requested: Mapped[list[str]] = mapped_column(JSONType, default=list)
    events_delivered: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[str | None] = mapped_column(Text)
    # §8.1.2: enabled, paused (SETs held), disabled (SETs dropped).
    status: Mapped[str] = mapped_column(String(16), default="enabled")
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SsfQueuedSet(Base):
    """A SET waiting for its RP: to be polled (RFC 8936; gone once acknowledged), or
    held while its push stream is paused (moved to the outbox when it is enabled).

    ``payload`` holds the claims an outbox entry's would (never a signature): the SET is
    signed when it is handed out, with the same ``jti`` every time."""

    __tablename__ = "ssf_queued_sets"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    ssf_stream_id: Mapped[int] = mapped_column(ForeignKey("ssf_streams.id", ondelete="CASCADE"))
    jti: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("ssf_stream_id", "jti"),)
