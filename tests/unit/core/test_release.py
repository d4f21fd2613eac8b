"""The release a process reports, and whether its schema may serve."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from onepass import __version__
from onepass.db.migrate import alembic_config
from onepass.release import _commit, head_revision, schema_state


def test_the_numbered_head_is_alembics_head() -> None:
    (alembic_head,) = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert head_revision() == alembic_head


def test_head_revision_takes_the_highest_numbered_migration(tmp_path: Path) -> None:
    for name in ["0001_a.py", "0010_b.py", "0009_c.py", "__init__.py", "notes.txt"]:
        (tmp_path / name).write_text("")
    assert head_revision(tmp_path) == "0010"


@pytest.mark.parametrize(
    ("applied", "shipped", "ready", "says"),
    [
        ("0019", "0019", True, "at 0019"),
        ("0020", "0019", True, "ahead of this release's 0019"),
        ("0018", "0019", False, "run onepass db upgrade"),
        (None, "0019", False, "no migration applied"),
        ("abc", "0019", False, "behind"),
    ],
)
def test_schema_state(applied: str | None, shipped: str, ready: bool, says: str) -> None:
    ok, detail = schema_state(applied, shipped)
    assert ok is ready
    assert says in detail


def test_commit_comes_from_the_environment_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPASS_RELEASE_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    assert _commit() == "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("ONEPASS_RELEASE_COMMIT", "not a sha; rm -rf /")
    assert _commit() != "not a sha; rm -rf /"


def test_version_is_the_package_version() -> None:
    from onepass.release import current

    assert current().version == __version__
