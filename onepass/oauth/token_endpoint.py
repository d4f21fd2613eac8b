"""The token endpoint (RFC 6749 §3.2), as a bare ASGI application.

This is the hottest path of the provider, so it does not go through FastAPI's
request machinery: it reads the raw ASGI headers and body, parses the form with
the standard library, finds the client in the per-process ``ClientCache``, checks
the secret with one HMAC, and signs with a key already in memory. No database
round trip happens per request once the client is cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from onepass.crypto import KeyedHasher
from onepass.keys.keyring import NoActiveKey
from onepass.oauth import client_auth
from onepass.oauth.clients import ClientCache, ClientRecord
from onepass.oauth.errors import (
    InvalidClientError,
    InvalidRequestError,
    OAuthError,
    ServerError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from onepass.oauth.forms import is_form_content_type, parse_form
from onepass.oauth.grants.base import Grant, TokenContext
from onepass.services import Service

if TYPE_CHECKING:
    from onepass.ops.metrics import TokenMetrics

log = structlog.get_logger("onepass.oauth.token")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


class PayloadTooLarge(InvalidRequestError):
    """413, closing the connection so that the rest of the body is not read either."""

    status_code = 413

    def __init__(self, description: str) -> None:
        super().__init__(description, headers={"connection": "close"})


async def _read_body(receive: Receive, limit: int) -> bytes:
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


async def _respond(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TokenEndpoint:
    def __init__(
        self,
        ctx: TokenContext,
        clients: ClientCache,
        hasher: KeyedHasher,
        grants: list[Grant],
        *,
        max_body: int,
        metrics: TokenMetrics | None = None,
    ) -> None:
        self.ctx = ctx
        # Tokens issued and refused, for GET /metrics (onepass.ops.metrics).
        self.metrics = metrics
        self.clients = clients
        self.hasher = hasher
        self.grants = {grant.grant_type: grant for grant in grants}
        self.max_body = max_body
        # Compared against when the client is unknown, so that an unknown client
        # and a wrong secret cost the same time.
        self._dummy_hash = hasher.hash("unknown-client")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one request; return the status sent (for the HTTP metrics)."""
        try:
            body = await self.handle(scope, receive)
        except OAuthError as exc:
            if self.metrics is not None:
                self.metrics.error(exc.error)
            extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
            await _respond(send, exc.status, exc.json_bytes(), extra)
            return exc.status
        except Exception:
            log.exception("token.unexpected_error")
            error = ServerError("the server could not issue a token; try again")
            if self.metrics is not None:
                self.metrics.error(error.error)
            await _respond(send, error.status, error.json_bytes())
            return error.status
        await _respond(send, 200, orjson.dumps(body))
        return 200

    async def handle(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        if scope["method"] != "POST":
            raise InvalidRequestError(
                "the token endpoint only accepts POST", status_code=405, headers={"allow": "POST"}
            )
        content_type = authorization = None
        declared_length = 0
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                if authorization is not None:
                    raise InvalidRequestError("more than one Authorization header")
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared_length = int(value) if value.isdigit() else 0
        if declared_length > self.max_body:
            raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        body = await _read_body(receive, self.max_body)
        if not is_form_content_type(content_type):
            raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
        form = parse_form(body)

        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError("grant_type is required")
        grant = self.grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantTypeError(f"grant_type {grant_type[:40]!r} is not supported")

        client = await self.authenticate(authorization, form)
        if grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"this client may not use the {grant_type} grant")
        try:
            response = await grant.create_token_response(self.ctx, client, form)
        except NoActiveKey:
            log.error("token.no_active_key", alg=self.ctx.settings.access_token_alg)
            raise TemporarilyUnavailableError(
                "no signing key is available; try again shortly"
            ) from None
        if self.metrics is not None:
            self.metrics.issued(grant_type)
        return response

    async def authenticate(self, authorization: str | None, form: dict[str, str]) -> ClientRecord:
        """Find and authenticate the client (RFC 6749 §2.3.1).

        Every failure gives the same answer after the same work (one HMAC), so the
        endpoint does not reveal which client ids exist or how they authenticate;
        the reason is logged with the client_id only.
        """
        credentials = client_auth.extract_credentials(authorization, form)
        client = None
        if client_auth.is_client_id(credentials.client_id):
            try:
                client = await self.clients.get(credentials.client_id)
            except Exception as exc:  # database down: asyncpg raises OSError, not SQLAlchemyError
                log.error("token.client_lookup_failed", error=type(exc).__name__)
                raise TemporarilyUnavailableError(
                    "the client registry is unavailable; try again shortly"
                ) from None
        reason = self._failed_check(client, credentials)
        if reason is not None or client is None:
            log.info(
                "token.client_authentication_failed",
                client_id=credentials.client_id[:64],
                reason=reason,
            )
            raise InvalidClientError("unknown client or wrong credentials")
        return client

    def _failed_check(
        self, client: ClientRecord | None, credentials: client_auth.ClientCredentials
    ) -> str | None:
        """Why authentication fails, or None; always one HMAC, whatever the outcome."""
        secret = credentials.client_secret or ""
        stored = client.client_secret_hash if client is not None else None
        if client is None:
            reason: str | None = "unknown client"
        elif client.token_endpoint_auth_method != credentials.method:
            reason = (
                f"registered for {client.token_endpoint_auth_method}, used {credentials.method}"
            )
        elif credentials.method == client_auth.NONE:
            reason = None  # a public client: there is no secret to check
        elif stored is None:
            reason = "confidential client without a stored secret"
        else:
            return None if self.hasher.verify(secret, stored) else "wrong secret"
        self.hasher.verify(secret, self._dummy_hash)
        return reason


TOKEN_ENDPOINT: Service[TokenEndpoint] = Service("oauth.token_endpoint")
