"""The language of a page, and its sentences in that language: gettext catalogues
through Babel, used by Jinja2's ``jinja2.ext.i18n`` extension (``onepass.pages``).

Templates mark sentences with ``_("…")`` (or ``{% trans %}``); Python code marks a
sentence a template translates later with ``N_("…")``. ``pybabel extract`` collects
them into ``translations/messages.pot`` and ``pybabel update`` carries them into
``translations/ko/LC_MESSAGES/messages.po`` (CONTRIBUTING.md has the commands).
The ``.po`` is compiled in memory when first used, so no ``.mo`` is built or committed;
``tests/unit/core/test_translations.py`` fails when a marked sentence has no Korean.
Times read by people go through ``when``: UTC to the minute, and how long ago.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

CATALOGUES = Path(__file__).parent / "translations"
DOMAIN = "messages"
DEFAULT = "en"
LANGUAGES = ("en", "ko")


def N_(message: str) -> str:
    """Marks ``message`` for extraction and returns it untranslated: for sentences
    chosen in Python and translated where a page shows them (``_(summary)``)."""
    return message


def page_language(
    *, accept_language: str | None, ui_locales: Sequence[str] = (), saved: str | None = None
) -> str:
    """The language a page is written in. The one place that chooses it; in order:

    1. ``ui_locales`` of the authorization request (OIDC Core §3.1.2.1): the first
       of them 1pass has, by its primary subtag (``ko-KR`` is ``ko``);
    2. the language the signed-in person chose on their account page (``saved``);
    3. the browser's ``Accept-Language`` (``language_of``).
    """
    for tag in ui_locales:
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES:
            return primary
    if saved in LANGUAGES:
        return str(saved)
    return language_of(accept_language)


def mail_language(saved: str | None, page: str) -> str:
    """A mail to a person: in the language they chose, else the page's that caused it."""
    return str(saved) if saved in LANGUAGES else page


def translate(language: str, message: str, **params: object) -> str:
    """``message`` (an English msgid, marked with ``N_``) in ``language``, with its
    ``%(name)s`` placeholders filled; a message the catalogue lacks stays as it is."""
    text = translations(language).gettext(message)
    return text % params if params else text


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
def translations(language: str) -> NullTranslations:
    """The gettext translations of ``language``, compiled from its ``.po`` (fuzzy
    entries left out, so they show English); English is the source and needs none."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for language {language!r}; there are {LANGUAGES}")
    if language == DEFAULT:
        return NullTranslations()
    with (CATALOGUES / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    mo = BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    return Translations(mo, domain=DOMAIN)


def parse_instant(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def ago(seconds: float, language: str) -> str:
    """How long ago, in words: "just now", "12 min ago", "3 h ago", "2 days ago".

    Not ``babel.dates.format_timedelta``: it rounds, says "10 seconds ago" where a
    status page means "just now", and writes "12 min. ago" / "12 minutes ago"; these
    short forms read better on the page (its Korean is the same as Babel's)."""
    _ = translations(language).gettext
    seconds = max(0.0, seconds)
    if seconds < 60:
        return _("just now")
    minutes = int(seconds // 60)
    if minutes < 60:
        return _("%(minutes)d min ago") % {"minutes": minutes}
    hours = minutes // 60
    if hours < 48:
        return _("%(hours)d h ago") % {"hours": hours}
    return _("%(days)d days ago") % {"days": hours // 24}


def when(value: str | datetime, now: datetime, language: str) -> str:
    """An instant for a person: "2026-01-31 12:05 UTC (12 min ago)"."""
    instant = parse_instant(value)
    return f"{instant:%Y-%m-%d %H:%M} UTC ({ago((now - instant).total_seconds(), language)})"
