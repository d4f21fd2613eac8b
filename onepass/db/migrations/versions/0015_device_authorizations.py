"""Device Authorization Grant (RFC 8628): pending device authorizations and their user codes.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import onepass.db.types

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "device_authorizations",
        sa.Column("id", ID, nullable=False),
        sa.Column("device_code_hash", sa.String(length=128), nullable=False),
        sa.Column("user_code", sa.String(length=16), nullable=False),
        sa.Column("oauth_application_id", ID, nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("poll_interval", sa.Integer(), nullable=False),
        sa.Column("user_id", ID, nullable=True),
        _when("decided_at"),
        _when("auth_time"),
        sa.Column("acr", sa.String(length=100), nullable=True),
        sa.Column("amr", JSON, nullable=True),
        sa.Column("sid", sa.String(length=64), nullable=True),
        _when("redeemed_at"),
        sa.Column("access_token_jti", sa.String(length=64), nullable=True),
        _when("access_token_expires_at"),
        sa.Column("refresh_token_family", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_device_authorizations_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_device_authorizations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_authorizations")),
        sa.UniqueConstraint(
            "device_code_hash", name=op.f("uq_device_authorizations_device_code_hash")
        ),
        sa.UniqueConstraint("user_code", name=op.f("uq_device_authorizations_user_code")),
    )
    op.create_index(
        op.f("ix_device_authorizations_expires_at"),
        "device_authorizations",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_device_authorizations_expires_at"), table_name="device_authorizations")
    op.drop_table("device_authorizations")
