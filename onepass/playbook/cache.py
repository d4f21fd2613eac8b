"""The playbook's cache chapter: drop cached canonical-user resolutions (the next
request reads ``identity_links``)."""

from __future__ import annotations

from typing import Any

from onepass.accounts import service as accounts
from onepass.identity.canonical import CanonicalResolver
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook.actions import INVALIDATE_CANONICAL
from onepass.runtime import Runtime


async def invalidate_canonical(
    runtime: Runtime, resolver: CanonicalResolver, actor: Actor, user_ref: str | None
) -> dict[str, Any]:
    """``user_ref`` None: every cached resolution."""
    cache = "redis" if runtime.settings.redis_url else "in-process"
    if user_ref is None:
        result: dict[str, Any] = {"deleted": await resolver.invalidate_all(), "cache": cache}
        target = "*"
    else:
        async with runtime.database.session() as session:
            found = await accounts.find_user(session, user_ref)
        result = {
            "user_id": found.id,
            "deleted": await resolver.invalidate([found.id]),
            "cache": cache,
        }
        target = str(found.id)
    await audit.record(
        runtime.database,
        runtime.clock,
        actor,
        INVALIDATE_CANONICAL,
        target,
        audit.OK,
        detail={"deleted": result["deleted"]},
    )
    return result
