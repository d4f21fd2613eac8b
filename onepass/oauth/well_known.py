"""Discovery and the JWKS as prebuilt bytes, with ``ETag`` and ``304 Not Modified``.

Every RP fetches ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json``
(and caches them, for ``ONEPASS_JWKS_MAX_AGE``). A bare ASGI handler answers GET and
HEAD from bytes and headers built once: for discovery at start, for the JWKS once per
key-ring version (``KeyRing.jwks_body`` is replaced on every refresh that changes the
published keys). The strong ``ETag`` is a hash of the body, so a rotation changes it;
a client sending it back in ``If-None-Match`` gets a 304 with no body (RFC 9110
§13.1.2). Other methods get the 405 the FastAPI routes gave.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from onepass.edge import Protocol, refused_at_edge
from onepass.keys.keyring import KeyRing
from onepass.oauth.asgi import Headers, Receive, Scope, Send, method_not_allowed, send_response

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
PATHS = (JWKS_PATH, *DISCOVERY_PATHS)

JWKS_CONTENT_TYPE = b"application/jwk-set+json"  # RFC 7517 §8.5.1
JSON_CONTENT_TYPE = b"application/json"

# One entity-tag of an If-None-Match list: an optional weak prefix and a quoted opaque tag
# (RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text).
_ENTITY_TAG = re.compile(rb'(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")')


def entity_tag(body: bytes) -> bytes:
    """A strong validator for ``body``: its SHA-256, base64url, quoted."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
    return b'"' + digest + b'"'


def none_match(values: list[bytes], etag: bytes) -> bool:
    """Whether ``If-None-Match`` (its field lines, ``values``) matches ``etag`` (RFC 9110
    §13.1.2): ``*``, or any listed entity-tag equal by the weak comparison (§8.8.3.2:
    the opaque tags match, whether either is weak or not)."""
    for value in values:
        if value.strip() == b"*":
            return True
        if any(match.group(1) == etag for match in _ENTITY_TAG.finditer(value)):
            return True
    return False


@dataclass(frozen=True)
class Prebuilt:
    """One document: its body, ETag, and the headers of its 200 and 304 answers."""

    body: bytes
    etag: bytes
    ok: Headers
    not_modified: Headers

    @classmethod
    def of(cls, body: bytes, content_type: bytes, max_age: int) -> Prebuilt:
        etag = entity_tag(body)
        cache = [(b"cache-control", f"public, max-age={max_age}".encode()), (b"etag", etag)]
        ok = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *cache,
        ]
        # RFC 9110 §15.4.5: a 304 carries the Cache-Control and ETag a 200 would have.
        return cls(body, etag, ok, cache)


class WellKnown:
    """``/.well-known/jwks.json``, ``/.well-known/openid-configuration`` and its RFC 8414
    alias ``/.well-known/oauth-authorization-server``."""

    def __init__(self, keyring: KeyRing, discovery: bytes, *, max_age: int, limit: int) -> None:
        self._keyring = keyring
        self._max_age = max_age  # ONEPASS_JWKS_MAX_AGE
        self._limit = limit  # the edge's body limit for these paths
        self._discovery = Prebuilt.of(discovery, JSON_CONTENT_TYPE, max_age)
        self._jwks: tuple[bytes, Prebuilt] | None = None

    def jwks(self) -> Prebuilt:
        """The JWKS of the key ring's current version, built again when it changes."""
        body = self._keyring.jwks_body
        built = self._jwks
        if built is None or built[0] is not body:
            built = (body, Prebuilt.of(body, JWKS_CONTENT_TYPE, self._max_age))
            self._jwks = built
        return built[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one request; return the status sent (for the HTTP metrics)."""
        refused = refused_at_edge(scope, Protocol.OAUTH, self._limit)
        if refused is not None:
            await refused(scope, receive, send)
            return refused.status_code
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return await method_not_allowed(send, b"GET, HEAD")
        document = self.jwks() if scope["path"] == JWKS_PATH else self._discovery
        conditions = [value for name, value in scope["headers"] if name == b"if-none-match"]
        if conditions and none_match(conditions, document.etag):
            await send_response(send, 304, document.not_modified)
            return 304
        await send_response(send, 200, document.ok, document.body if method == "GET" else b"")
        return 200
