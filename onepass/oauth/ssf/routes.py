"""The transmitter's endpoints (OpenID SSF 1.0 §7, §8; RFC 8936 polling).

- ``GET /.well-known/ssf-configuration``: the transmitter's metadata (§7.1).
- ``/ssf/stream`` (POST, GET, PATCH, PUT, DELETE), ``/ssf/status`` (GET, POST),
  ``/ssf/verify`` (POST), ``/ssf/poll`` (POST): the RP authenticates with a Bearer
  access token it got by ``client_credentials`` with the scope ``ssf.manage`` (the
  client must be registered with it); the stream is the token's client's.

Refusals are JSON ``{"error", "error_description"}`` with 400, 401 (with
``WWW-Authenticate``), 403, 404 or 409 (§8.1.1: "stream already exists"); the poll
endpoint's 400 is RFC 8936 §2.4's ``{"err", "description"}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass import api_docs
from onepass.clients.models import OAuthApplication
from onepass.keys.keyring import KEYRING, NoActiveKey
from onepass.oauth.bearer import VERIFIER
from onepass.oauth.ssf import streams
from onepass.oauth.ssf.streams import Context, SsfError
from onepass.oauth_errors import InvalidTokenError, TemporarilyUnavailableError
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.web import read_body
from onepass.webhooks import secevents

router = APIRouter(tags=["shared signals"])

SCOPE = "ssf.manage"
NO_STORE = {"cache-control": "no-store"}
# What the OpenAPI document declares (schemathesis holds every answer to it).
ERRORS = api_docs.oauth_errors(400, 401, 403, 404, 413, 503)
CREATE_ERRORS = api_docs.oauth_errors(400, 401, 403, 404, 409, 413, 503)
_OBJECT = {"application/json": {"schema": {"type": "object"}}}
POLL_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": 'RFC 8936 §2.4: {"err", "description"}', "content": _OBJECT},
}


def configuration(issuer: str) -> dict[str, Any]:
    """SSF 1.0 §7.1 transmitter metadata."""
    return {
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "delivery_methods_supported": list(secevents.DELIVERY_METHODS),
        "configuration_endpoint": f"{issuer}/ssf/stream",
        "status_endpoint": f"{issuer}/ssf/status",
        "verification_endpoint": f"{issuer}/ssf/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        # Every subject the receiver knows (see ``signals``); no add/remove endpoints.
        "default_subjects": "ALL",
    }


@router.get("/.well-known/ssf-configuration")
async def ssf_configuration(request: Request) -> Response:
    """SSF 1.0 §7.1: the transmitter's metadata."""
    return JSONResponse(configuration(runtime_of(request).settings.issuer))


def _error(exc: SsfError) -> Response:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["www-authenticate"] = f'Bearer error="{exc.error}"'
    if exc.status == 403 and exc.error == "insufficient_scope":
        headers["www-authenticate"] = f'Bearer error="insufficient_scope", scope="{SCOPE}"'
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=headers,
    )


async def _client(request: Request, session: AsyncSession) -> OAuthApplication:
    """The client whose Bearer token (client_credentials, ``ssf.manage``) came with the
    request; ``SsfError`` 401 or 403 otherwise."""
    values = request.headers.getlist("authorization")
    if not values:
        raise SsfError(401, "invalid_token", "a Bearer access token is required")
    scheme, _, token = values[0].partition(" ")
    if len(values) > 1 or scheme.lower() != "bearer" or not token.strip():
        raise SsfError(401, "invalid_token", "send one Authorization: Bearer header")
    try:
        claims = await VERIFIER.of(request).verify(session, token.strip())
    except TemporarilyUnavailableError as exc:
        raise SsfError(503, "temporarily_unavailable", exc.description) from None
    except InvalidTokenError as exc:
        raise SsfError(401, "invalid_token", exc.description) from None
    if "cnf" in claims:
        raise SsfError(401, "invalid_token", "a DPoP-bound access token is not a Bearer token")
    if claims.get("sub") != claims["client_id"]:
        raise SsfError(
            403, "access_denied", "use the client's own token (the client_credentials grant)"
        )
    if SCOPE not in str(claims.get("scope", "")).split(" "):
        raise SsfError(403, "insufficient_scope", f"the access token lacks the scope {SCOPE}")
    app = await session.scalar(
        select(OAuthApplication).where(OAuthApplication.client_id == claims["client_id"])
    )
    if app is None or app.disabled_at is not None:
        raise SsfError(401, "invalid_token", "the client of this access token is not active")
    return app


async def _json(request: Request) -> Any:
    raw = await read_body(request)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise streams.bad("the body must be JSON") from None


def _context(runtime: Runtime) -> Context:
    return Context(runtime.settings, runtime.box, runtime.clock)


async def _run(request: Request, action: Any, *, success: int = 200) -> Response:
    """Authenticate, run ``action(session, ctx, app)`` in one transaction, answer."""
    runtime = runtime_of(request)
    try:
        async with runtime.database.session() as session:
            app = await _client(request, session)
            result = await action(session, _context(runtime), app)
    except SsfError as exc:
        return _error(exc)
    if result is None:
        return Response(status_code=success if success != 200 else 204, headers=NO_STORE)
    return JSONResponse(result, status_code=success, headers=NO_STORE)


@router.post("/ssf/stream", status_code=201, responses=CREATE_ERRORS)
async def create_stream(request: Request) -> Response:
    """SSF 1.0 §8.1.1.1: create the client's stream (201); 409 if it has one."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        return await streams.create(session, ctx, app, await _json(request))

    return await _run(request, action, success=201)


@router.get("/ssf/stream", responses=ERRORS)
async def read_stream(request: Request, stream_id: str | None = None) -> Response:
    """SSF 1.0 §8.1.1.2: the client's stream."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        return await streams.read(session, ctx, app, stream_id)

    return await _run(request, action)


@router.patch("/ssf/stream", responses=ERRORS)
async def update_stream(request: Request) -> Response:
    """SSF 1.0 §8.1.1.3: change the members given."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        return await streams.update(session, ctx, app, await _json(request), replace=False)

    return await _run(request, action)


@router.put("/ssf/stream", responses=ERRORS)
async def replace_stream(request: Request) -> Response:
    """SSF 1.0 §8.1.1.4: replace every receiver-supplied member."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        return await streams.update(session, ctx, app, await _json(request), replace=True)

    return await _run(request, action)


@router.delete("/ssf/stream", status_code=204, responses=ERRORS)
async def delete_stream(request: Request, stream_id: str | None = None) -> Response:
    """SSF 1.0 §8.1.1.5: delete the stream (204)."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        await streams.remove(session, app, stream_id)

    return await _run(request, action, success=204)


@router.get("/ssf/status", responses=ERRORS)
async def read_status(request: Request, stream_id: str | None = None) -> Response:
    """SSF 1.0 §8.1.2.1: the stream's status."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        return await streams.status(session, app, stream_id)

    return await _run(request, action)


@router.post("/ssf/status", responses=ERRORS)
async def update_status(request: Request) -> Response:
    """SSF 1.0 §8.1.2.2: enable, pause or disable the stream."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        return await streams.set_status(session, ctx, app, await _json(request))

    return await _run(request, action)


@router.post("/ssf/verify", status_code=204, responses=ERRORS)
async def verify_stream(request: Request) -> Response:
    """SSF 1.0 §8.1.4.2: send a verification SET over the stream (204)."""

    async def action(session: AsyncSession, ctx: Context, app: OAuthApplication) -> Any:
        await streams.verify(session, ctx, app, await _json(request))

    return await _run(request, action, success=204)


@router.post("/ssf/poll", responses=POLL_ERRORS)
async def poll(request: Request) -> Response:
    """RFC 8936 §2: acknowledge SETs and receive the next ones,
    ``{"sets": {jti: SET}, "moreAvailable": bool}``; never waits."""
    runtime = runtime_of(request)
    try:
        async with runtime.database.session() as session:
            app = await _client(request, session)
            try:
                asked = streams.parse_poll(await _json(request))
            except SsfError as exc:
                # RFC 8936 §2.4.4: a malformed poll request.
                return JSONResponse(
                    {"err": "invalid_request", "description": exc.description},
                    status_code=400,
                    headers=NO_STORE,
                )
            payloads, more = await streams.poll(session, app, asked)
    except SsfError as exc:
        return _error(exc)
    now = int(runtime.clock.timestamp())
    issuer = runtime.settings.issuer
    sets: dict[str, str] = {}
    if payloads:
        try:
            signer = KEYRING.of(request).signer(app.id_token_signed_response_alg or "RS256")
        except NoActiveKey:
            # Nothing was handed out: the acknowledgements stand, the SETs wait.
            return _error(
                SsfError(503, "temporarily_unavailable", "no signing key; try again shortly")
            )
        for payload in payloads:
            sets[payload["jti"]] = secevents.sign(signer, issuer=issuer, payload=payload, now=now)
    return JSONResponse({"sets": sets, "moreAvailable": more}, headers=NO_STORE)
