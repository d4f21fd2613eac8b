"""End users' passkeys (``user_passkeys``) and the WebAuthn challenges already
answered (``used_passkey_challenges``): self-service, issue 13.

Expand-only: two new tables, which the previous release ignores.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import onepass.db.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "user_passkeys",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=True),
        sa.Column("transports", JSON, nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        _when("created_at", nullable=False),
        _when("last_used_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_passkeys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_user_passkeys_credential_id")),
    )
    op.create_index(op.f("ix_user_passkeys_user_id"), "user_passkeys", ["user_id"], unique=False)
    op.create_table(
        "used_passkey_challenges",
        sa.Column("challenge_hash", sa.String(length=128), nullable=False),
        _when("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("challenge_hash", name=op.f("pk_used_passkey_challenges")),
    )
    op.create_index(
        op.f("ix_used_passkey_challenges_expires_at"),
        "used_passkey_challenges",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_used_passkey_challenges_expires_at"), table_name="used_passkey_challenges"
    )
    op.drop_table("used_passkey_challenges")
    op.drop_index(op.f("ix_user_passkeys_user_id"), table_name="user_passkeys")
    op.drop_table("user_passkeys")
