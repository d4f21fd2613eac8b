"""The admin API's plumbing: its router, the caller (token, scope), request bodies and
``change`` (step-up nonce, then the playbook). The routes are in this package's other
modules, one per resource.

``/api/v1/admin``: the playbook over HTTP, for the admin console and for scripts.

Every request carries an admin token (``Authorization: Bearer opa_…``, from `onepass
admin tokens create`) with the scope the route needs: the dependencies ``AnyCaller``,
``scoped(scope)`` and ``acting(action)``. Reads need nothing more. Every change also
needs an ``action_request_nonce`` in its JSON body, from ``POST /api/v1/admin/step-up``
(a TOTP code, the action, the target): see ``onepass.operators.service``; the change
itself is the playbook's (``onepass.playbook``). Bodies are pydantic models, so
``/openapi.json`` documents them. Errors are ``{"error": code, "message": …}``; every
request that reached a decision is in the audit log, refusals included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import orjson
import structlog
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from onepass import api_docs
from onepass.admin.errors import AdminError, invalid_token, refusal
from onepass.db.errors import CANDIDATES, is_unavailable
from onepass.operators import service
from onepass.operators.audit import Actor
from onepass.operators.service import Authenticated
from onepass.playbook import actions
from onepass.refusals import Refusal
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.web import BadParameter, client_ip, parse_json_object, read_body

log = structlog.get_logger("onepass.admin")

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=api_docs.ADMIN)

# Ids are 64-bit: past this, SQLite raises OverflowError and asyncpg a DataError.
MAX_ID = 2**63 - 1
MAX_GRACE = 365 * 86400
_HEADERS = {"cache-control": "no-store", "pragma": "no-cache"}


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=_HEADERS
    )


def _unavailable() -> AdminError:
    return AdminError(
        "temporarily_unavailable", "the database is unavailable; try again shortly", 503
    )


@contextlib.contextmanager
def answered() -> Iterator[None]:
    """A domain's refusal as the API's error (``errors.refusal``). The database being
    away is the application's 503 (``db.errors.is_unavailable``); anything else is a bug."""
    try:
        yield
    except Refusal as exc:
        raise refusal(exc) from None


class Caller:
    """An authenticated administrator and where the request came from."""

    def __init__(self, request: Request, who: Authenticated) -> None:
        self.runtime: Runtime = runtime_of(request)
        self.who = who
        self.actor = Actor(f"admin:{who.user.email}", "api", who.user.id, client_ip(request))

    async def refused(self, action: str, target: str | None, error: AdminError) -> None:
        await actions.record_refusal(
            self.runtime,
            self.actor,
            action,
            target,
            denied=error.denied,
            message=error.summary,
        )


async def check_scope(request: Request, found: Caller, scope: str) -> None:
    """Refuse (403 ``insufficient_scope``, audited) a token without ``scope``."""
    try:
        with answered():
            found.who.require(scope)
    except AdminError as exc:
        await found.refused(f"scope:{scope}", request.url.path, exc)
        raise


async def authenticated(request: Request) -> Authenticated:
    """The administrator of the request's admin token (a dependency: any valid token)."""
    runtime: Runtime = runtime_of(request)
    values = request.headers.getlist("authorization")
    scheme, _, raw = (values[0] if len(values) == 1 else "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise invalid_token("send an admin token: Authorization: Bearer opa_…")
    with answered():
        async with runtime.database.session() as session:
            return await service.authenticate(session, runtime.hasher, runtime.clock, raw.strip())


async def any_caller(
    request: Request, who: Annotated[Authenticated, Depends(authenticated)]
) -> Caller:
    """The token's administrator, whatever the token's scopes (a dependency)."""
    return Caller(request, who)


def scoped(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the token's administrator, if the token holds ``scope``; the refusal
    (403 ``insufficient_scope``) is audited."""

    async def caller_with_scope(
        request: Request, who: Annotated[Authenticated, Depends(authenticated)]
    ) -> Caller:
        found = Caller(request, who)
        await check_scope(request, found, scope)
        return found

    return caller_with_scope


AnyCaller = Annotated[Caller, Depends(any_caller)]
WebhooksReader = Annotated[Caller, Depends(scoped("webhooks:read"))]
AuditReader = Annotated[Caller, Depends(scoped("audit:read"))]


def acting(action: str) -> Any:
    """A dependency: the administrator, if the token holds the scope ``action`` needs."""
    return Depends(scoped(actions.ACTIONS[action].scope))


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object sent, ``{}`` for none; bounded (413) and NUL-free at any depth
    (``web.parse_json_object``)."""
    raw = await read_body(request)  # bounded at the edge (onepass.edge)
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise AdminError("invalid_request", "send the body as application/json", 415)
    try:
        return parse_json_object(raw)
    except BadParameter as exc:
        raise AdminError("invalid_request", str(exc)) from None


# -- request bodies ---------------------------------------------------------------------

MAX_TEXT = 500
Text = Annotated[str | None, Field(max_length=MAX_TEXT)]
RequiredText = Annotated[str, Field(max_length=MAX_TEXT)]


class Body(BaseModel):
    """A JSON body: a string is a string of at most 500 characters, a flag true or false
    (no coercion), other fields are ignored. ``openapi()`` documents it exactly."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)

    @classmethod
    def openapi(cls) -> dict[str, Any]:
        schema = cls.model_json_schema(by_alias=True)
        return {
            "requestBody": {
                "required": bool(schema.get("required")),
                "content": {"application/json": {"schema": schema}},
            }
        }


class ChangeBody(Body):
    action_request_nonce: Text = None


B = TypeVar("B", bound=Body)


async def body_of(request: Request, model: type[B]) -> B:
    """The request's JSON object (``json_body``) as ``model``; the first problem, by
    field, as the API's 400."""
    data = await json_body(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AdminError("invalid_request", _problem(exc.errors()[0])) from None


def _problem(error: ErrorDetails) -> str:
    name = str(error["loc"][0]) if error["loc"] else "body"
    if error["type"] == "missing":
        return f'"{name}" is required'
    if error["type"] == "list_type" or (error["type"] == "too_long" and len(error["loc"]) == 1):
        return f'"{name}" must be a list of strings (at most 100)'
    if error["type"] == "bool_type":
        return f'"{name}" must be true or false'
    if error["type"] == "literal_error":
        expected = str(error["ctx"]["expected"])
        return f'"{name}" must be ' + expected.replace("'", '"')
    return f'"{name}" must be a string (at most {MAX_TEXT} characters)'


async def change(
    who: Caller,
    action: str,
    target: str,
    nonce: str | None,
    do: Callable[[Caller], Awaitable[Any]],
) -> Response:
    """Canonicalise the target, spend the step-up nonce, then act (the playbook); every
    refusal audited."""
    runtime = who.runtime
    canonical = target
    try:
        async with runtime.database.session() as session:
            canonical = await actions.canonical_target(session, action, target)
            await actions.spend_nonce(
                session,
                runtime,
                who.who.user,
                nonce,
                action=action,
                target=canonical,
                token_id=who.who.token.id,
            )
    except Refusal as exc:
        error = refusal(exc)
        await who.refused(action, canonical, error)
        raise error from None
    try:
        result = await do(who)
    except Refusal as exc:
        error = refusal(exc)
        await who.refused(action, canonical, error)
        raise error from None
    except CANDIDATES as exc:
        if not is_unavailable(exc):
            raise
        await who.refused(action, canonical, _unavailable())
        raise _unavailable() from None
    return _json(result)
