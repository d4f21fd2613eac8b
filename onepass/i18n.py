"""The language of a page: English or Korean, from the browser's ``Accept-Language``.

A page's template marks its sentences with ``_("…")``; ``translator(language)`` looks
each up in ``translations/<language>.json`` (the English sentence is the key, so a
missing entry shows English, and ``tests/unit/core/test_translations.py`` fails when
a marked sentence has no Korean). Times read by people go through ``when``: UTC to
the minute, and how long ago, in the page's language.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

CATALOGUES = Path(__file__).parent / "translations"
DEFAULT = "en"
LANGUAGES = ("en", "ko")


def language_of(accept_language: str | None) -> str:
    """The first language of ``LANGUAGES`` the browser asks for, by its q-values
    (RFC 9110 §12.5.4); English when it asks for none of them."""
    best, best_q = DEFAULT, 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        # Equal q: the earlier one wins (a tiny tie-break by position).
        weight = q - position * 1e-6
        if q > 0 and weight > best_q:
            best, best_q = primary, weight
    return best


@cache
def catalogue(language: str) -> dict[str, str]:
    """English sentence → its translation (empty for English)."""
    if language == DEFAULT:
        return {}
    data: dict[str, str] = json.loads((CATALOGUES / f"{language}.json").read_text("utf-8"))
    return data


def translator(language: str) -> Callable[[str], str]:
    """``_``: a sentence in ``language`` (its English when the catalogue lacks it)."""
    table = catalogue(language)

    def translate(text: str) -> str:
        return table.get(text, text)

    return translate


def parse_instant(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def ago(seconds: float, language: str) -> str:
    """How long ago, in words: "just now", "12 min ago", "3 h ago", "2 days ago"."""
    korean = language == "ko"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "방금" if korean else "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}분 전" if korean else f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}시간 전" if korean else f"{hours} h ago"
    days = hours // 24
    return f"{days}일 전" if korean else f"{days} days ago"


def when(value: str | datetime, now: datetime, language: str) -> str:
    """An instant for a person: "2026-01-31 12:05 UTC (12 min ago)"."""
    instant = parse_instant(value)
    return f"{instant:%Y-%m-%d %H:%M} UTC ({ago((now - instant).total_seconds(), language)})"
