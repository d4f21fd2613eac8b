"""Server-rendered pages (Jinja2): login, consent, errors, logout, status, home.

Every page is sent with headers that keep it out of frames and caches. Templates are
rendered by Jinja2 with its i18n extension (``_``, ``gettext``, ``{% trans %}``), one
environment per language holding that language's catalogue (``onepass.i18n``). A
page rendered with a ``language`` gets ``lang`` for ``<html lang>`` and says which
language it is in; without one it is in English.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from onepass import i18n

TEMPLATES = Path(__file__).parent / "templates"

PAGE_HEADERS = {
    "cache-control": "no-store",
    "pragma": "no-cache",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


@cache
def environment(language: str) -> Environment:
    """The templates, with gettext installed for ``language`` (newstyle: ``_`` escapes
    its placeholders and formats them itself, ``_("%(n)d min", n=12)``)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


SCRIPTS_CSP = PAGE_HEADERS["content-security-policy"].replace(
    "default-src 'none';", "default-src 'none'; script-src 'self';"
)


def render(
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    language: str | None = None,
    scripts: tuple[str, ...] = (),
) -> HTMLResponse:
    """``scripts``: files of ``/static`` the page loads (the passkey ceremonies); only
    such a page's CSP allows scripts, and only same-origin files (never inline)."""
    headers = dict(PAGE_HEADERS)
    if scripts:
        headers["content-security-policy"] = SCRIPTS_CSP
        context = {**context, "scripts": scripts}
    if language is not None:
        context = {**context, "lang": language}
        headers["content-language"] = language
        headers["vary"] = "Accept-Language"
    html = environment(language or i18n.DEFAULT).get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
