"""Resource Indicators (RFC 8707) and Token Exchange (RFC 8693): resource servers, a client's allowed resources and exchange policy, the resource a code or refresh token was granted for.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import onepass.db.types

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "resource_servers",
        sa.Column("id", ID, nullable=False),
        sa.Column("identifier", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("access_token_ttl", sa.Integer(), nullable=False),
        sa.Column("signing_alg", sa.String(length=16), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_servers")),
        sa.UniqueConstraint("identifier", name=op.f("uq_resource_servers_identifier")),
    )
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_resources", JSON, nullable=True))
        batch_op.add_column(sa.Column("token_exchange_resources", JSON, nullable=True))
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource", sa.Text(), nullable=True))
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_column("resource")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("resource")
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_column("token_exchange_resources")
        batch_op.drop_column("allowed_resources")
    op.drop_table("resource_servers")
