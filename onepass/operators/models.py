from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base, JSONType
from onepass.db.types import IdType, UTCDateTime


class AdminToken(Base):
    """A bearer token for the admin API, held by one administrator, limited to scopes.

    Only its keyed hash is stored; the token is shown once, when created.
    """

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # The first characters of the token, to tell tokens apart in lists and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "user_id"),)


class ActionRequestNonce(Base):
    """Proof of a fresh second factor for one action on one target: issued by the
    step-up endpoint after a TOTP check, consumed once by that action, short-lived.

    Only its keyed hash is stored.
    """

    __tablename__ = "action_request_nonces"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    nonce_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    admin_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("admin_tokens.id", ondelete="CASCADE")
    )
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "user_id"),)


class AuditLogEntry(Base):
    """Who did what to what, when, through which door, and how it ended."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # "admin:<email>" for the admin API and console, "cli:<os user>" for the CLI.
    actor: Mapped[str] = mapped_column(String(400))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(16))  # api, console, cli
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(16))  # ok, denied, failed
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "at"), Index(None, "actor_user_id"))
