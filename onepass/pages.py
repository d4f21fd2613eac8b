"""Server-rendered pages (Jinja2): login, consent, errors, logout, status, home.

Every page is sent with headers that keep it out of frames and caches. A page
rendered with a ``language`` (``onepass.i18n``) gets ``_`` to translate its sentences
and ``lang`` for ``<html lang>``, and says which language it is in.
"""

from __future__ import annotations

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

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    language: str | None = None,
) -> HTMLResponse:
    headers = dict(PAGE_HEADERS)
    if language is not None:
        context = {**context, "_": i18n.translator(language), "lang": language}
        headers["content-language"] = language
        headers["vary"] = "Accept-Language"
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
