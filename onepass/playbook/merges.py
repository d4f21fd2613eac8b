"""The playbook's merges chapter: merge two users (the rules are
``onepass.identity.service``'s)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import service as accounts
from onepass.identity.canonical import CanonicalResolver
from onepass.identity.service import MergeResult, merge
from onepass.oauth.revocation import revoke_merged_user
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
    )
    return {
        "link_id": result.link.id,
        "source_id": source_id,
        "target_id": target_id,
        "webhooks_enqueued": result.enqueued,
        "repointed_user_ids": result.stale_user_ids[1:],
    }
