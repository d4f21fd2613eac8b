from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base
from onepass.db.types import IdType, UTCDateTime


class IdentityLink(Base):
    """The source of truth of merges: ``source_user_id`` was merged into ``target_user_id``.

    Every chain is one hop: when a user that others were merged into is merged in
    turn, their links are repointed to the new target. ``source_user_id`` is unique:
    a user is merged at most once.
    """

    __tablename__ = "identity_links"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source_user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    target_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "target_user_id"),)
