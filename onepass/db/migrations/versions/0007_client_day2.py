"""Client day-2 management: a previous secret kept during a rotation's grace, and a
disabled state (with a partial index for the webhook claim). Nullable columns and an
index only, so the previous release runs on this schema.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import onepass.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_secret_hash", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column(
                "previous_secret_expires_at",
                onepass.db.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("disabled_at", onepass.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_oauth_applications_disabled",
            ["id"],
            unique=False,
            postgresql_where=sa.text("disabled_at IS NOT NULL"),
            sqlite_where=sa.text("disabled_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_index("ix_oauth_applications_disabled")
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_hash")
