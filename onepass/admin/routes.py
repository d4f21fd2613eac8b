"""``/api/v1/admin``: the playbook over HTTP, for the admin console and for scripts.

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
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import orjson
import structlog
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from onepass import api_docs
from onepass.admin import console_service
from onepass.admin.errors import AdminError, invalid_token, refusal
from onepass.clients.registry import find_client
from onepass.db.errors import CANDIDATES, is_unavailable
from onepass.durations import parse_duration
from onepass.identity.canonical import RESOLVER, CanonicalResolver
from onepass.operators import audit, service
from onepass.operators.audit import Actor
from onepass.operators.service import Authenticated
from onepass.playbook import actions, cache, keys, merges, webhooks
from onepass.refusals import Refusal
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.web import BadParameter, client_ip, parse_json_object, read_body
from onepass.webhooks import outbox
from onepass.webhooks.events import parse_event_type

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


class StepUpBody(Body):
    action: RequiredText
    target: RequiredText
    totp_code: RequiredText


class ChangeBody(Body):
    action_request_nonce: Text = None


class ReplayBody(Body):
    since: Text = None
    event_type: Text = None
    dry_run: bool = False
    action_request_nonce: Text = None


class RotateWebhookKeyBody(Body):
    grace: Text = None
    scheme: Literal["v1", "v1a"] | None = None
    action_request_nonce: Text = None


class RotateSigningKeysBody(Body):
    force: bool = False
    action_request_nonce: Text = None


class MergeBody(Body):
    source: RequiredText
    target: RequiredText
    reason: Text = None
    action_request_nonce: Text = None


class InvalidateCanonicalBody(Body):
    user: Text = None
    every: bool = Field(False, alias="all")
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


# -- who, what ------------------------------------------------------------------------


@router.get("/whoami")
async def whoami(who: AnyCaller) -> Response:
    """The token's administrator, scopes and expiry (any valid token)."""
    return _json(
        {
            "email": who.who.user.email,
            "scopes": who.who.token.scopes,
            "expires_at": who.who.token.expires_at,
            "totp_enrolled": who.who.user.totp_secret_encrypted is not None,
        }
    )


@router.get("/actions", name="actions")
async def list_actions(_who: AnyCaller) -> Response:
    """The actions that need a step-up, the scope each needs and what its target is."""
    return _json(
        [
            {"action": name, "scope": spec.scope, "target": spec.target}
            for name, spec in actions.ACTIONS.items()
        ]
    )


@router.post(
    "/step-up",
    name="step_up",
    openapi_extra=StepUpBody.openapi(),
)
async def post_step_up(request: Request, who: AnyCaller) -> Response:
    """A TOTP code for one action on one target → ``action_request_nonce``."""
    body = await body_of(request, StepUpBody)
    action, target, code = body.action, body.target, body.totp_code
    spec = actions.ACTIONS.get(action)
    if spec is not None:
        await check_scope(request, who, spec.scope)
    runtime = who.runtime
    canonical: str | None = None
    try:
        async with runtime.database.session() as session:
            canonical = await actions.canonical_target(session, action, target)
            nonce, expires_at = await actions.grant_step_up(
                session,
                runtime,
                who.actor,
                who.who.user.id,
                token_id=who.who.token.id,
                action=action,
                target=canonical,
                code=code,
            )
    except actions.UnknownAction as exc:
        raise refusal(exc) from None  # an unknown action: 400, not audited
    except Refusal as exc:
        error = refusal(exc)
        await who.refused(f"step_up:{action}", canonical or target[:300], error)
        raise error from None
    return _json(
        {
            "action_request_nonce": nonce,
            "action": action,
            "target": canonical,
            "expires_at": expires_at,
        }
    )


# -- webhook outbox -------------------------------------------------------------------


@router.get("/webhook_outbox")
async def webhook_outbox(
    who: WebhooksReader,
    status: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
    app: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    after_id: int | None = Query(None, ge=0, le=MAX_ID),
) -> Response:
    """Outbox entries, oldest first (``?status=dead``: the dead-letter queue)."""
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            app_id = (await find_client(session, app)).id if app is not None else None
            entries = await outbox.list_entries(
                session, status=status, app_id=app_id, limit=limit, after_id=after_id
            )
    rows = [outbox.describe_entry(e) for e in entries]
    return _json({"entries": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None})


@router.get("/webhook_outbox/dead_counts")
async def dead_counts(who: WebhooksReader) -> Response:
    """The playbook's monitoring query: dead entries per application, most first."""
    async with who.runtime.database.session(readonly=True) as session:
        counts = await console_service.dead_by_application(session)
    return _json(
        [
            {
                "oauth_application_id": c.oauth_application_id,
                "client_id": c.client_id,
                "dead_count": c.dead_count,
            }
            for c in counts
        ]
    )


@router.get("/webhook_outbox/{entry_id}")
async def webhook_outbox_entry(
    who: WebhooksReader, entry_id: int = Path(ge=0, le=MAX_ID)
) -> Response:
    """One entry and every attempt to deliver it."""
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            entry = await outbox.get_entry(session, entry_id)
            attempts = await outbox.list_attempts(session, entry_id)
    data = outbox.describe_entry(entry)
    data["delivery_attempts"] = [outbox.describe_attempt(a) for a in attempts]
    return _json(data)


@router.post(
    "/webhook_outbox/{entry_id}/retry",
    name="retry",
    openapi_extra=ChangeBody.openapi(),
)
async def post_retry(
    request: Request,
    who: Annotated[Caller, acting(actions.RETRY)],
    entry_id: int = Path(ge=0, le=MAX_ID),
) -> Response:
    """Send one entry again from the start of the schedule (step-up)."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.RETRY,
        str(entry_id),
        body.action_request_nonce,
        lambda who: webhooks.retry(who.runtime, who.actor, entry_id),
    )


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
        # astimezone overflows past year 9999 (9999-12-31T23:00-05:00).
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise AdminError(
            "invalid_request", '"since" must be an ISO 8601 date or time, e.g. 2026-01-31T12:00:00Z'
        ) from None


@router.post(
    "/applications/{app}/replay_dlq",
    name="replay_dlq",
    openapi_extra=ReplayBody.openapi(),
)
async def post_replay_dlq(request: Request, who: AnyCaller, app: str) -> Response:
    """Send every dead entry of an application again (step-up), or count them
    (``"dry_run": true``, no step-up)."""
    body = await body_of(request, ReplayBody)
    since = _since(body.since)
    event_type, dry_run = body.event_type, body.dry_run
    if event_type is not None:
        with answered():
            parse_event_type(event_type)

    def do(who: Caller) -> Awaitable[Any]:
        return webhooks.replay_dlq(
            who.runtime, who.actor, app, since=since, event_type=event_type, dry_run=dry_run
        )

    if dry_run:
        await check_scope(request, who, "webhooks:read")
        with answered():
            return _json(await do(who))
    await check_scope(request, who, actions.ACTIONS[actions.REPLAY_DLQ].scope)
    return await change(who, actions.REPLAY_DLQ, app, body.action_request_nonce, do)


# -- keys -----------------------------------------------------------------------------


@router.post(
    "/applications/{app}/webhook_keys/rotate",
    name="rotate_webhook_key",
    openapi_extra=RotateWebhookKeyBody.openapi(),
)
async def post_rotate_webhook_key(
    request: Request, who: Annotated[Caller, acting(actions.ROTATE_WEBHOOK_KEY)], app: str
) -> Response:
    """A new webhook signing key; the current one keeps signing for ``grace`` (step-up).
    The new secret is in the answer, this once."""
    body = await body_of(request, RotateWebhookKeyBody)
    try:
        seconds = parse_duration(body.grace or "72h")
    except ValueError as exc:
        raise AdminError("invalid_request", f'"grace": {exc}') from None
    if seconds > MAX_GRACE:  # a timedelta, then a date, overflows past a few thousand years
        raise AdminError("invalid_request", '"grace" is at most 365d')
    grace = timedelta(seconds=seconds)
    scheme = body.scheme
    return await change(
        who,
        actions.ROTATE_WEBHOOK_KEY,
        app,
        body.action_request_nonce,
        lambda who: keys.rotate_webhook_key(
            who.runtime, who.actor, app, grace=grace, scheme=scheme
        ),
    )


@router.post(
    "/applications/{app}/webhook_keys/{kid}/compromise",
    name="compromise_webhook_key",
    openapi_extra=ChangeBody.openapi(),
)
async def post_compromise_webhook_key(
    request: Request,
    who: Annotated[Caller, acting(actions.COMPROMISE_WEBHOOK_KEY)],
    app: str,
    kid: str,
) -> Response:
    """Emergency: revoke a leaked webhook key, issue a new one, re-stamp undelivered
    entries, tell the RP (step-up). The new secret is in the answer, this once."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.COMPROMISE_WEBHOOK_KEY,
        f"{app}/{kid}",
        body.action_request_nonce,
        lambda who: keys.compromise_webhook_key(who.runtime, who.actor, app, kid),
    )


@router.post(
    "/signing_keys/rotate",
    name="rotate_signing_keys",
    openapi_extra=RotateSigningKeysBody.openapi(),
)
async def post_rotate_signing_keys(
    request: Request, who: Annotated[Caller, acting(actions.ROTATE_SIGNING_KEYS)]
) -> Response:
    """Rotate the JWKS signing keys (step-up); ``"force": true`` as `keys rotate --force`."""
    body = await body_of(request, RotateSigningKeysBody)
    force = body.force
    return await change(
        who,
        actions.ROTATE_SIGNING_KEYS,
        "jwks",
        body.action_request_nonce,
        lambda who: keys.rotate_signing_keys(who.runtime, who.actor, force=force),
    )


# -- identity -------------------------------------------------------------------------


@router.post(
    "/users/merge",
    name="merge_users",
    openapi_extra=MergeBody.openapi(),
)
async def post_users_merge(
    request: Request, who: Annotated[Caller, acting(actions.MERGE_USERS)]
) -> Response:
    """Merge ``source`` into ``target`` (step-up, target ``SOURCE->TARGET``)."""
    body = await body_of(request, MergeBody)
    source, into, reason = body.source, body.target, body.reason
    resolver: CanonicalResolver = RESOLVER.of(request)
    return await change(
        who,
        actions.MERGE_USERS,
        f"{source}->{into}",
        body.action_request_nonce,
        lambda who: merges.merge_by_reference(
            who.runtime, resolver, who.actor, source, into, reason=reason
        ),
    )


@router.post(
    "/cache/invalidate_canonical",
    name="invalidate_canonical",
    openapi_extra=InvalidateCanonicalBody.openapi(),
)
async def post_invalidate_canonical(
    request: Request, who: Annotated[Caller, acting(actions.INVALIDATE_CANONICAL)]
) -> Response:
    """Drop cached canonical-user resolutions: ``{"user": …}`` or ``{"all": true}`` (step-up,
    target the user or ``*``)."""
    body = await body_of(request, InvalidateCanonicalBody)
    user, every = body.user, body.every
    if (user is None) == (not every):
        raise AdminError("invalid_request", 'give exactly one of "user" or "all": true')
    resolver: CanonicalResolver = RESOLVER.of(request)
    return await change(
        who,
        actions.INVALIDATE_CANONICAL,
        "*" if every else (user or ""),
        body.action_request_nonce,
        lambda who: cache.invalidate_canonical(
            who.runtime, resolver, who.actor, None if every else user
        ),
    )


# -- audit ----------------------------------------------------------------------------


@router.get("/audit_log")
async def audit_log(
    who: AuditReader,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=MAX_ID),
    action: str | None = Query(None, max_length=100),
) -> Response:
    """The audit log, newest first."""
    async with who.runtime.database.session(readonly=True) as session:
        entries = await audit.entries(session, limit=limit, before_id=before_id, action=action)
    rows = [audit.describe(e) for e in entries]
    return _json(
        {"entries": rows, "next_before_id": rows[-1]["id"] if len(rows) == limit else None}
    )
