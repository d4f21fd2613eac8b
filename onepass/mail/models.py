"""The mail outbox: one row per message, pending, sent or dead."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base
from onepass.db.types import IdType, UTCDateTime

PENDING = "sent_at IS NULL AND dead_at IS NULL"


class MailOutboxEntry(Base):
    """A message, rendered when it was queued (in the language of the person it goes
    to) and kept encrypted (``body_encrypted``: its text and HTML hold a single-use
    link) until it is sent; then the body is erased and the row is the record that it
    went. Without an SMTP server in development the body is kept, so that
    ``onepass mail list`` shows the link."""

    __tablename__ = "mail_outbox_entries"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # What the mail is (``password_reset``, ``password_changed``, …): its templates.
    kind: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    to_address: Mapped[str] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    body_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A pending mail is claimed once ``due_at`` has passed and no lease holds it.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The SMTP reply code of the last attempt (None: no reply, e.g. connection refused).
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # ``log`` when written to the log (no SMTP server in development), else ``smtp``.
    sent_via: Mapped[str | None] = mapped_column(String(16))
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_mail_outbox_entries_due",
            "due_at",
            postgresql_where=text(PENDING),
            sqlite_where=text(PENDING),
        ),
        Index(None, "user_id"),
    )
