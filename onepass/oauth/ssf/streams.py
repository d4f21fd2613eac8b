"""Stream management (OpenID SSF 1.0 §8.1): create, read, update, replace and delete the
one stream an RP has, its status (§8.1.2), verification (§8.1.4), and polling (RFC 8936).

The RP is the client an access token was issued to (``routes``); every function takes
its application and finds its stream by it, so one RP never sees another's. One stream
per client: a second ``create`` is 409.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.oauth.ssf.signals import DISABLED, ENABLED, PAUSED, enqueue
from onepass.settings import Settings
from onepass.webhooks import outbox, safety, secevents
from onepass.webhooks.dispatcher.streams import header_context
from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.events import EventType
from onepass.webhooks.models import SsfQueuedSet, SsfStream

log = structlog.get_logger("onepass.oauth.ssf")

STATUSES = (ENABLED, PAUSED, DISABLED)
MAX_EVENTS_REQUESTED = 50
MAX_TEXT = 1000
MAX_AUTHORIZATION = 4096
MAX_POLL = 100
# The members a receiver sets (§8.1.1); the others are the transmitter's and ignored.
RECEIVER_FIELDS = ("delivery", "events_requested", "description")


class SsfError(Exception):
    """A refusal in SSF's terms: an HTTP status and ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def bad(description: str) -> SsfError:
    return SsfError(400, "invalid_request", description)


def not_found() -> SsfError:
    return SsfError(404, "not_found", "no stream with that stream_id for this client")


@dataclass(frozen=True)
class Context:
    settings: Settings
    box: SecretBox
    clock: Clock

    @property
    def poll_url(self) -> str:
        return f"{self.settings.issuer}/ssf/poll"


def describe(ctx: Context, stream: SsfStream, app: OAuthApplication) -> dict[str, Any]:
    """The stream's configuration (§8.1.1); never its authorization header."""
    delivery: dict[str, Any] = {"method": stream.delivery_method}
    delivery["endpoint_url"] = (
        stream.endpoint_url if stream.delivery_method == secevents.PUSH else ctx.poll_url
    )
    body: dict[str, Any] = {
        "stream_id": stream.stream_id,
        "iss": ctx.settings.issuer,
        "aud": app.client_id,
        "delivery": delivery,
        "events_supported": list(secevents.SUPPORTED),
        "events_requested": list(stream.events_requested or []),
        "events_delivered": list(stream.events_delivered or []),
    }
    if stream.description:
        body["description"] = stream.description
    return body


def _text(value: Any, name: str, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise bad(f"{name} must be a string of at most {limit} characters")
    return value


def _events(value: Any) -> list[str]:
    if value is None:
        return []
    if (
        not isinstance(value, list)
        or len(value) > MAX_EVENTS_REQUESTED
        or not all(isinstance(e, str) and 0 < len(e) <= 300 for e in value)
    ):
        raise bad(
            f"events_requested must be an array of at most {MAX_EVENTS_REQUESTED} event type URIs"
        )
    return list(dict.fromkeys(value))


def _delivery(ctx: Context, value: Any) -> tuple[str, str | None, str | None]:
    """(method, endpoint_url, authorization header) of a ``delivery`` member; poll when
    it is absent (§8.1.1.1 lets the transmitter choose)."""
    if value is None:
        return secevents.POLL, None, None
    if not isinstance(value, dict):
        raise bad("delivery must be an object")
    method = value.get("method")
    if method not in secevents.DELIVERY_METHODS:
        raise bad(f"delivery.method must be one of {', '.join(secevents.DELIVERY_METHODS)}")
    url = _text(value.get("endpoint_url"), "delivery.endpoint_url", 2000)
    authorization = _text(
        value.get("authorization_header"), "delivery.authorization_header", MAX_AUTHORIZATION
    )
    if method == secevents.POLL:
        if url is not None and url != ctx.poll_url:
            raise bad(f"a poll stream's endpoint_url is the transmitter's: {ctx.poll_url}")
        if authorization is not None:
            raise bad("authorization_header is for push delivery only")
        return method, None, None
    if url is None:
        raise bad("a push stream needs delivery.endpoint_url")
    try:
        safety.check_url(
            url,
            production=ctx.settings.is_production,
            allow_private=ctx.settings.webhook_allow_private_targets,
            what=secevents.URI_NAME,
        )
    except UnsafeWebhookTarget as exc:
        raise bad(str(exc)) from None
    if authorization is not None and (
        not authorization or not all(0x20 <= ord(c) < 0x7F for c in authorization)
    ):
        raise bad("delivery.authorization_header must be printable ASCII on one line")
    return method, url, authorization


def _apply(ctx: Context, stream: SsfStream, body: dict[str, Any], *, replace: bool) -> None:
    """Set the receiver's members ``body`` has (all of them with ``replace``)."""
    if replace or "delivery" in body:
        method, url, authorization = _delivery(ctx, body.get("delivery"))
        stream.delivery_method, stream.endpoint_url = method, url
        stream.authorization_header_encrypted = (
            ctx.box.encrypt(authorization.encode(), header_context(stream.stream_id))
            if authorization
            else None
        )
    if replace or "events_requested" in body:
        requested = _events(body.get("events_requested"))
        stream.events_requested = requested
        stream.events_delivered = [e for e in requested if e in secevents.SUPPORTED]
    if replace or "description" in body:
        stream.description = _text(body.get("description"), "description")
    stream.updated_at = ctx.clock.now()


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    return body


async def _stream_of(
    session: AsyncSession, app: OAuthApplication, stream_id: Any = None, *, lock: bool = False
) -> SsfStream:
    """The client's stream (the one named ``stream_id`` when given); 404 otherwise."""
    if stream_id is not None and not isinstance(stream_id, str):
        raise bad("stream_id must be a string")
    query = select(SsfStream).where(SsfStream.oauth_application_id == app.id)
    if lock:
        query = query.with_for_update()
    stream = await session.scalar(query)
    if stream is None or (stream_id is not None and stream.stream_id != stream_id):
        raise not_found()
    return stream


async def create(
    session: AsyncSession, ctx: Context, app: OAuthApplication, body: Any
) -> dict[str, Any]:
    """§8.1.1.1: a new stream for the client; 409 when it has one."""
    body = _object(body)
    existing = await session.scalar(
        select(SsfStream.id).where(SsfStream.oauth_application_id == app.id)
    )
    if existing is not None:
        raise SsfError(409, "conflict", "this client already has a stream (one per client)")
    now = ctx.clock.now()
    stream = SsfStream(
        oauth_application_id=app.id,
        stream_id=secrets.token_urlsafe(16),
        status=ENABLED,
        created_at=now,
        updated_at=now,
    )
    _apply(ctx, stream, body, replace=True)
    try:
        async with session.begin_nested():
            session.add(stream)
            await session.flush()
    except IntegrityError:
        # Two creations at once: the other one's stream won (one per client).
        raise SsfError(
            409, "conflict", "this client already has a stream (one per client)"
        ) from None
    return describe(ctx, stream, app)


async def read(
    session: AsyncSession, ctx: Context, app: OAuthApplication, stream_id: str | None
) -> dict[str, Any]:
    """§8.1.1.2: the client's stream (the one named, when ``stream_id`` is given)."""
    return describe(ctx, await _stream_of(session, app, stream_id), app)


async def update(
    session: AsyncSession, ctx: Context, app: OAuthApplication, body: Any, *, replace: bool
) -> dict[str, Any]:
    """§8.1.1.3 (PATCH: the members given) and §8.1.1.4 (PUT: every member)."""
    body = _object(body)
    if "stream_id" not in body:
        raise bad("stream_id is required")
    stream = await _stream_of(session, app, body["stream_id"], lock=True)
    was_push = stream.delivery_method == secevents.PUSH
    _apply(ctx, stream, body, replace=replace)
    if not was_push and stream.delivery_method == secevents.PUSH and stream.status == ENABLED:
        await _release(session, ctx.clock, stream, app)
    return describe(ctx, stream, app)


async def remove(session: AsyncSession, app: OAuthApplication, stream_id: str | None) -> None:
    """§8.1.1.5: the stream and the SETs it holds are gone; its pending pushes die at
    their next attempt (``no_ssf_stream``)."""
    if stream_id is None:
        raise bad("stream_id is required")
    stream = await _stream_of(session, app, stream_id, lock=True)
    await session.delete(stream)
    await session.flush()


async def status(
    session: AsyncSession, app: OAuthApplication, stream_id: str | None
) -> dict[str, Any]:
    """§8.1.2.1."""
    if stream_id is None:
        raise bad("stream_id is required")
    stream = await _stream_of(session, app, stream_id)
    answer: dict[str, Any] = {"stream_id": stream.stream_id, "status": stream.status}
    if stream.status_reason:
        answer["reason"] = stream.status_reason
    return answer


async def set_status(
    session: AsyncSession, ctx: Context, app: OAuthApplication, body: Any
) -> dict[str, Any]:
    """§8.1.2.2: enabled, paused (SETs held, sent once enabled again) or disabled (SETs
    dropped, those held too)."""
    body = _object(body)
    if "stream_id" not in body:
        raise bad("stream_id is required")
    stream = await _stream_of(session, app, body["stream_id"], lock=True)
    new = body.get("status")
    if new not in STATUSES:
        raise bad(f"status must be one of {', '.join(STATUSES)}")
    stream.status_reason = _text(body.get("reason"), "reason")
    stream.status = new
    stream.updated_at = ctx.clock.now()
    if new == DISABLED:
        await session.execute(delete(SsfQueuedSet).where(SsfQueuedSet.ssf_stream_id == stream.id))
    elif new == ENABLED and stream.delivery_method == secevents.PUSH:
        await _release(session, ctx.clock, stream, app)
    await session.flush()
    return await status(session, app, stream.stream_id)


async def _release(
    session: AsyncSession, clock: Clock, stream: SsfStream, app: OAuthApplication
) -> None:
    """A push stream enabled again: the SETs it held go to the outbox, oldest first,
    with their jti."""
    held = list(
        await session.scalars(
            select(SsfQueuedSet)
            .where(SsfQueuedSet.ssf_stream_id == stream.id)
            .order_by(SsfQueuedSet.id)
        )
    )
    if not held:
        return
    events = [outbox.Event(EventType.SSF_SET, h.payload, f"ssf.set:{h.jti}") for h in held]
    await outbox.enqueue_many(session, app, events, clock=clock, skip_duplicates=True)
    await session.execute(delete(SsfQueuedSet).where(SsfQueuedSet.ssf_stream_id == stream.id))


async def verify(session: AsyncSession, ctx: Context, app: OAuthApplication, body: Any) -> None:
    """§8.1.4.2: send a verification SET (with the receiver's ``state``) over the stream,
    whatever events it requested; a disabled stream drops it."""
    body = _object(body)
    if "stream_id" not in body:
        raise bad("stream_id is required")
    stream = await _stream_of(session, app, body["stream_id"])
    state = _text(body.get("state"), "state")
    event: dict[str, Any] = {} if state is None else {"state": state}
    await enqueue(
        session,
        ctx.clock,
        stream,
        app,
        events={secevents.VERIFICATION: event},
        sub_id={"format": "opaque", "id": stream.stream_id},
    )


@dataclass(frozen=True)
class Poll:
    max_events: int | None
    ack: list[str]
    errors: dict[str, Any]


def parse_poll(body: Any) -> Poll:
    """RFC 8936 §2.1-2.4: ``maxEvents``, ``returnImmediately``, ``ack``, ``setErrs``."""
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    max_events = body.get("maxEvents")
    if max_events is not None and (
        not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 0
    ):
        raise bad("maxEvents must be a non-negative integer")
    immediately = body.get("returnImmediately")
    if immediately is not None and not isinstance(immediately, bool):
        raise bad("returnImmediately must be a boolean")
    ack = body.get("ack", [])
    if not isinstance(ack, list) or not all(isinstance(j, str) and len(j) <= 64 for j in ack):
        raise bad("ack must be an array of jti strings")
    errors = body.get("setErrs", {})
    if not isinstance(errors, dict) or not all(
        len(j) <= 64 and isinstance(e, dict) for j, e in errors.items()
    ):
        raise bad('setErrs must be an object of jti: {"err", "description"}')
    return Poll(max_events, ack, errors)


async def poll(
    session: AsyncSession, app: OAuthApplication, request: Poll
) -> tuple[list[dict[str, Any]], bool]:
    """RFC 8936 §2: forget the SETs acknowledged (``ack``) or refused (``setErrs``:
    logged, not sent again), then the oldest others (at most ``maxEvents``, at most
    ``MAX_POLL``): their payloads and whether more remain. Never waits (no long
    polling): ``returnImmediately`` is accepted and changes nothing."""
    stream = await session.scalar(select(SsfStream).where(SsfStream.oauth_application_id == app.id))
    if stream is None or stream.delivery_method != secevents.POLL:
        raise SsfError(404, "not_found", "this client has no poll stream")
    done = list(dict.fromkeys([*request.ack, *request.errors]))
    for jti, error in request.errors.items():
        log.warning(
            "ssf.set_refused",
            client_id=app.client_id,
            jti=jti,
            err=str(error.get("err"))[:100],
            description=str(error.get("description"))[:300],
        )
    if done:
        await session.execute(
            delete(SsfQueuedSet).where(
                SsfQueuedSet.ssf_stream_id == stream.id, SsfQueuedSet.jti.in_(done)
            )
        )
    limit = MAX_POLL if request.max_events is None else min(request.max_events, MAX_POLL)
    if stream.status != ENABLED:
        return [], False  # paused: held; disabled: none
    rows = list(
        await session.scalars(
            select(SsfQueuedSet)
            .where(SsfQueuedSet.ssf_stream_id == stream.id)
            .order_by(SsfQueuedSet.id)
            .limit(limit + 1)
        )
    )
    return [r.payload for r in rows[:limit]], len(rows) > limit
