"""Issue 16: ``process_heartbeats``, the release each running server worker and
dispatcher reports (``onepass triage`` names processes running different releases) and
the fingerprints of the secret keys it accepts (``onepass secrets rotate`` checks them);
``installation_secrets``, the hashing key kept sealed once ONEPASS_SECRET_KEY is rotated.

Expand-only: new tables the previous release neither reads nor writes.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import onepass.db.types

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "process_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("commit", sa.String(length=40), nullable=True),
        sa.Column("revision", sa.String(length=32), nullable=False),
        sa.Column("key_fingerprints", sa.String(length=200), nullable=False),
        sa.Column("started_at", onepass.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", onepass.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_process_heartbeats")),
    )
    op.create_index(
        op.f("ix_process_heartbeats_seen_at"), "process_heartbeats", ["seen_at"], unique=False
    )
    op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", onepass.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_installation_secrets")),
    )


def downgrade() -> None:
    op.drop_table("installation_secrets")
    op.drop_index(op.f("ix_process_heartbeats_seen_at"), table_name="process_heartbeats")
    op.drop_table("process_heartbeats")
