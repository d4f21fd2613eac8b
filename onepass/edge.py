"""The HTTP edge: what no route may receive is refused here, once, before any route runs.

- A body is bounded by its route's limit: refused with 413 when ``Content-Length``
  says it is larger, and, as the bytes arrive, as soon as their count passes it
  (``BodyTooLarge`` from ``receive``), so a chunked or mislabelled body is never held
  whole. Forms (OAuth endpoints and pages) have ``ONEPASS_MAX_FORM_BYTES``, the admin
  API's JSON ``ONEPASS_MAX_JSON_BYTES``.
- The path and every query parameter are refused with 400 if they hold a control
  character (``web.CONTROL``) once percent-decoded; form and JSON bodies are checked
  by their one parser each (``web.parse_form``, ``web.parse_json_object``).

Each refusal is in the route's protocol (``protocol_of``): RFC 6749 §5.2 JSON for the
OAuth endpoints, ``{"error", "message"}`` for the admin API and the other JSON routes,
an HTML page for pages. The token endpoint is a bare ASGI handler in front of this
(``oauth.token_endpoint``) and bounds its body itself, with the same limit; userinfo,
discovery and the JWKS are bare handlers too, and ask ``refused_at_edge`` first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from enum import Enum
from typing import Any

import orjson
from starlette.responses import Response

from onepass.pages import render
from onepass.settings import Settings
from onepass.web import CONTROL, ENCODED_CONTROL, BodyTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Protocol(Enum):
    OAUTH = "oauth"  # RFC 6749 §5.2 error JSON
    API = "api"  # {"error": code, "message": …}
    PAGE = "page"  # an HTML page


PAGES = frozenset(
    {
        "/authorize",
        "/login",
        "/login/second-factor",
        "/login/enrol",
        "/login/enrol/passkey",
        "/login/passkey",
        "/consent",
        "/logout",
        "/status",
        "/admin",
        "/password/forgot",
        "/password/reset",
        "/signup",
        "/signup/confirm",
        "/account",
        # RFC 8628: where a person enters a device's code.
        "/device",
        "/device/decide",
    }
)
OAUTH = frozenset(
    {
        "/token",
        "/userinfo",
        "/revoke",
        "/introspect",
        "/par",
        "/webhooks/signing-keys",
        "/device_authorization",  # RFC 8628
    }
)
_ENCODED_CONTROL_BYTES = re.compile(ENCODED_CONTROL.pattern.encode())


def protocol_of(path: str) -> Protocol:
    if path in PAGES or path.startswith(("/admin/", "/account/")):
        return Protocol.PAGE
    # /ssf/: Shared Signals (onepass.oauth.ssf) and /register: dynamic registration,
    # whose refusals are OAuth's JSON too.
    if path in OAUTH or path.startswith(("/.well-known/", "/ssf/", "/register")):
        return Protocol.OAUTH
    return Protocol.API


def refusal(protocol: Protocol, status: int, message: str) -> Response:
    """A 4xx answer in ``protocol``'s format; 413 also closes the connection, so the
    server stops reading the rest of the body."""
    headers = {"cache-control": "no-store"}
    if status == 413:
        headers["connection"] = "close"
    title = "Request too large" if status == 413 else "Bad request"
    return _answer(protocol, status, "invalid_request", title, message, headers)


UNAVAILABLE_RETRY_AFTER = 5  # seconds


def unavailable(protocol: Protocol) -> Response:
    """503 in ``protocol``'s format for a request the database could not serve
    (``db.errors.is_unavailable``): RFC 6749 §5.2 ``temporarily_unavailable``."""
    headers = {"cache-control": "no-store", "retry-after": str(UNAVAILABLE_RETRY_AFTER)}
    message = "the database is unavailable; try again shortly"
    return _answer(
        protocol, 503, "temporarily_unavailable", "Temporarily unavailable", message, headers
    )


def _answer(
    protocol: Protocol, status: int, error: str, title: str, message: str, headers: dict[str, str]
) -> Response:
    if protocol is Protocol.PAGE:
        response: Response = render("error.html", {"title": title, "message": message}, status)
        response.headers.update(headers)
        return response
    key = "error_description" if protocol is Protocol.OAUTH else "message"
    body = {"error": error, key: message}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _has_control(query: bytes) -> bool:
    return _ENCODED_CONTROL_BYTES.search(query) is not None


def refused_at_edge(scope: Scope, protocol: Protocol, limit: int) -> Response | None:
    """The edge's refusal of a request before its body is read, or None: a control
    character in the path or query (400), a declared body larger than ``limit`` (413).
    ``Edge`` asks it for every FastAPI route; the bare handlers in front of FastAPI
    (``oauth.userinfo_endpoint``, ``oauth.well_known``) ask it themselves."""
    if CONTROL.search(scope["path"]) or _has_control(scope.get("query_string", b"")):
        return refusal(protocol, 400, "the request must not contain control characters")
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return refusal(protocol, 413, BodyTooLarge(limit).detail)
    return None


class Edge:
    """ASGI middleware in front of the FastAPI application (``app.OnePass``)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.form_limit = settings.max_form_bytes
        self.json_limit = settings.max_json_bytes

    def limit_for(self, protocol: Protocol) -> int:
        return self.json_limit if protocol is Protocol.API else self.form_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol = protocol_of(scope["path"])
        limit = self.limit_for(protocol)
        refused = refused_at_edge(scope, protocol, limit)
        if refused is not None:
            await refused(scope, receive, send)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded, send)
