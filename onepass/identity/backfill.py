"""Backfill ``identity.link.created`` to an RP: every link it has not been sent.

Batches of links in id order, each batch enqueued and committed on its own, so an
interrupted run (Ctrl-C) keeps what it did and the next run resumes. Links the RP
was already sent conflict on the outbox's unique index (application, idempotency key)
and are skipped, so a second run enqueues nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from onepass.accounts.models import User
from onepass.clients.models import OAuthApplication
from onepass.clients.subjects import subject_for
from onepass.clock import Clock
from onepass.db import Database
from onepass.identity.models import IdentityLink
from onepass.identity.service import link_idempotency_key, link_payload
from onepass.refusals import Refusal
from onepass.webhooks.events import EventType
from onepass.webhooks.outbox import Event, enqueue_many, subscribed

BATCH = 2000


@dataclass
class BackfillResult:
    enqueued: int = 0
    skipped: int = 0


class NotSubscribed(Refusal):
    pass


async def count_links(database: Database) -> int:
    async with database.session(readonly=True) as session:
        return int(await session.scalar(select(func.count(IdentityLink.id))) or 0)


async def backfill_links(
    database: Database,
    clock: Clock,
    application_id: int,
    *,
    batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> BackfillResult:
    source, target = aliased(User), aliased(User)
    result = BackfillResult()
    after = 0
    while True:
        async with database.session() as session:
            app = await session.get(OAuthApplication, application_id)
            if app is None:
                raise NotSubscribed(f"no application with id {application_id}")
            if not subscribed(app, EventType.IDENTITY_LINK_CREATED):
                raise NotSubscribed(
                    f"{app.client_name} ({app.client_id}) has no webhook URL or does not "
                    "subscribe to identity.link.created"
                )
            rows = (
                await session.execute(
                    select(
                        IdentityLink.id,
                        IdentityLink.created_at,
                        source.id,
                        source.sub,
                        target.id,
                        target.sub,
                    )
                    .join(source, source.id == IdentityLink.source_user_id)
                    .join(target, target.id == IdentityLink.target_user_id)
                    .where(IdentityLink.id > after)
                    .order_by(IdentityLink.id)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                return result
            # The subs this RP knows: a pairwise RP's are its sector's (``clients.subjects``).
            events = [
                Event(
                    EventType.IDENTITY_LINK_CREATED,
                    link_payload(
                        link_id,
                        created_at,
                        await subject_for(session, clock, app, source_id, source_sub),
                        await subject_for(session, clock, app, target_id, target_sub),
                    ),
                    link_idempotency_key(link_id, application_id),
                )
                for link_id, created_at, source_id, source_sub, target_id, target_sub in rows
            ]
            # A link already sent conflicts on the outbox's unique (application, key)
            # index and is skipped: always an index probe, whatever the planner
            # believes about the table's size (a pre-check by anti-join or IN list was
            # planned as a scan of the whole outbox per batch while its statistics
            # were those of an empty table).
            written = await enqueue_many(session, app, events, clock=clock, skip_duplicates=True)
        result.enqueued += len(written)
        result.skipped += len(rows) - len(written)
        after = rows[-1][0]
        if progress is not None:
            progress(len(rows))
