"""Pairwise subject identifiers (OpenID Connect Core 1.0 §8.1): a client's subject type and sector.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import onepass.db.types

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "subject_type",
                sa.String(length=16),
                server_default=sa.text("'public'"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("sector_identifier_uri", sa.Text(), nullable=True))
    op.create_table(
        "pairwise_subjects",
        sa.Column("sector", sa.String(length=255), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("sub", sa.String(length=64), nullable=False),
        sa.Column("created_at", onepass.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_pairwise_subjects_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sector", "user_id", name=op.f("pk_pairwise_subjects")),
        sa.UniqueConstraint("sub", name=op.f("uq_pairwise_subjects_sub")),
    )
    op.create_index(
        op.f("ix_pairwise_subjects_user_id"), "pairwise_subjects", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pairwise_subjects_user_id"), table_name="pairwise_subjects")
    op.drop_table("pairwise_subjects")
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_column("sector_identifier_uri")
        batch_op.drop_column("subject_type")
