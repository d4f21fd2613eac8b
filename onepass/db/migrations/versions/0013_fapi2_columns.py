"""FAPI 2.0 (issue 14), the columns its parts share: DPoP (RFC 9449) — a client's
``dpop_bound_access_tokens`` and the key thumbprint (``dpop_jkt``) a code or a public
client's refresh token is bound to; signed request objects (RFC 9101) — a client's
``require_signed_request_object``; the profile a client is registered under
(``profile``: NULL for 1pass's default, ``fapi2``); OpenID Connect Back-Channel Logout
1.0 — a client's ``backchannel_logout_uri`` and ``backchannel_logout_session_required``,
and ``login_session_clients``, the RPs a login session signed in to.

Expand-only: a new table, and nullable columns or ones with a server default, which the
previous release neither reads nor needs to write.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import onepass.db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, onepass.db.types.UTCDateTime(timezone=True), nullable=nullable)


def _flag(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.add_column(_flag("dpop_bound_access_tokens"))
        batch_op.add_column(_flag("require_signed_request_object"))
        batch_op.add_column(sa.Column("profile", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("backchannel_logout_uri", sa.Text(), nullable=True))
        batch_op.add_column(_flag("backchannel_logout_session_required"))
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    op.create_table(
        "login_session_clients",
        sa.Column("login_session_id", ID, nullable=False),
        sa.Column("oauth_application_id", ID, nullable=False),
        _when("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["login_session_id"],
            ["login_sessions.id"],
            name=op.f("fk_login_session_clients_login_session_id_login_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["oauth_application_id"],
            ["oauth_applications.id"],
            name=op.f("fk_login_session_clients_oauth_application_id_oauth_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "login_session_id", "oauth_application_id", name=op.f("pk_login_session_clients")
        ),
    )
    op.create_index(
        op.f("ix_login_session_clients_oauth_application_id"),
        "login_session_clients",
        ["oauth_application_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_login_session_clients_oauth_application_id"), table_name="login_session_clients"
    )
    op.drop_table("login_session_clients")
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("oauth_applications", schema=None) as batch_op:
        batch_op.drop_column("backchannel_logout_session_required")
        batch_op.drop_column("backchannel_logout_uri")
        batch_op.drop_column("profile")
        batch_op.drop_column("require_signed_request_object")
        batch_op.drop_column("dpop_bound_access_tokens")
