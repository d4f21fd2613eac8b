"""What the bare ASGI handlers in front of FastAPI share (``oauth.token_endpoint``,
``oauth.userinfo_endpoint``, ``oauth.well_known``): the raw ASGI types, a bounded body,
and answers sent as two messages with headers built once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from onepass.db.errors import is_unavailable
from onepass.oauth_errors import (
    InvalidRequestError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_NO_STORE: Headers = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


class PayloadTooLarge(InvalidRequestError):
    """413, closing the connection so that the rest of the body is not read either."""

    status_code = 413

    def __init__(self, description: str) -> None:
        super().__init__(description, headers={"connection": "close"})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused with ``PayloadTooLarge`` as soon as it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequestError("the client went away before the body was read")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_response(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond(send: Send, status: int, body: bytes, extra: Headers | None = None) -> None:
    """JSON that no cache may keep (RFC 6749 §5.1, RFC 6750 §3, OIDC Core §5.3.2)."""
    headers = [*JSON_NO_STORE, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send_response(send, status, headers, body)


async def respond_error(send: Send, error: OAuthError) -> int:
    """RFC 6749 §5.2 / RFC 6750 §3 JSON with the error's own headers; the status sent."""
    extra = [(k.encode(), v.encode()) for k, v in error.headers.items()]
    await respond(send, error.status, error.json_bytes(), extra)
    return error.status


METHOD_NOT_ALLOWED = b'{"error":"method_not_allowed","message":"Method Not Allowed"}'


async def method_not_allowed(send: Send, allow: bytes) -> int:
    """405 as FastAPI's routes answer it (``app._error_handlers``)."""
    headers = [
        (b"allow", allow),
        (b"content-length", str(len(METHOD_NOT_ALLOWED)).encode()),
        (b"content-type", b"application/json"),
    ]
    await send_response(send, 405, headers, METHOD_NOT_ALLOWED)
    return 405


def failure(exc: Exception, log: structlog.typing.FilteringBoundLogger, event: str) -> OAuthError:
    """What a handler answers for an exception that is not an ``OAuthError``: a database
    that is away is 503 ``temporarily_unavailable`` (the client may try again; not a bug,
    no traceback); anything else is a bug, 500 with its traceback in the log."""
    if is_unavailable(exc):
        log.error(f"{event}.database_unavailable", error=type(exc).__name__)
        return TemporarilyUnavailableError("the database is unavailable; try again shortly")
    log.exception(f"{event}.unexpected_error")
    return ServerError("the server could not answer; try again")
