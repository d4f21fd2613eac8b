"""How an authorization response reaches the client: ``response_mode``.

- OAuth 2.0 Multiple Response Type Encoding Practices §2.1: ``query`` (the code flow's
  default) and ``fragment``;
- OAuth 2.0 Form Post Response Mode: ``form_post``, a page whose form the browser posts
  to the redirect URI, so the code never sits in a URL (history, logs, ``Referer``);
- JWT Secured Authorization Response Mode for OAuth 2.0 (JARM) §2.3: ``query.jwt``,
  ``fragment.jwt``, ``form_post.jwt`` and ``jwt`` (the response type's default,
  ``query.jwt`` for ``code``): the parameters travel inside one signed JWT,
  ``response``, with ``iss``, ``aud`` (the client_id) and ``exp`` (§2.1). It is signed,
  not encrypted (1pass publishes no encryption key and takes none from clients).

Every authorization response, a code or an error, uses the mode the request asked for.
A request whose ``response_mode`` is missing, repeated or unknown gets its error in the
default mode (``query``): that is the one the client can always read.

This module imports neither FastAPI nor SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

QUERY = "query"
FRAGMENT = "fragment"
FORM_POST = "form_post"
QUERY_JWT = "query.jwt"
FRAGMENT_JWT = "fragment.jwt"
FORM_POST_JWT = "form_post.jwt"
JWT = "jwt"
DEFAULT = QUERY
# What discovery advertises (``response_modes_supported``), in the order of the specs.
RESPONSE_MODES = (QUERY, FRAGMENT, FORM_POST, QUERY_JWT, FRAGMENT_JWT, FORM_POST_JWT, JWT)
JWT_MODES = frozenset({QUERY_JWT, FRAGMENT_JWT, FORM_POST_JWT, JWT})
# JARM §2.1: "the JWT [...] MUST contain [exp]": the response lives 10 minutes.
RESPONSE_TTL = 600
# The algorithm a client's responses are signed with when it registered none (JARM §3).
DEFAULT_ALG = "RS256"


class UnknownResponseMode(ValueError):
    """A ``response_mode`` 1pass does not have."""


def checked(value: str | None) -> str:
    """``value`` as a response mode (None: the default), or ``UnknownResponseMode``."""
    if value is None:
        return DEFAULT
    if value not in RESPONSE_MODES:
        raise UnknownResponseMode(value)
    return value


def lenient(value: str | None) -> str:
    """The mode to answer in before the request is validated: the one asked for when
    it is one, else the default (where the client can read its error)."""
    try:
        return checked(value)
    except UnknownResponseMode:
        return DEFAULT


def is_jwt(mode: str) -> bool:
    return mode in JWT_MODES


def delivery(mode: str) -> str:
    """How the (signed or plain) parameters travel: ``query``, ``fragment`` or
    ``form_post`` (JARM §2.3.4: ``jwt`` is ``query.jwt`` for the code flow)."""
    if mode == JWT:
        return QUERY
    return mode.removesuffix(".jwt")


def url_with(uri: str, params: dict[str, str], where: str) -> str:
    """``uri`` with ``params`` added to its query (keeping the query it has), or put in
    its fragment (``where`` is ``fragment``)."""
    parts = urlsplit(uri)
    encoded = urlencode(params)
    if where == FRAGMENT:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, encoded))
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def response_claims(
    params: dict[str, str], *, issuer: str, client_id: str, now: int
) -> dict[str, Any]:
    """JARM §2.1: the claims of the ``response`` JWT: ``iss``, ``aud`` and ``exp``, and
    the response's own parameters (``code`` and ``state``, or ``error``,
    ``error_description`` and ``state``)."""
    claims: dict[str, Any] = {k: v for k, v in params.items() if k != "iss"}
    claims.update(iss=issuer, aud=client_id, exp=now + RESPONSE_TTL)
    return claims


def form_action_source(redirect_uri: str) -> str | None:
    """The CSP source expression (CSP 3 §2.3.1) that lets a page post a form to
    ``redirect_uri`` and nowhere else: its origin. None for a URI with no http(s)
    origin (a native app's private-use scheme), which a form post cannot reach."""
    try:
        parts = urlsplit(redirect_uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    # A registered redirect URI is an exact string, but a header is no place to trust
    # one: only the characters a host may have go into the policy.
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-._:[]")
    if not set(host) <= allowed:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


@dataclass(frozen=True)
class AuthorizationResponse:
    """What goes back to the client: ``params`` (``code``, ``state``, ``iss``; or
    ``error``, ``error_description``, ``state``, ``iss``) to ``redirect_uri`` in
    ``mode``. ``signing_alg``: the client's ``authorization_signed_response_alg``, for
    the JWT modes."""

    redirect_uri: str
    params: dict[str, str]
    mode: str = DEFAULT
    client_id: str = ""
    signing_alg: str = DEFAULT_ALG

    @classmethod
    def of(
        cls,
        redirect_uri: str,
        params: dict[str, str | None],
        *,
        mode: str,
        client_id: str,
        signing_alg: str | None,
    ) -> AuthorizationResponse:
        return cls(
            redirect_uri,
            {k: v for k, v in params.items() if v is not None},
            mode,
            client_id,
            signing_alg or DEFAULT_ALG,
        )
