"""``/api/v1/admin/webhook_outbox``: the outbox read model, retry and dead-letter replay."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response

from onepass.admin import console_service
from onepass.admin.api.base import (
    MAX_ID,
    AnyCaller,
    Body,
    Caller,
    ChangeBody,
    Text,
    WebhooksReader,
    _json,
    acting,
    answered,
    body_of,
    change,
    check_scope,
    router,
)
from onepass.admin.errors import AdminError
from onepass.clients.registry import find_client
from onepass.playbook import actions, webhooks
from onepass.webhooks import outbox
from onepass.webhooks.events import parse_event_type

# -- webhook outbox -------------------------------------------------------------------


class ReplayBody(Body):
    since: Text = None
    event_type: Text = None
    dry_run: bool = False
    action_request_nonce: Text = None


@router.get("/webhook_outbox")
async def webhook_outbox(
    who: WebhooksReader,
    status: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
    app: str | None = Query(None, max_length=200),
    event_type: str | None = Query(None, max_length=100),
    limit: int = Query(100, ge=1, le=1000),
    after_id: int | None = Query(None, ge=0, le=MAX_ID),
) -> Response:
    """Outbox entries, oldest first (``?status=dead``: the dead-letter queue;
    ``?event_type=oidc.backchannel_logout``: the back-channel logouts)."""
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            app_id = (await find_client(session, app)).id if app is not None else None
            entries = await outbox.list_entries(
                session,
                status=status,
                app_id=app_id,
                limit=limit,
                after_id=after_id,
                event_type=event_type,
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
