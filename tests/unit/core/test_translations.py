"""Every sentence a page marks for translation is in the catalogue template and has
its Korean, and pages pick the browser's language and write times for people.

The sentences are extracted from the sources now, with Babel and the project's own
``babel.cfg``, the way ``pybabel extract`` does, so a sentence added to a template
without running ``pybabel extract`` / ``update`` and translating it fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from onepass import i18n, pages

ROOT = Path(__file__).resolve().parents[3]
POT = i18n.CATALOGUES / "messages.pot"
KO = i18n.CATALOGUES / "ko" / "LC_MESSAGES" / "messages.po"


def extracted(root: Path) -> set[str]:
    """The msgids ``pybabel extract -F babel.cfg`` finds under ``root``."""
    with (ROOT / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        root, method_map, options_map
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalogue(path: Path) -> Catalog:
    with path.open("rb") as po:
        return read_po(po)


def untranslated(sentences: set[str], catalog: Catalog) -> list[str]:
    """The sentences without a usable translation: absent, empty or fuzzy."""
    return sorted(s for s in sentences if (m := catalog.get(s)) is None or not m.string or m.fuzzy)


def test_catalogue_template_is_current_with_the_sources() -> None:
    sentences = extracted(ROOT)
    assert len(sentences) > 20
    assert {m.id for m in catalogue(POT) if m.id} == sentences


def test_every_marked_sentence_has_its_korean_and_no_other() -> None:
    sentences = extracted(ROOT)
    korean = catalogue(KO)
    assert untranslated(sentences, korean) == []
    assert sorted({m.id for m in korean if m.id} - sentences) == []
    # Babel's own checks: python-format placeholders kept, and the like.
    assert [(m.id, [str(e) for e in errors]) for m, errors in korean.check()] == []


def test_untranslated_names_a_new_fuzzy_or_empty_sentence(tmp_path: Path) -> None:
    templates = tmp_path / "onepass" / "templates"
    templates.mkdir(parents=True)
    (templates / "new.html").write_text(
        '<p>{{ _("Status") }} {{ _("A new sentence") }}</p>\n'
        "<p>{% trans %}Guessed{% endtrans %} {{ gettext('Left empty') }}</p>\n"
    )
    sentences = extracted(tmp_path)
    assert sentences == {"Status", "A new sentence", "Guessed", "Left empty"}
    korean = catalogue(KO)
    korean.add("Guessed", "추측", flags=["fuzzy"])
    korean.add("Left empty", "")
    assert untranslated(sentences, korean) == ["A new sentence", "Guessed", "Left empty"]


def test_pages_in_korean_use_the_compiled_catalogue_and_english_is_the_source() -> None:
    home = pages.environment("ko").get_template("home.html")
    korean = home.render(missing=True, lang="ko")
    assert '<h1 id="heading">페이지가 없습니다</h1>' in korean
    assert "No page here" not in korean
    english = pages.environment("en").get_template("home.html").render(missing=True)
    assert '<h1 id="heading">No page here</h1>' in english


def test_translations_of_an_unknown_language_are_refused() -> None:
    with pytest.raises(ValueError, match="no catalogue"):
        i18n.translations("fr")


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
    assert i18n.page_language(accept_language=header) == language


def test_when_gives_utc_minutes_and_how_long_ago_in_both_languages() -> None:
    now = datetime(2026, 1, 31, 12, 17, 40, tzinfo=UTC)
    assert i18n.when("2026-01-31T12:05:09Z", now, "en") == "2026-01-31 12:05 UTC (12 min ago)"
    assert i18n.when("2026-01-31T12:05:09Z", now, "ko") == "2026-01-31 12:05 UTC (12분 전)"
    assert i18n.when("2026-01-31T12:17:30+00:00", now, "en").endswith("(just now)")
    assert i18n.when("2026-01-31T12:17:30+00:00", now, "ko").endswith("(방금)")
    assert i18n.when("2026-01-31T09:00:00Z", now, "ko").endswith("(3시간 전)")
    assert i18n.when("2026-01-31T09:00:00Z", now, "en").endswith("(3 h ago)")
    assert i18n.when("2026-01-27T09:00:00Z", now, "en").endswith("(4 days ago)")
    assert i18n.when("2026-01-27T09:00:00Z", now, "ko").endswith("(4일 전)")
