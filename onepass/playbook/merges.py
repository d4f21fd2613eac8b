"""The playbook's merges chapter: merge two users, and send RPs the links they were
never sent (the rules are ``onepass.identity.service``'s and ``identity.backfill``'s)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import service as accounts
from onepass.clients.registry import find_client
from onepass.clock import Clock
from onepass.identity import backfill, enforcement
from onepass.identity.canonical import CanonicalResolver
from onepass.identity.service import MergeResult, merge
from onepass.oauth import backchannel
from onepass.oauth.revocation import revoke_merged_user
from onepass.oauth.ssf import signals as ssf
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook.actions import MERGE_USERS
from onepass.runtime import Runtime


async def merge_by_reference(
    runtime: Runtime,
    resolver: CanonicalResolver,
    actor: Actor,
    source_ref: str,
    target_ref: str,
    *,
    reason: str | None = None,
    link_actor: str | None = None,
) -> dict[str, Any]:
    """Merge the user ``source_ref`` into ``target_ref`` (each an id, sub or email): the
    merge and its audit row in one transaction (``identity.service.merge``), then every
    subscribed RP is told. ``link_actor``: who asked, as ``identity_links`` keeps it."""
    async with runtime.database.session() as session:
        source_id = (await accounts.find_user(session, source_ref)).id
        target_id = (await accounts.find_user(session, target_ref)).id

    async def logout(session: AsyncSession, clock: Clock, user_id: int) -> int:
        # Before the merge changes anything: the Shared Signals streams that asked for
        # merges are told too (``oauth.ssf.signals.tell_merge``).
        await ssf.tell_merge(session, clock, runtime.settings, user_id, target_id)
        return await backchannel.logout_user(
            session, clock, user_id, enforce=False, reason=backchannel.USER_MERGED
        )

    def record(session: AsyncSession, result: MergeResult) -> None:
        audit.add(
            session,
            runtime.clock,
            actor,
            MERGE_USERS,
            f"{source_id}->{target_id}",
            detail={"link_id": result.link.id, "reason": reason},
        )

    result = await merge(
        runtime.database,
        resolver,
        runtime.clock,
        source_id=source_id,
        target_id=target_id,
        actor=link_actor or actor.name,
        reason=reason,
        revoke_tokens=revoke_merged_user,
        also=record,
        logout=logout,
    )
    return {
        "link_id": result.link.id,
        "source_id": source_id,
        "target_id": target_id,
        "webhooks_enqueued": result.enqueued,
        "repointed_user_ids": result.stale_user_ids[1:],
    }


BACKFILL_LINKS = "webhooks.backfill_links"


async def backfill_links(
    runtime: Runtime,
    actor: Actor,
    app_ref: str | None,
    *,
    batch_size: int = backfill.BATCH,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Enqueue ``identity.link.created`` for every link the RP ``app_ref`` (every
    subscribed RP when None) was never sent; idempotent and resumable, in batches of
    ``batch_size`` links, each batch its own transaction (``identity.backfill``).

    ``progress(client_id, links)`` is called before each RP and returns what to
    call with the number of links each batch covered. The audit row comes last, in a
    transaction of its own, with what was enqueued and skipped."""
    async with runtime.database.session(readonly=True) as session:
        if app_ref is None:
            apps = [(a.id, a.client_id) for a in await enforcement.subscribed_applications(session)]
        else:
            found = await find_client(session, app_ref)
            apps = [(found.id, found.client_id)]
    app_ids = [app_id for app_id, _ in apps]
    total = await backfill.count_links(runtime.database)
    enqueued = skipped = 0
    for application_id, client_id in apps:
        one = await backfill.backfill_links(
            runtime.database,
            runtime.clock,
            application_id,
            batch_size=batch_size,
            progress=progress(client_id, total) if progress is not None else None,
        )
        enqueued += one.enqueued
        skipped += one.skipped
    await audit.record(
        runtime.database,
        runtime.clock,
        actor,
        BACKFILL_LINKS,
        app_ref if app_ref is not None else "*",
        audit.OK,
        detail={"applications": app_ids, "enqueued": enqueued, "skipped": skipped},
    )
    return {"enqueued": enqueued, "skipped": skipped}
