"""`onepass db upgrade --check`'s judgement of a migration: safe while the previous
release serves (expand), worth a person's look (review), or not (contract)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from onepass.db import live

HEADER = """
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = None


def _flag(name):
    return sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False)


def upgrade() -> None:
"""


def migration(tmp_path: Path, rev: str, body: str) -> Path:
    path = tmp_path / f"{rev}_m.py"
    path.write_text(HEADER.format(rev=rev) + textwrap.indent(textwrap.dedent(body), "    "))
    return path


@pytest.mark.parametrize(
    ("body", "verdict", "says"),
    [
        (
            """
            op.create_table("t", sa.Column("id", sa.Integer(), primary_key=True))
            op.create_index(op.f("ix_t_id"), "t", ["id"])
            with op.batch_alter_table("users") as batch_op:
                batch_op.add_column(sa.Column("nickname", sa.Text(), nullable=True))
                batch_op.add_column(_flag("is_robot"))
            """,
            live.Verdict.EXPAND,
            None,
        ),
        (
            """
            with op.batch_alter_table("users") as batch_op:
                batch_op.create_index("ix_users_nickname", ["nickname"])
            """,
            live.Verdict.REVIEW,
            "index ix_users_nickname on existing table users",
        ),
        ('op.execute("UPDATE users SET locale = NULL")', live.Verdict.REVIEW, "raw SQL"),
        (
            """
            with op.batch_alter_table("users") as batch_op:
                batch_op.add_column(sa.Column("tier", sa.Text(), nullable=False))
            """,
            live.Verdict.CONTRACT,
            "users.tier is NOT NULL without a server default",
        ),
        (
            'op.add_column("users", sa.Column("tier", sa.Text(), nullable=False))',
            live.Verdict.CONTRACT,
            "users.tier is NOT NULL",
        ),
        (
            """
            with op.batch_alter_table("users") as batch_op:
                batch_op.drop_column("locale")
            """,
            live.Verdict.CONTRACT,
            "drop_column on users",
        ),
        ('op.drop_table("consents")', live.Verdict.CONTRACT, "drop_table on consents"),
        (
            """
            with op.batch_alter_table("oauth_applications") as batch_op:
                batch_op.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
                batch_op.create_foreign_key("fk_t", "tokens", ["token_id"], ["id"])
            """,
            live.Verdict.REVIEW,
            "create_foreign_key on oauth_applications's new column(s) token_id",
        ),
        (
            'op.create_foreign_key("fk_u", "consents", "users", ["user_id"], ["id"])',
            live.Verdict.CONTRACT,
            "create_foreign_key on consents",
        ),
        (
            'op.alter_column("users", "email", new_column_name="mail")',
            live.Verdict.CONTRACT,
            "alter_column on users",
        ),
    ],
)
def test_a_migration_is_judged_by_what_it_does(
    tmp_path: Path, body: str, verdict: live.Verdict, says: str | None
) -> None:
    assessment = live.assess(migration(tmp_path, "0042", body))
    assert assessment.verdict is verdict, assessment.reasons
    if says is None:
        assert assessment.reasons == []
    else:
        assert any(says in reason for reason in assessment.reasons), assessment.reasons


def test_pending_is_what_comes_after_the_applied_revision(tmp_path: Path) -> None:
    migration(tmp_path, "0001", 'op.create_table("a", sa.Column("id", sa.Integer()))')
    migration(tmp_path, "0002", 'op.drop_table("a")')
    migration(tmp_path, "0003", 'op.create_table("b", sa.Column("id", sa.Integer()))')
    assert [a.revision for a in live.pending(None, tmp_path)] == ["0001", "0002", "0003"]
    assert [(a.revision, a.verdict) for a in live.pending("0001", tmp_path)] == [
        ("0002", live.Verdict.CONTRACT),
        ("0003", live.Verdict.EXPAND),
    ]
    assert live.pending("0003", tmp_path) == []


def test_no_shipped_migration_contracts() -> None:
    """The rule for every migration (CONTRIBUTING.md): release N runs on N+1's schema.
    A contracting change ships in a later release than the code that stopped needing
    what it removes, and then this test names it; change it deliberately, then."""
    contracting = [
        (a.revision, a.reasons)
        for _, path in live.migrations()
        if (a := live.assess(path)).verdict is live.Verdict.CONTRACT
    ]
    assert contracting == []
