"""Scope strings (RFC 6749 §3.3): space-delimited, case-sensitive ``scope-token``s, and
the scopes a client is granted of those it is registered for.

Here, with the registry, because a registration's ``scope`` is parsed by the same
rules; ``/authorize`` and the grants (``onepass.oauth``) grant with ``grant_scope``.
"""

from __future__ import annotations

import re

from onepass.oauth_errors import InvalidScopeError

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

# Scopes that speak about an end user: meaningless without one.
USER_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


def parse_scope(value: str | None) -> list[str]:
    """Split a scope parameter, keeping order and dropping duplicates."""
    if value is None:
        return []
    tokens: list[str] = []
    for token in value.split(" "):
        if not token:
            continue
        if not _SCOPE_TOKEN.fullmatch(token):
            raise InvalidScopeError("scope contains a character RFC 6749 §3.3 does not allow")
        if token not in tokens:
            tokens.append(token)
    return tokens


def grant_scope(requested: list[str], allowed: frozenset[str], *, user_present: bool) -> list[str]:
    """The scopes to grant, or ``InvalidScopeError``.

    No scope requested: every scope the client is allowed (RFC 6749 §3.3 default).
    """
    if not requested:
        return sorted(s for s in allowed if user_present or s not in USER_SCOPES)
    not_allowed = [s for s in requested if s not in allowed]
    if not_allowed:
        raise InvalidScopeError(f"scope not allowed for this client: {' '.join(not_allowed)[:200]}")
    if not user_present:
        user_only = [s for s in requested if s in USER_SCOPES]
        if user_only:
            raise InvalidScopeError(f"scope needs an end user: {' '.join(user_only)}")
    return requested
