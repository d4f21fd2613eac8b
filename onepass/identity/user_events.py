"""The ``user.*`` webhooks: ``user.updated``, ``user.disabled``, ``user.enabled`` and
``user.deleted``, enqueued in the transaction of the change for every application
subscribed to them (``webhooks.outbox.subscribed``), as ``identity.link.created`` is.

RPs know a person by the canonical user's ``sub`` (a pairwise RP by its sector's,
``clients.subjects``). A user merged into another is no
longer a person RPs know on its own: a change to it (its own password disabled, its
own data erased) sends nothing, since the canonical user RPs see did not change.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import User
from onepass.clients.models import OAuthApplication
from onepass.clients.subjects import subject_for
from onepass.clock import Clock
from onepass.identity.canonical import canonical_user_id
from onepass.webhooks.events import EventType
from onepass.webhooks.outbox import enqueue, subscribed


async def notify(
    session: AsyncSession,
    clock: Clock,
    user: User,
    event_type: EventType,
    data: dict[str, Any] | None = None,
) -> int:
    """Enqueue ``event_type`` about ``user`` (``{"sub": …, **data}``) for every subscribed
    application; returns how many. Nothing for a user merged into another."""
    if await canonical_user_id(session, user.id) != user.id:
        return 0
    # user.deleted happens once; the others may happen again, each its own event.
    suffix = "" if event_type is EventType.USER_DELETED else f":{secrets.token_urlsafe(9)}"
    enqueued = 0
    applications = await session.scalars(
        select(OAuthApplication).where(OAuthApplication.webhook_url.is_not(None))
    )
    for app in list(applications):
        if subscribed(app, event_type):
            # The sub this RP knows (a pairwise RP's, ``clients.subjects``); the key
            # is sent too (``webhook-id``), so it names that sub and no other.
            sub = await subject_for(session, clock, app, user.id, user.sub)
            payload = {"sub": sub, **(data or {})}
            key = f"{event_type.value}:{sub}{suffix}"
            await enqueue(session, app, event_type, payload, key, clock=clock)
            enqueued += 1
    return enqueued
