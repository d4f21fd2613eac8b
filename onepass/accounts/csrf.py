"""CSRF protection for 1pass's own forms.

A random value in an HttpOnly, SameSite=Lax cookie; each form carries an HMAC of it.
A cross-site page can neither read the cookie nor compute the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from onepass.cookies import cookie_name
from onepass.crypto import derive_key
from onepass.pages import render
from onepass.services import Service, runtime_of
from onepass.settings import Settings

COOKIE = "onepass_csrf"


def cookie_for(settings: Settings) -> str:
    """The cookie's name: one cookie (Path=/) for the login pages and the admin console."""
    return cookie_name(settings, COOKIE)


class CSRF:
    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "onepass/csrf/v1")

    @staticmethod
    def new_cookie_value() -> str:
        return secrets.token_urlsafe(32)

    def token_for(self, cookie_value: str) -> str:
        return hmac.new(self._key, cookie_value.encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie_value: str | None, token: str | None) -> bool:
        if not cookie_value or not token or len(cookie_value) > 128:
            return False
        # As bytes: compare_digest refuses str with non-ASCII characters (a forged form).
        return hmac.compare_digest(self.token_for(cookie_value).encode(), token.encode())


CSRF_TOKENS: Service[CSRF] = Service("accounts.csrf")


def _cookie_of(request: HTTPConnection) -> tuple[str, bool]:
    """The browser's CSRF cookie value, or a new one (and True) when it has none."""
    value = request.cookies.get(cookie_for(runtime_of(request).settings))
    if value and len(value) <= 128:
        return value, False
    return CSRF.new_cookie_value(), True


def form_page(
    request: HTTPConnection,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    language: str | None = None,
    scripts: tuple[str, ...] = (),
) -> Response:
    """Render a page with a form: its ``csrf_token``, and the cookie it is made from
    when the browser has none yet."""
    settings = runtime_of(request).settings
    cookie, is_new = _cookie_of(request)
    context = {**context, "csrf_token": CSRF_TOKENS.of(request).token_for(cookie)}
    response = render(template, context, status, language=language, scripts=scripts)
    if is_new:
        response.set_cookie(
            cookie_for(settings),
            cookie,
            httponly=True,
            secure=settings.secure_cookies,
            samesite="lax",
            path="/",
        )
    return response


def genuine(request: HTTPConnection, form: Mapping[str, str]) -> bool:
    """The posted ``csrf_token`` was made from this browser's cookie: the form is one
    of our pages, posted by this browser."""
    cookie = request.cookies.get(cookie_for(runtime_of(request).settings))
    return CSRF_TOKENS.of(request).valid(cookie, form.get("csrf_token"))
