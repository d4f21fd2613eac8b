"""``/api/v1/admin``: the playbook over HTTP, for the admin console and for scripts.

Every request carries an admin token (``Authorization: Bearer opa_…``, from `onepass
admin tokens create`) with the scope the route needs. Reads need nothing more. Every
change also needs an ``action_request_nonce`` in its JSON body, from ``POST
/api/v1/admin/step-up`` (a TOTP code, the action, the target): see ``service.py``.
Errors are ``{"error": code, "message": …}``; every request that reached a decision is
in the audit log, refusals included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from onepass import api_docs
from onepass.admin import audit, console_service, procedures, service
from onepass.admin.audit import Actor
from onepass.admin.errors import AdminError, invalid_token, refusal
from onepass.admin.service import Authenticated
from onepass.clients.registry import find_client
from onepass.durations import parse_duration
from onepass.identity.canonical import CanonicalResolver
from onepass.runtime import Runtime
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
    """A domain's refusal as the API's error (404 or 409), the database away as 503."""
    try:
        yield
    except AdminError:
        raise
    except ValueError as exc:
        raise refusal(exc) from None
    except (SQLAlchemyError, OSError):
        raise _unavailable() from None


class Caller:
    """An authenticated administrator and where the request came from."""

    def __init__(self, request: Request, who: Authenticated) -> None:
        self.runtime: Runtime = request.app.state.runtime
        self.who = who
        self.actor = Actor(f"admin:{who.user.email}", "api", who.user.id, client_ip(request))

    async def refused(self, action: str, target: str | None, error: AdminError) -> None:
        await audit.record_refusal(
            self.runtime.database, self.runtime.clock, self.actor, action, target, error
        )


async def authenticated(request: Request) -> Authenticated:
    """The administrator of the request's admin token."""
    runtime: Runtime = request.app.state.runtime
    values = request.headers.getlist("authorization")
    scheme, _, raw = (values[0] if len(values) == 1 else "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise invalid_token("send an admin token: Authorization: Bearer opa_…")
    with answered():
        async with runtime.database.session() as session:
            return await service.authenticate(session, runtime.hasher, runtime.clock, raw.strip())


async def caller(request: Request, scope: str | None) -> Caller:
    """The token's administrator, if the token is valid and holds ``scope``."""
    who = await authenticated(request)
    found = Caller(request, who)
    if scope is None:
        return found
    try:
        who.require(scope)
    except AdminError as exc:
        await found.refused(f"scope:{scope}", request.url.path, exc)
        raise
    return found


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


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise AdminError("invalid_request", f'"{name}" is required')
        return None
    if not isinstance(value, str) or len(value) > 500:
        raise AdminError("invalid_request", f'"{name}" must be a string (at most 500 characters)')
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise AdminError("invalid_request", f'"{name}" must be true or false')
    return value


async def change(
    request: Request,
    action: str,
    target: str,
    body: dict[str, Any],
    do: Callable[[Caller], Awaitable[Any]],
) -> Response:
    """Authenticate, canonicalise the target, spend the step-up nonce, then act."""
    spec = procedures.action_named(action)
    who = await caller(request, spec.scope)
    runtime = who.runtime
    canonical = target
    try:
        async with runtime.database.session() as session:
            canonical = await procedures.canonical_target(session, action, target)
            await service.spend_nonce(
                session,
                runtime.hasher,
                runtime.clock,
                who.who.user,
                _text(body, "action_request_nonce"),
                action=action,
                target=canonical,
                token_id=who.who.token.id,
            )
    except ValueError as exc:
        error = refusal(exc)
        await who.refused(action, canonical, error)
        raise error from None
    except (SQLAlchemyError, OSError):
        raise _unavailable() from None
    try:
        result = await do(who)
    except ValueError as exc:
        error = refusal(exc)
        await who.refused(action, canonical, error)
        raise error from None
    except (SQLAlchemyError, OSError):
        await who.refused(action, canonical, _unavailable())
        raise _unavailable() from None
    return _json(result)


# -- who, what ------------------------------------------------------------------------


@router.get("/whoami")
async def whoami(request: Request) -> Response:
    """The token's administrator, scopes and expiry (any valid token)."""
    who = await authenticated(request)
    return _json(
        {
            "email": who.user.email,
            "scopes": who.token.scopes,
            "expires_at": who.token.expires_at,
            "totp_enrolled": who.user.totp_secret_encrypted is not None,
        }
    )


@router.get("/actions")
async def actions(request: Request) -> Response:
    """The actions that need a step-up, the scope each needs and what its target is."""
    await authenticated(request)
    return _json(
        [
            {"action": name, "scope": spec.scope, "target": spec.target}
            for name, spec in procedures.ACTIONS.items()
        ]
    )


@router.post(
    "/step-up",
    openapi_extra=api_docs.json_object(
        ("action", "target", "totp_code"), required=("action", "target", "totp_code")
    ),
)
async def step_up(request: Request) -> Response:
    """A TOTP code for one action on one target → ``action_request_nonce``."""
    body = await json_body(request)
    action = _text(body, "action", required=True) or ""
    target = _text(body, "target", required=True) or ""
    code = _text(body, "totp_code", required=True) or ""
    spec = procedures.ACTIONS.get(action)
    who = await caller(request, spec.scope if spec else None)
    procedures.action_named(action)  # an unknown action: 400, once the token is known
    runtime = who.runtime
    canonical: str | None = None
    try:
        async with runtime.database.session() as session:
            canonical = await procedures.canonical_target(session, action, target)
            nonce, expires_at = await procedures.step_up(
                session,
                runtime,
                who.actor,
                who.who.user.id,
                token_id=who.who.token.id,
                action=action,
                target=canonical,
                code=code,
            )
    except ValueError as exc:
        error = refusal(exc)
        await who.refused(f"step_up:{action}", canonical or target[:300], error)
        raise error from None
    except (SQLAlchemyError, OSError):
        raise _unavailable() from None
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
    request: Request,
    status: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
    app: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    after_id: int | None = Query(None, ge=0, le=MAX_ID),
) -> Response:
    """Outbox entries, oldest first (``?status=dead``: the dead-letter queue)."""
    who = await caller(request, "webhooks:read")
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            app_id = (await find_client(session, app)).id if app is not None else None
            entries = await outbox.list_entries(
                session, status=status, app_id=app_id, limit=limit, after_id=after_id
            )
    rows = [outbox.describe_entry(e) for e in entries]
    return _json({"entries": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None})


@router.get("/webhook_outbox/dead_counts")
async def dead_counts(request: Request) -> Response:
    """The playbook's monitoring query: dead entries per application, most first."""
    who = await caller(request, "webhooks:read")
    with answered():
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
async def webhook_outbox_entry(request: Request, entry_id: int = Path(ge=0, le=MAX_ID)) -> Response:
    """One entry and every attempt to deliver it."""
    who = await caller(request, "webhooks:read")
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            entry = await outbox.get_entry(session, entry_id)
            attempts = await outbox.list_attempts(session, entry_id)
    data = outbox.describe_entry(entry)
    data["delivery_attempts"] = [outbox.describe_attempt(a) for a in attempts]
    return _json(data)


@router.post(
    "/webhook_outbox/{entry_id}/retry",
    openapi_extra=api_docs.json_object(("action_request_nonce",)),
)
async def retry(request: Request, entry_id: int = Path(ge=0, le=MAX_ID)) -> Response:
    """Send one entry again from the start of the schedule (step-up)."""
    body = await json_body(request)
    return await change(
        request,
        procedures.RETRY,
        str(entry_id),
        body,
        lambda who: procedures.retry_entry(who.runtime, who.actor, entry_id),
    )


def _since(body: dict[str, Any]) -> datetime | None:
    value = _text(body, "since")
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
    openapi_extra=api_docs.json_object(
        ("action_request_nonce", "since", "event_type"), ("dry_run",)
    ),
)
async def replay_dlq(request: Request, app: str) -> Response:
    """Send every dead entry of an application again (step-up), or count them
    (``"dry_run": true``, no step-up)."""
    body = await json_body(request)
    since = _since(body)
    event_type = _text(body, "event_type")
    if event_type is not None:
        try:
            parse_event_type(event_type)
        except ValueError as exc:
            raise AdminError("invalid_request", str(exc)) from None
    dry_run = _flag(body, "dry_run")

    def do(who: Caller) -> Awaitable[Any]:
        return procedures.replay_dlq(
            who.runtime, who.actor, app, since=since, event_type=event_type, dry_run=dry_run
        )

    if dry_run:
        who = await caller(request, "webhooks:read")
        with answered():
            return _json(await do(who))
    return await change(request, procedures.REPLAY_DLQ, app, body, do)


# -- keys -----------------------------------------------------------------------------


@router.post(
    "/applications/{app}/webhook_keys/rotate",
    openapi_extra=api_docs.json_object(("action_request_nonce", "grace", "scheme")),
)
async def rotate_webhook_key(request: Request, app: str) -> Response:
    """A new webhook signing key; the current one keeps signing for ``grace`` (step-up).
    The new secret is in the answer, this once."""
    body = await json_body(request)
    try:
        seconds = parse_duration(_text(body, "grace") or "72h")
    except ValueError as exc:
        raise AdminError("invalid_request", f'"grace": {exc}') from None
    if seconds > MAX_GRACE:  # a timedelta, then a date, overflows past a few thousand years
        raise AdminError("invalid_request", '"grace" is at most 365d')
    grace = timedelta(seconds=seconds)
    scheme = _text(body, "scheme")
    if scheme not in (None, "v1", "v1a"):
        raise AdminError("invalid_request", '"scheme" must be "v1" or "v1a"')
    return await change(
        request,
        procedures.ROTATE_WEBHOOK_KEY,
        app,
        body,
        lambda who: procedures.rotate_webhook_key(
            who.runtime, who.actor, app, grace=grace, scheme=scheme
        ),
    )


@router.post(
    "/applications/{app}/webhook_keys/{kid}/compromise",
    openapi_extra=api_docs.json_object(("action_request_nonce",)),
)
async def compromise_webhook_key(request: Request, app: str, kid: str) -> Response:
    """Emergency: revoke a leaked webhook key, issue a new one, re-stamp undelivered
    entries, tell the RP (step-up). The new secret is in the answer, this once."""
    body = await json_body(request)
    return await change(
        request,
        procedures.COMPROMISE_WEBHOOK_KEY,
        f"{app}/{kid}",
        body,
        lambda who: procedures.compromise_webhook_key(who.runtime, who.actor, app, kid),
    )


@router.post(
    "/signing_keys/rotate",
    openapi_extra=api_docs.json_object(("action_request_nonce",), ("force",)),
)
async def rotate_signing_keys(request: Request) -> Response:
    """Rotate the JWKS signing keys (step-up); ``"force": true`` as `keys rotate --force`."""
    body = await json_body(request)
    force = _flag(body, "force")
    return await change(
        request,
        procedures.ROTATE_SIGNING_KEYS,
        "jwks",
        body,
        lambda who: procedures.rotate_signing_keys(who.runtime, who.actor, force=force),
    )


# -- identity -------------------------------------------------------------------------


@router.post(
    "/users/merge",
    openapi_extra=api_docs.json_object(
        ("action_request_nonce", "source", "target", "reason"), required=("source", "target")
    ),
)
async def merge_users(request: Request) -> Response:
    """Merge ``source`` into ``target`` (step-up, target ``SOURCE->TARGET``)."""
    body = await json_body(request)
    source = _text(body, "source", required=True) or ""
    into = _text(body, "target", required=True) or ""
    reason = _text(body, "reason")
    resolver: CanonicalResolver = request.app.state.resolver
    return await change(
        request,
        procedures.MERGE_USERS,
        f"{source}->{into}",
        body,
        lambda who: procedures.merge_users(
            who.runtime, resolver, who.actor, source, into, reason=reason
        ),
    )


@router.post(
    "/cache/invalidate_canonical",
    openapi_extra=api_docs.json_object(("action_request_nonce", "user"), ("all",)),
)
async def invalidate_canonical(request: Request) -> Response:
    """Drop cached canonical-user resolutions: ``{"user": …}`` or ``{"all": true}`` (step-up,
    target the user or ``*``)."""
    body = await json_body(request)
    user = _text(body, "user")
    every = _flag(body, "all")
    if (user is None) == (not every):
        raise AdminError("invalid_request", 'give exactly one of "user" or "all": true')
    resolver: CanonicalResolver = request.app.state.resolver
    return await change(
        request,
        procedures.INVALIDATE_CANONICAL,
        "*" if every else (user or ""),
        body,
        lambda who: procedures.invalidate_canonical(
            who.runtime, resolver, who.actor, None if every else user
        ),
    )


# -- audit ----------------------------------------------------------------------------


@router.get("/audit_log")
async def audit_log(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=MAX_ID),
    action: str | None = Query(None, max_length=100),
) -> Response:
    """The audit log, newest first."""
    who = await caller(request, "audit:read")
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            entries = await audit.entries(session, limit=limit, before_id=before_id, action=action)
    rows = [audit.describe(e) for e in entries]
    return _json(
        {"entries": rows, "next_before_id": rows[-1]["id"] if len(rows) == limit else None}
    )
