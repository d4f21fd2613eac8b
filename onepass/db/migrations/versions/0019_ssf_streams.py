"""Shared Signals (OpenID SSF 1.0, CAEP, RISC): streams an RP registers, and the Security Event Tokens kept for polling (RFC 8936).

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import onepass.db.types

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine:  # type: ignore[type-arg]
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ssf_streams",
        sa.Column("id", ID, nullable=False),
        sa.Column("oauth_application_id", ID, nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("delivery_method", sa.String(length=40), nullable=False),
        sa.Column("endpoint_url", sa.Text(), nullable=True),
        sa.Column("authorization_header_encrypted", sa.Text(), nullable=True),
        sa.Column("events_requested", _json(), nullable=False),
        sa.Column("events_delivered", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_ssf_streams_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_streams")),
        sa.UniqueConstraint(
            "oauth_application_id", name=op.f("uq_ssf_streams_oauth_application_id")
        ),
        sa.UniqueConstraint("stream_id", name=op.f("uq_ssf_streams_stream_id")),
    )
    op.create_table(
        "ssf_queued_sets",
        sa.Column("id", ID, nullable=False),
        sa.Column("ssf_stream_id", ID, nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["ssf_stream_id"],
            ["ssf_streams.id"],
            name=op.f("fk_ssf_queued_sets_ssf_stream_id_ssf_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ssf_queued_sets")),
        sa.UniqueConstraint(
            "ssf_stream_id", "jti", name=op.f("uq_ssf_queued_sets_ssf_stream_id_jti")
        ),
    )


def downgrade() -> None:
    op.drop_table("ssf_queued_sets")
    op.drop_table("ssf_streams")
