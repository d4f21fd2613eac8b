"""Set-Cookie headers as a browser takes them (RFC 6265bis §5.6), prefix rules included.

A browser drops a ``__Secure-`` cookie that is not Secure or comes from an insecure
origin, and a ``__Host-`` cookie that is not Secure, has a Domain attribute or a Path
other than ``/`` (§4.1.3); it drops a Secure cookie from an insecure origin too. The
cookies left are what it would store (or delete) and send back.
"""

from __future__ import annotations

import httpx

Attributes = dict[str, str | bool]


def _parse(header: str) -> tuple[str, Attributes]:
    name_value, *parts = [part.strip() for part in header.split(";")]
    name, _, value = name_value.partition("=")
    attributes: Attributes = {"value": value}
    for part in parts:
        key, has_value, attribute = part.partition("=")
        attributes[key.strip().lower()] = attribute.strip() if has_value else True
    return name.strip(), attributes


def _kept(name: str, attributes: Attributes, secure_origin: bool) -> bool:
    secure = attributes.get("secure") is True
    if secure and not secure_origin:
        return False
    if name.startswith(("__Secure-", "__Host-")) and not secure:
        return False
    return not name.startswith("__Host-") or (
        attributes.get("path") == "/" and "domain" not in attributes
    )


def browser_cookies(response: httpx.Response, *, secure_origin: bool) -> dict[str, Attributes]:
    """The cookies of ``response`` a browser would keep, by name, with their attributes."""
    kept: dict[str, Attributes] = {}
    for header in response.headers.get_list("set-cookie"):
        name, attributes = _parse(header)
        if _kept(name, attributes, secure_origin):
            kept[name] = attributes
    return kept


def set_cookie_names(response: httpx.Response) -> list[str]:
    return [_parse(header)[0] for header in response.headers.get_list("set-cookie")]
