"""Every sentence a page marks for translation has its Korean, and pages pick the
browser's language and write times for people."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onepass import i18n
from onepass.ops import status

TEMPLATES = Path(i18n.__file__).parent / "templates"
MARKED = re.compile(r"""_\(\s*"((?:[^"\\]|\\.)*)"\s*\)""")


def marked_sentences() -> set[str]:
    found: set[str] = set()
    for template in TEMPLATES.rglob("*.html"):
        found |= {ast.literal_eval(f'"{m}"') for m in MARKED.findall(template.read_text())}
    return found


def summaries() -> set[str]:
    """The status page's summaries, which the template translates as ``_(summary)``."""
    tree = ast.parse(Path(status.__file__).read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.endswith(".")
        and ("1pass" in node.value or "operational" in node.value)
    }


def test_every_marked_sentence_has_its_korean() -> None:
    sentences = marked_sentences() | summaries()
    assert len(sentences) > 10
    korean = i18n.catalogue("ko")
    missing = sorted(s for s in sentences if not korean.get(s))
    assert missing == []
    unused = sorted(set(korean) - sentences)
    assert unused == []


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("fr, ko;q=0.5", "ko"),
        ("ko;q=0, en", "en"),
        ("ko;q=bogus", "en"),
    ],
)
def test_language_of_accept_language_picks_the_preferred_one(
    header: str | None, language: str
) -> None:
    assert i18n.language_of(header) == language


def test_when_gives_utc_minutes_and_how_long_ago_in_both_languages() -> None:
    now = datetime(2026, 1, 31, 12, 17, 40, tzinfo=UTC)
    assert i18n.when("2026-01-31T12:05:09Z", now, "en") == "2026-01-31 12:05 UTC (12 min ago)"
    assert i18n.when("2026-01-31T12:05:09Z", now, "ko") == "2026-01-31 12:05 UTC (12분 전)"
    assert i18n.when("2026-01-31T12:17:30+00:00", now, "en").endswith("(just now)")
    assert i18n.when("2026-01-31T09:00:00Z", now, "ko").endswith("(3시간 전)")
    assert i18n.when("2026-01-27T09:00:00Z", now, "en").endswith("(4 days ago)")
