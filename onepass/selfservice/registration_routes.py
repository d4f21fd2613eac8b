"""Dynamic Client Registration over HTTP: ``POST /register`` (RFC 7591 §3, OpenID
Connect Dynamic Client Registration 1.0 §3) and ``GET``/``PUT``/``DELETE
/register/{client_id}`` (RFC 7592 §2). Thin: the rules are ``clients.registration``'s
and the registry's, the transaction and the audit row the playbook's
(``playbook.registration``). Errors are RFC 7591 §3.2.2 JSON; tokens refused are RFC
6750 §3 ``invalid_token`` with a ``WWW-Authenticate`` challenge."""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from onepass import api_docs
from onepass.accounts.throttle import Quota
from onepass.clients.registration import InvalidClientMetadata, RegistrationError, TokenRefused
from onepass.oauth_errors import InvalidTokenError, OAuthError
from onepass.playbook import registration as playbook
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.web import BadParameter, client_ip, parse_json_object, read_body

router = APIRouter(tags=["registration"], responses=api_docs.oauth_errors(400, 401, 413, 503))

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
QUOTA = "register-ip"
METADATA_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


class RegistrationRefused(OAuthError):
    """A ``RegistrationError`` in RFC 7591 §3.2.2's form (its code as ``error``)."""

    error: ClassVar[str] = "invalid_client_metadata"

    def __init__(self, refusal: RegistrationError) -> None:
        super().__init__(str(refusal))
        self.code = refusal.error

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


class TooManyRegistrations(OAuthError):
    error: ClassVar[str] = "temporarily_unavailable"
    status_code: ClassVar[int] = 429


def _refused(exc: RegistrationError) -> OAuthError:
    if isinstance(exc, TokenRefused):
        return InvalidTokenError(str(exc))
    return RegistrationRefused(exc)


def _bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer`` (RFC 6750 §2.1), or None without one."""
    headers = request.headers.getlist("authorization")
    if not headers:
        return None
    scheme, _, token = headers[0].partition(" ")
    if len(headers) > 1 or scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("send one token, as Authorization: Bearer <token>")
    return token.strip()


async def _metadata(request: Request) -> dict[str, Any]:
    """The request's client metadata: a JSON object (RFC 7591 §3.1)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise RegistrationRefused(
            InvalidClientMetadata("the body must be a JSON object (application/json)")
        )
    try:
        return parse_json_object(await read_body(request))  # bounded at the edge
    except BadParameter as exc:
        raise RegistrationRefused(InvalidClientMetadata(str(exc))) from None


async def _throttle(runtime: Runtime, ip: str) -> None:
    """Open registration: at most ONEPASS_OPEN_REGISTRATION_MAX_PER_IP per window."""
    settings = runtime.settings
    assert settings.secret_key is not None
    quota = Quota(
        runtime.cache,
        settings.secret_key,
        QUOTA,
        settings.open_registration_max_per_ip,
        settings.self_service_window,
    )
    if not await quota.take(ip):
        raise TooManyRegistrations(
            "too many registrations from this address; try again later",
            headers={"retry-after": str(quota.window)},
        )


@router.post(
    "/register",
    status_code=201,
    responses={201: {"description": "the client's information response (RFC 7591 §3.2.1)"}},
    openapi_extra=METADATA_BODY,
)
async def register(request: Request) -> Response:
    """RFC 7591 §3: register a client. An initial access token in `Authorization:
    Bearer` (`onepass clients initial-token create`), unless open registration is on.
    The answer holds `client_secret` (confidential clients) and
    `registration_access_token`, this once."""
    runtime = runtime_of(request)
    token = _bearer(request)
    ip = client_ip(request)
    metadata = await _metadata(request)
    if token is None and runtime.settings.open_registration:
        await _throttle(runtime, ip)
    try:
        data = await playbook.register(runtime, metadata, initial_access_token=token, ip=ip)
    except RegistrationError as exc:
        raise _refused(exc) from None
    return JSONResponse(data, status_code=201, headers=NO_STORE)


@router.get("/register/{client_id}")
async def read_registration(request: Request, client_id: str) -> Response:
    """RFC 7592 §2.1: the client's registration, with its registration access token."""
    runtime = runtime_of(request)
    try:
        data = await playbook.read(runtime, client_id, _bearer(request))
    except RegistrationError as exc:
        raise _refused(exc) from None
    return JSONResponse(data, headers=NO_STORE)


@router.put("/register/{client_id}", openapi_extra=METADATA_BODY)
async def update_registration(request: Request, client_id: str) -> Response:
    """RFC 7592 §2.2: replace the client's metadata (omitted members go back to their
    defaults). The answer holds a new `registration_access_token`; the old one stops
    working."""
    runtime = runtime_of(request)
    token = _bearer(request)
    metadata = await _metadata(request)
    try:
        data = await playbook.update(runtime, client_id, token, metadata, ip=client_ip(request))
    except RegistrationError as exc:
        raise _refused(exc) from None
    return JSONResponse(data, headers=NO_STORE)


@router.delete("/register/{client_id}", status_code=204, response_class=Response)
async def delete_registration(request: Request, client_id: str) -> Response:
    """RFC 7592 §2.3: delete the client; its tokens are refused everywhere within the
    client cache's TTL."""
    runtime = runtime_of(request)
    try:
        await playbook.delete(runtime, client_id, _bearer(request), ip=client_ip(request))
    except RegistrationError as exc:
        raise _refused(exc) from None
    return Response(status_code=204, headers=NO_STORE)
