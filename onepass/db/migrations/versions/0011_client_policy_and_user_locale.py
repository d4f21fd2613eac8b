"""A client's sign-in policy and policy links (``require_second_factor``,
``policy_uri``, ``tos_uri`` on ``oauth_applications``) and a person's saved language
(``users.locale``): self-service, issue 13.

Expand-only: nullable columns and one with a server default, so the previous release
(which does not name them) reads and inserts rows as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "require_second_factor", sa.Boolean(), server_default=sa.false(), nullable=False
            )
        )
        batch_op.add_column(sa.Column("policy_uri", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tos_uri", sa.Text(), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locale")
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_column("tos_uri")
        batch_op.drop_column("policy_uri")
        batch_op.drop_column("require_second_factor")
