"""The playbook's webhooks chapter: retry an outbox entry, replay an application's
dead-letter queue, enqueue test pings. Each runs under the outbox lock (``OUTBOX_LOCK``);
the rules are ``onepass.webhooks.outbox``'s."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from onepass.clients.registry import find_client
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook.actions import REPLAY_DLQ, RETRY
from onepass.refusals import Conflict
from onepass.runtime import Runtime
from onepass.webhooks import outbox
from onepass.webhooks.events import EventType


class NoWebhookUrl(Conflict):
    pass


async def retry(runtime: Runtime, actor: Actor, entry_id: int) -> dict[str, Any]:
    """Send entry ``entry_id`` again from the start of the schedule (audited)."""
    async with runtime.database.session(exclusive=outbox.OUTBOX_LOCK) as session:
        entry = await outbox.retry_entry(session, runtime.clock, entry_id)
        audit.add(
            session,
            runtime.clock,
            actor,
            RETRY,
            str(entry_id),
            detail={"oauth_application_id": entry.oauth_application_id},
        )
        return outbox.describe_entry(entry)


async def replay_dlq(
    runtime: Runtime,
    actor: Actor,
    app_ref: str,
    *,
    since: datetime | None = None,
    event_type: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Send an application's dead entries again (audited), or count them (``dry_run``)."""
    async with runtime.database.session(exclusive=outbox.OUTBOX_LOCK) as session:
        application = await find_client(session, app_ref)
        ids = await outbox.replay_dead(
            session,
            runtime.clock,
            application.id,
            since=since,
            event_type=event_type,
            dry_run=dry_run,
        )
        result = {
            "oauth_application_id": application.id,
            "client_id": application.client_id,
            "dry_run": dry_run,
            "replayed": 0 if dry_run else len(ids),
            "matched": len(ids),
            "entry_ids": ids,
        }
        if not dry_run:
            audit.add(
                session,
                runtime.clock,
                actor,
                REPLAY_DLQ,
                application.client_id,
                detail={
                    "replayed": len(ids),
                    "since": since.isoformat() if since else None,
                    "event_type": event_type,
                },
            )
        return result


async def ping(runtime: Runtime, app_ref: str, count: int) -> dict[str, Any]:
    """Enqueue ``count`` test.ping events for an application, in one transaction."""
    async with runtime.database.session(exclusive=outbox.OUTBOX_LOCK) as session:
        application = await find_client(session, app_ref)
        if not application.webhook_url:
            raise NoWebhookUrl(f"application {application.client_id} has no webhook URL")
        events = [
            outbox.Event(
                EventType.TEST_PING,
                {"message": "ping from 1pass", "sequence": n + 1, "count": count},
                f"test.ping.{uuid.uuid4().hex}",
            )
            for n in range(count)
        ]
        ids = await outbox.enqueue_many(
            session,
            application,
            events,
            clock=runtime.clock,
            max_payload_bytes=runtime.settings.webhook_max_payload_bytes,
        )
    return {
        "oauth_application_id": application.id,
        "client_id": application.client_id,
        "enqueued": len(ids),
        "entry_ids": ids,
    }
