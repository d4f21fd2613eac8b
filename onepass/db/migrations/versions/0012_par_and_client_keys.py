"""Pushed authorization requests (RFC 9126): ``pushed_authorization_requests`` and a
client's ``require_pushed_authorization_requests``; private_key_jwt (RFC 7523): a
client's ``jwks`` / ``jwks_uri`` and ``used_client_assertions``. Issue 14.

Expand-only: new tables and nullable columns or one with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import onepass.db.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "pushed_authorization_requests",
        sa.Column("id", ID, nullable=False),
        sa.Column("request_uri_hash", sa.String(length=128), nullable=False),
        sa.Column("oauth_application_id", ID, nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("used_at"),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_pushed_authorization_requests_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pushed_authorization_requests")),
        sa.UniqueConstraint(
            "request_uri_hash", name=op.f("uq_pushed_authorization_requests_request_uri_hash")
        ),
    )
    op.create_index(
        op.f("ix_pushed_authorization_requests_expires_at"),
        "pushed_authorization_requests",
        ["expires_at"],
        unique=False,
    )
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "require_pushed_authorization_requests",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("jwks", JSON, nullable=True))
        batch_op.add_column(sa.Column("jwks_uri", sa.Text(), nullable=True))
    op.create_table(
        "used_client_assertions",
        sa.Column("jti_hash", sa.String(length=128), nullable=False),
        _when("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("jti_hash", name=op.f("pk_used_client_assertions")),
    )
    op.create_index(
        op.f("ix_used_client_assertions_expires_at"),
        "used_client_assertions",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_used_client_assertions_expires_at"), table_name="used_client_assertions")
    op.drop_table("used_client_assertions")
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_column("jwks_uri")
        batch_op.drop_column("jwks")
        batch_op.drop_column("require_pushed_authorization_requests")
    op.drop_index(
        op.f("ix_pushed_authorization_requests_expires_at"),
        table_name="pushed_authorization_requests",
    )
    op.drop_table("pushed_authorization_requests")
