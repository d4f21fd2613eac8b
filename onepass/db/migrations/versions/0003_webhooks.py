"""Webhooks: outbox entries (with their dead-letter state), delivery attempts, signing keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import onepass.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "delivered_at IS NULL AND dlq_at IS NULL"
DEAD = "dlq_at IS NOT NULL AND delivered_at IS NULL"


def _id() -> sa.types.TypeEngine[Any]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when() -> sa.types.TypeEngine[Any]:
    return onepass.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_outbox_entries",
        sa.Column("id", _id(), nullable=False),
        sa.Column("oauth_application_id", _id(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("enqueued_at", _when(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_retry_at", _when(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("delivered_at", _when(), nullable=True),
        sa.Column("dlq_at", _when(), nullable=True),
        sa.Column("due_at", _when(), nullable=False),
        sa.Column("leased_by", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", _when(), nullable=True),
        sa.Column("key_epoch", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_webhook_outbox_entries_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox_entries")),
        sa.UniqueConstraint(
            "oauth_application_id",
            "idempotency_key",
            name=op.f("uq_webhook_outbox_entries_oauth_application_id_idempotency_key"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page, so that a claim (which changes no indexed column) can
        # update its rows in place (HOT) instead of adding index entries.
        op.execute("ALTER TABLE webhook_outbox_entries SET (fillfactor = 80)")
    with op.batch_alter_table("webhook_outbox_entries", schema=None) as batch_op:
        # The claim: pending entries in due order (a partial index: delivered and
        # dead entries, the bulk of the table, are not in it).
        batch_op.create_index(
            "ix_webhook_outbox_entries_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text(PENDING),
            sqlite_where=sa.text(PENDING),
        )
        # The dead-letter queue per application.
        batch_op.create_index(
            "ix_webhook_outbox_entries_dead",
            ["oauth_application_id", "dlq_at"],
            unique=False,
            postgresql_where=sa.text(DEAD),
            sqlite_where=sa.text(DEAD),
        )

    op.create_table(
        "webhook_signing_keys",
        sa.Column("id", _id(), nullable=False),
        sa.Column("oauth_application_id", _id(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("scheme", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("expires_at", _when(), nullable=True),
        sa.Column("revoked_at", _when(), nullable=True),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_webhook_signing_keys_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_signing_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_webhook_signing_keys_kid")),
    )
    with op.batch_alter_table("webhook_signing_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_signing_keys_oauth_application_id"),
            ["oauth_application_id"],
            unique=False,
        )

    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("id", _id(), nullable=False),
        sa.Column("outbox_entry_id", _id(), nullable=False),
        sa.Column("oauth_application_id", _id(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", _when(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("signed_kids", _json(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("dispatcher", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_webhook_delivery_attempts_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_entry_id"],
            ["webhook_outbox_entries.id"],
            name=op.f("fk_webhook_delivery_attempts_outbox_entry_id_webhook_outbox_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery_attempts")),
    )
    with op.batch_alter_table("webhook_delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_delivery_attempts_outbox_entry_id"),
            ["outbox_entry_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_delivery_attempts_outbox_entry_id"))
    op.drop_table("webhook_delivery_attempts")
    with op.batch_alter_table("webhook_signing_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_signing_keys_oauth_application_id"))
    op.drop_table("webhook_signing_keys")
    with op.batch_alter_table("webhook_outbox_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_outbox_entries_dead")
        batch_op.drop_index("ix_webhook_outbox_entries_due")
    op.drop_table("webhook_outbox_entries")
