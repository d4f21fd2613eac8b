"""Server-rendered pages (Jinja2): login, consent, errors, logout, status, home.

Every page is sent with headers that keep it out of frames and caches. Templates are
rendered by Jinja2 with its i18n extension (``_``, ``gettext``, ``{% trans %}``), one
environment per language holding that language's catalogue (``onepass.i18n``). A
page rendered with a ``language`` gets ``lang`` for ``<html lang>`` and says which
language it is in; without one it is in English.

Every end-user page carries the operator's brand (``Brand``, from the ``ONEPASS_BRAND_*``
settings): the application sets it for each request (``use_brand``) and ``render``
gives it to the templates as ``brand``. The admin console is the operator's own tool
and always says 1pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from onepass import i18n
from onepass.settings import Settings

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
    # A template rendered outside ``render`` (a test, a tool) says 1pass.
    env.globals["brand"] = DEFAULT_BRAND
    return env


SCRIPTS_CSP = PAGE_HEADERS["content-security-policy"].replace(
    "default-src 'none';", "default-src 'none'; script-src 'self';"
)


@dataclass(frozen=True)
class Brand:
    """What the end-user pages are branded with (``ONEPASS_BRAND_*``, validated by
    ``Settings``). The accent colour reaches the pages as a stylesheet, ``/brand.css``
    (the CSP allows no inline style); its URL carries a hash of its content, so it may
    be cached for good and a new colour is fetched at once."""

    name: str = "1pass"
    logo_url: str | None = None
    accent: str | None = None
    support_url: str | None = None
    privacy_url: str | None = None
    terms_url: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Brand:
        return cls(
            name=settings.brand_name,
            logo_url=settings.brand_logo_url,
            accent=settings.brand_accent,
            support_url=settings.support_url,
            privacy_url=settings.privacy_url,
            terms_url=settings.terms_url,
        )

    @property
    def stylesheet(self) -> bytes | None:
        """``/brand.css``: the accent as the variable ``static/style.css`` uses."""
        return f":root{{--accent:{self.accent}}}\n".encode() if self.accent else None

    @property
    def stylesheet_version(self) -> str:
        return hashlib.sha256(self.stylesheet or b"").hexdigest()[:20]

    @property
    def stylesheet_etag(self) -> str:
        return f'"{self.stylesheet_version}"'  # strong: the bytes are the same

    @property
    def stylesheet_url(self) -> str | None:
        return f"/brand.css?v={self.stylesheet_version}" if self.accent else None

    @property
    def inline_logo(self) -> bool:
        """The logo is a data: URI, which the page's CSP must then allow as an image."""
        return self.logo_url is not None and self.logo_url.startswith("data:")

    @property
    def has_links(self) -> bool:
        return bool(self.support_url or self.privacy_url or self.terms_url)


DEFAULT_BRAND = Brand()
_BRAND: ContextVar[Brand] = ContextVar("onepass.pages.brand", default=DEFAULT_BRAND)


@contextmanager
def use_brand(brand: Brand) -> Iterator[None]:
    """Pages rendered inside this block (one request's) carry ``brand``."""
    token = _BRAND.set(brand)
    try:
        yield
    finally:
        _BRAND.reset(token)


def current_brand() -> Brand:
    return _BRAND.get()


def render(
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    language: str | None = None,
    scripts: tuple[str, ...] = (),
    csp: str | None = None,
) -> HTMLResponse:
    """``scripts``: files of ``/static`` the page loads (the passkey ceremonies); only
    such a page's CSP allows scripts, and only same-origin files (never inline).
    ``csp``: a page's own policy instead (the form_post page's: one nonce'd script,
    forms only to the client's origin)."""
    headers = dict(PAGE_HEADERS)
    if scripts:
        headers["content-security-policy"] = SCRIPTS_CSP
        context = {**context, "scripts": scripts}
    if csp is not None:
        headers["content-security-policy"] = csp
    # The admin console is the operator's tool: never branded.
    brand = DEFAULT_BRAND if template.startswith("admin/") else _BRAND.get()
    context = {"brand": brand, **context}
    if brand.inline_logo:
        # Only a configured data: logo widens img-src, and only to data: images.
        headers["content-security-policy"] = headers["content-security-policy"].replace(
            "img-src 'self';", "img-src 'self' data:;"
        )
    if language is not None:
        context = {**context, "lang": language}
        headers["content-language"] = language
        headers["vary"] = "Accept-Language"
    html = environment(language or i18n.DEFAULT).get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
