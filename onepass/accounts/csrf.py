"""CSRF protection for 1pass's own forms.

A random value in an HttpOnly, SameSite=Lax cookie; each form carries an HMAC of it.
A cross-site page can neither read the cookie nor compute the HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from onepass.cookies import cookie_name
from onepass.crypto import derive_key
from onepass.services import Service
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
        return hmac.compare_digest(self.token_for(cookie_value), token)


CSRF_TOKENS: Service[CSRF] = Service("accounts.csrf")
