"""Names of 1pass's cookies, with the prefixes of RFC 6265bis §4.1.3 over https.

A browser keeps a ``__Host-`` cookie only if it is Secure, has ``Path=/`` and no
``Domain``: no other host (a sibling subdomain) and no plain-http page can set or
overwrite it, so a session or CSRF cookie cannot be planted from elsewhere. A
``__Secure-`` cookie must be Secure and set over https, but may have another path:
the admin console's cookie keeps ``Path=/admin`` (out of every end-user request) and
takes that prefix. Over http (development) a browser would refuse both prefixes, so
the names stay plain there; the prefix follows ``Settings.secure_cookies``, which
sets the Secure attribute.
"""

from __future__ import annotations

from onepass.settings import Settings

HOST_PREFIX = "__Host-"
SECURE_PREFIX = "__Secure-"


def cookie_name(settings: Settings, name: str, *, path: str = "/") -> str:
    """The name to set and read ``name`` under; ``path`` is the cookie's Path. 1pass
    never sets a Domain attribute, which ``__Host-`` forbids."""
    if not settings.secure_cookies:
        return name
    return (HOST_PREFIX if path == "/" else SECURE_PREFIX) + name
