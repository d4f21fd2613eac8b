"""The merge service: one transaction that merges a user into another.

Rules (the playbook's, made checks):
- both users are locked in a fixed order (ids ascending), so merges that touch the
  same users run one after the other and never deadlock;
- refused: merging a user into itself, a user already merged, into a user that is
  itself merged (the error names its canonical user), or anything making a cycle;
- refused: an administrator, as source or target (an administrator is an account of
  its own, never one of an end user's identities), and a deleted user;
- the link is inserted and every link that targeted the source is repointed to the
  target, so every chain stays one hop;
- the source's login sessions are revoked, and its tokens by the step the caller
  gives (``revoke_tokens``: ``onepass.oauth.revocation.revoke_merged_user``, as
  identity does not import oauth), in the same transaction; before anything changes,
  the caller's ``logout`` step tells the source's RPs its sessions end (back-channel
  logout: ``onepass.oauth.backchannel.logout_user``), naming the source's own ``sub``;
- ``identity.link.created`` is enqueued for every application subscribed to it, in
  the same transaction, with an idempotency key derived from (link, application); each
  is told the subs it knows (a pairwise RP its sector's: ``clients.subjects``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import User
from onepass.accounts.service import revoke_user_sessions
from onepass.clients.models import OAuthApplication
from onepass.clients.subjects import subject_for
from onepass.clock import Clock
from onepass.db.engine import Database, lock
from onepass.identity.canonical import CanonicalResolver, canonical_user_id
from onepass.identity.models import IdentityLink
from onepass.refusals import Conflict
from onepass.webhooks.events import EventType
from onepass.webhooks.outbox import enqueue, subscribed, timestamp_text

MERGE_LOCK = "identity.merge"

# Revokes a merged-away user's tokens in the merge's transaction (session, clock, user id).
RevokeTokens = Callable[[AsyncSession, Clock, int], Awaitable[object]]


class MergeError(Conflict):
    """A merge that must not happen; the message tells the operator what to do."""


def link_idempotency_key(link_id: int, application_id: int) -> str:
    return f"identity.link.created:{link_id}:{application_id}"


def link_payload(
    link_id: int,
    created_at: datetime,
    source_sub: str,
    target_sub: str,
    repointed: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    """The ``data`` of ``identity.link.created``. ``repointed`` lists older links whose
    target was the source and now is the target, so an RP keeps every chain one hop."""
    return {
        "link_id": link_id,
        "source_sub": source_sub,
        "target_sub": target_sub,
        "created_at": timestamp_text(created_at),
        "repointed": repointed or [],
    }


@dataclass
class MergeResult:
    link: IdentityLink
    source: User
    target: User
    # Users whose canonical user changed (the source and everyone merged into it).
    stale_user_ids: list[int] = field(default_factory=list)
    enqueued: int = 0


async def _lock_users(session: AsyncSession, ids: list[int]) -> dict[int, User]:
    query = select(User).where(User.id.in_(ids)).order_by(User.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    users = {
        u.id: u for u in await session.scalars(query.execution_options(populate_existing=True))
    }
    missing = [i for i in ids if i not in users]
    if missing:
        raise MergeError(f"no user with id {missing[0]}")
    return users


async def merge_users(
    session: AsyncSession,
    clock: Clock,
    *,
    source_id: int,
    target_id: int,
    actor: str,
    reason: str | None = None,
    logout: RevokeTokens | None = None,
) -> MergeResult:
    """Merge ``source_id`` into ``target_id`` in the caller's transaction.

    On SQLite the transaction must be exclusive (``merge`` does that). The source's
    tokens are the caller's to revoke, in the same transaction (``merge`` does that).
    ``logout`` runs once the merge is known to be allowed, before the link exists and
    the sessions end (the RPs knew the source by its own ``sub``).
    """
    if source_id == target_id:
        raise MergeError("a user cannot be merged into itself")
    users = await _lock_users(session, sorted({source_id, target_id}))
    source, target = users[source_id], users[target_id]
    for role, user in (("source", source), ("target", target)):
        if user.is_admin:
            raise MergeError(
                f"user {user.id} ({role}) is an administrator: an administrator is an "
                "account of its own and is never merged, into or from an end user's account"
            )
        if user.deleted_at is not None:
            raise MergeError(f"user {user.id} ({role}) was deleted: nothing is left to merge")
    # Read the links only now, under the locks: a concurrent merge has committed.
    if await canonical_user_id(session, source_id) != source_id:
        raise MergeError(
            f"user {source_id} is already merged into user {await canonical_user_id(session, source_id)}"
        )
    target_canonical = await canonical_user_id(session, target_id)
    if target_canonical != target_id:
        raise MergeError(
            f"user {target_id} is itself merged into user {target_canonical}: "
            f"merge into {target_canonical} instead"
        )
    if target_canonical == source_id:  # unreachable with one-hop chains; kept as the invariant
        raise MergeError("this merge would make a cycle")

    if logout is not None:
        await logout(session, clock, source_id)
    now = clock.now()
    link = IdentityLink(
        source_user_id=source_id,
        target_user_id=target_id,
        created_at=now,
        actor=actor[:200],
        reason=reason,
    )
    session.add(link)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise MergeError(f"user {source_id} is already merged") from None
    repointed_rows = (
        await session.execute(
            update(IdentityLink)
            .where(IdentityLink.target_user_id == source_id)
            .values(target_user_id=target_id)
            .returning(IdentityLink.id, IdentityLink.source_user_id)
        )
    ).all()
    repointed = [source_user for _, source_user in repointed_rows]
    subs = (
        dict((await session.execute(select(User.id, User.sub).where(User.id.in_(repointed)))).all())
        if repointed
        else {}
    )
    await revoke_user_sessions(session, clock, source_id)

    enqueued = 0
    applications = await session.scalars(
        select(OAuthApplication).where(OAuthApplication.webhook_url.is_not(None))
    )
    for app in list(applications):
        if subscribed(app, EventType.IDENTITY_LINK_CREATED):
            # Each RP is told the subs it knows: a pairwise RP its sector's
            # (``clients.subjects``), so it can find both accounts it has.
            async def seen(user_id: int, sub: str, app: OAuthApplication = app) -> str:
                return await subject_for(session, clock, app, user_id, sub)

            payload = link_payload(
                link.id,
                link.created_at,
                await seen(source.id, source.sub),
                await seen(target.id, target.sub),
                [
                    {"link_id": link_id, "source_sub": await seen(user, subs[user])}
                    for link_id, user in repointed_rows
                ],
            )
            await enqueue(
                session,
                app,
                EventType.IDENTITY_LINK_CREATED,
                payload,
                link_idempotency_key(link.id, app.id),
                clock=clock,
            )
            enqueued += 1
    return MergeResult(link, source, target, [source_id, *repointed], enqueued)


async def merge(
    database: Database,
    resolver: CanonicalResolver,
    clock: Clock,
    *,
    source_id: int,
    target_id: int,
    actor: str,
    reason: str | None = None,
    revoke_tokens: RevokeTokens,
    also: Callable[[AsyncSession, MergeResult], None] | None = None,
    logout: RevokeTokens | None = None,
) -> MergeResult:
    """Merge in its own transaction, then invalidate exactly the stale cache keys.

    ``revoke_tokens`` revokes the source's tokens in the same transaction (required,
    so no caller can forget it: ``onepass.oauth.revocation.revoke_merged_user``);
    ``also`` adds to it too (the audit log's record of the merge); ``logout`` tells
    the source's RPs (``merge_users``)."""
    async with database.sessionmaker() as session, session.begin():
        if database.dialect == "sqlite":
            await lock(session, MERGE_LOCK)  # BEGIN IMMEDIATE: merges serialise
        result = await merge_users(
            session,
            clock,
            source_id=source_id,
            target_id=target_id,
            actor=actor,
            reason=reason,
            logout=logout,
        )
        await revoke_tokens(session, clock, source_id)
        if also is not None:
            also(session, result)
    await resolver.record_merge(result.stale_user_ids, target_id)
    return result


async def links_of(session: AsyncSession, user_id: int) -> list[dict[str, object]]:
    """The identity links ``user_id`` is in, as source or target, oldest first, with
    each side's id and ``sub``."""
    links = list(
        await session.scalars(
            select(IdentityLink)
            .where(
                (IdentityLink.source_user_id == user_id) | (IdentityLink.target_user_id == user_id)
            )
            .order_by(IdentityLink.id)
        )
    )
    ids = {link.source_user_id for link in links} | {link.target_user_id for link in links}
    subs = (
        dict((await session.execute(select(User.id, User.sub).where(User.id.in_(ids)))).all())
        if ids
        else {}
    )
    return [
        {
            "link_id": link.id,
            "source_id": link.source_user_id,
            "source_sub": subs.get(link.source_user_id),
            "target_id": link.target_user_id,
            "target_sub": subs.get(link.target_user_id),
            "created_at": link.created_at,
            "actor": link.actor,
            "reason": link.reason,
        }
        for link in links
    ]
