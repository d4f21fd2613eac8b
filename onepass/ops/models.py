"""Incidents and their timeline (the playbook's severity, acknowledgement and escalation)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base
from onepass.db.types import IdType, UTCDateTime
from onepass.webhooks.models import WebhookDeliveryAttempt

OPEN = "resolved_at IS NULL"


class IncidentStatus(StrEnum):
    OPEN = "open"  # nobody has acknowledged it yet: escalation runs
    ACKNOWLEDGED = "acknowledged"  # someone is on it
    RESOLVED = "resolved"


class UpdateKind(StrEnum):
    OPENED = "opened"
    UPDATE = "update"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class Incident(Base):
    """One incident, sev1 (every RP's login is down) to sev3 (one RP, one user)."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sev: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_by: Mapped[str] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    # The last escalation step taken (ops.escalation.Step: 0 none, 1 first line,
    # 2 second line, 3 external), and when: `incidents escalate` takes each step once.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # What escalation and the status page read: the open incidents.
        Index(
            "ix_incidents_open",
            "sev",
            "opened_at",
            postgresql_where=text(OPEN),
            sqlite_where=text(OPEN),
        ),
    )


class IncidentUpdate(Base):
    """One line of an incident's timeline: opened, a note, acknowledged, escalated, resolved."""

    __tablename__ = "incident_updates"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    # Shown on the public status page (sev1 only); operators' notes are not, unless
    # written with `incidents update --public`.
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    # Escalation steps: the step taken, and the notice sent to
    # ONEPASS_ESCALATION_WEBHOOK_URL (NULL until it was accepted; retried until then).
    escalation_level: Mapped[int | None] = mapped_column(Integer)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notify_error: Mapped[str | None] = mapped_column(Text)


# Triage reads the delivery attempts of the last minutes (ops.triage); the attempt log
# grows with every delivery, so that read goes through an index on started_at. The
# table belongs to webhooks; the index is the operations domain's, created by 0006.
Index("ix_webhook_delivery_attempts_started_at", WebhookDeliveryAttempt.started_at)


class ProcessHeartbeat(Base):
    """A running server worker or dispatcher and the release it runs, refreshed every few
    seconds (``ops.releases``): ``onepass triage`` names processes running different
    releases at once, the playbook's "which deploys are recent?"."""

    __tablename__ = "process_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    kind: Mapped[str] = mapped_column(String(16))  # serve | dispatch
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(40))
    commit: Mapped[str | None] = mapped_column(String(40))
    revision: Mapped[str] = mapped_column(String(32))
    # The secret keys this process decrypts with (crypto.fingerprint), comma-separated.
    key_fingerprints: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
