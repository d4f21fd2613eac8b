"""``/webhooks/signing-keys``: an RP fetches its current webhook key ids and secrets.

The RP authenticates as at the token endpoint (RFC 6749 §2.3.1: HTTP Basic, or
``client_id`` and ``client_secret`` in a POST form body), through the same code, so
failures look the same there and here and reveal nothing about which clients exist.
Public clients have no secret and get no keys. Errors are RFC 6749 §5.2 JSON.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from onepass import api_docs, web
from onepass.clients import auth as client_auth
from onepass.clients.auth import CLIENT_AUTHENTICATOR
from onepass.oauth_errors import (
    InvalidRequestError,
    OAuthError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
)
from onepass.services import runtime_of
from onepass.webhooks import keys as service
from onepass.webhooks import outbox
from onepass.webhooks.models import WebhookSigningKey
from onepass.webhooks.signing import V1, format_secret

log = structlog.get_logger("onepass.webhooks.routes")

router = APIRouter(tags=["webhooks"])

_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


# RFC 6749 §3.1's form rules, with the token endpoint's limits (onepass.oauth.forms).
MAX_PARAMETERS = 32
MAX_PARAMETER_LENGTH = 4096


async def _read_form(request: Request) -> dict[str, str]:
    """The POSTed form (bounded at the edge, onepass.edge), or ``invalid_request``."""
    try:
        form = await web.read_form(request, MAX_PARAMETERS)
    except web.BadParameter as exc:
        raise InvalidRequestError(str(exc)) from None
    if form is None:
        raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
    if form.repeated:
        name = min(form.repeated)
        raise InvalidRequestError(f"parameter {web.printable_name(name)!r} is repeated")
    for name, value in form.items():
        if len(value) > MAX_PARAMETER_LENGTH:
            raise InvalidRequestError(f"parameter {web.printable_name(name)!r} is too long")
    return form


def _describe(key: WebhookSigningKey, secret: bytes | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kid": key.kid,
        "scheme": key.scheme,
        "state": key.state,
        "created_at": outbox.timestamp_text(key.created_at),
        "expires_at": outbox.timestamp_text(key.expires_at) if key.expires_at else None,
    }
    if key.scheme == V1:
        data["secret"] = format_secret(secret) if secret is not None else None
    else:
        data["public_key"] = key.public_key
    return data


@router.get("/webhooks/signing-keys", responses=api_docs.oauth_errors(400, 401, 503))
@router.post("/webhooks/signing-keys", include_in_schema=False)
async def signing_keys(request: Request) -> JSONResponse:
    """The webhook signing keys that sign deliveries now (newest first), with their
    secrets (v1) or public keys (v1a), and the kids revoked as compromised."""
    runtime = runtime_of(request)
    try:
        authorizations = request.headers.getlist("authorization")
        if len(authorizations) > 1:
            raise InvalidRequestError("more than one Authorization header")
        form: dict[str, str] = {}
        if request.method == "POST":
            form = await _read_form(request)
        client = await CLIENT_AUTHENTICATOR.of(request).authenticate(
            authorizations[0] if authorizations else None, form
        )
        if client.token_endpoint_auth_method == client_auth.NONE:
            raise UnauthorizedClientError(
                "a public client has no secret to authenticate with, so it gets no webhook keys"
            )
        try:
            async with runtime.database.session() as session:
                keys = await service.list_keys(session, client.id)
        except (SQLAlchemyError, OSError) as exc:
            log.error("webhooks.signing_keys_unavailable", error=type(exc).__name__)
            raise TemporarilyUnavailableError(
                "the key store is unavailable; try again shortly"
            ) from None
    except OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.response_headers())
    now = runtime.clock.now()
    current = [
        _describe(k, service.load_signer(runtime.box, k).secret if k.scheme == V1 else None)
        for k in keys
        if k.signs_at(now)
    ]
    revoked = [k.kid for k in keys if k.revoked_at is not None]
    return JSONResponse(
        {"client_id": client.client_id, "keys": current, "revoked_kids": revoked},
        headers=_NO_STORE,
    )
