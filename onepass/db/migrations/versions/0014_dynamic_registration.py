"""Dynamic Client Registration (RFC 7591/7592): initial access tokens and a client's registration access token.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import onepass.db.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "initial_access_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=400), nullable=False),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _when("revoked_at"),
        _when("last_used_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_initial_access_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_initial_access_tokens_token_hash")),
    )
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registration_source", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("initial_access_token_id", ID, nullable=True))
        batch_op.add_column(
            sa.Column("registration_access_token_hash", sa.String(length=128), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_oauth_applications_initial_access_token_id_initial_access_tokens"),
            "initial_access_tokens",
            ["initial_access_token_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_oauth_applications_initial_access_token_id_initial_access_tokens"),
            type_="foreignkey",
        )
        batch_op.drop_column("registration_access_token_hash")
        batch_op.drop_column("initial_access_token_id")
        batch_op.drop_column("registration_source")
    op.drop_table("initial_access_tokens")
