"""The playbook's procedures that change something, one function each, shared by the
CLI and the admin API (and its console), and recorded in the audit log in the same
transaction as the change.

Each takes the process's ``Runtime`` (database, clock, keys), an ``Actor`` and the
procedure's arguments, and returns what the CLI prints with ``--json`` and the API
answers. Refusals are the domains' own exceptions (``ValueError`` subclasses).

``ACTIONS`` names them for step-up: an ``action_request_nonce`` is issued for one
action on one target, the target written in its canonical form (``canonical_target``),
so a nonce asked for with a client_id works for the same application's internal id.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import service as accounts
from onepass.admin import audit, service
from onepass.admin.audit import Actor
from onepass.admin.errors import AdminError
from onepass.clients.models import OAuthApplication
from onepass.clients.registry import find_client
from onepass.identity.canonical import CanonicalResolver
from onepass.identity.service import MergeResult, merge
from onepass.keys import service as signing_keys
from onepass.oauth.revocation import revoke_merged_user
from onepass.runtime import Runtime
from onepass.startup import KEYS_LOCK
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks import outbox


@dataclass(frozen=True)
class Action:
    scope: str
    target: str  # what the target is, for error messages and docs


RETRY = "webhook_outbox.retry"
REPLAY_DLQ = "webhook_outbox.replay_dlq"
ROTATE_WEBHOOK_KEY = "webhook_keys.rotate"
COMPROMISE_WEBHOOK_KEY = "webhook_keys.compromise"
ROTATE_SIGNING_KEYS = "signing_keys.rotate"
MERGE_USERS = "users.merge"
INVALIDATE_CANONICAL = "cache.invalidate_canonical"

ACTIONS = {
    RETRY: Action("webhooks:write", "an outbox entry id"),
    REPLAY_DLQ: Action("webhooks:write", "an application (client_id or id)"),
    ROTATE_WEBHOOK_KEY: Action("keys:write", "an application (client_id or id)"),
    COMPROMISE_WEBHOOK_KEY: Action("keys:write", "APP/KID (an application and its key's kid)"),
    ROTATE_SIGNING_KEYS: Action("keys:write", '"jwks"'),
    MERGE_USERS: Action("users:write", "SOURCE->TARGET (users by id, sub or email)"),
    INVALIDATE_CANONICAL: Action("users:write", 'a user (id, sub or email), or "*" for all'),
}


def action_named(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        raise AdminError(
            "invalid_request",
            f"unknown action {name[:60]!r}; the actions are: " + ", ".join(ACTIONS),
        )
    return action


# action_request_nonces.target and audit_log.target are String(300).
MAX_TARGET = 300


async def canonical_target(session: AsyncSession, action: str, target: str) -> str:
    """``target`` as the action names it when it spends a nonce; refuses what does not
    name an existing thing of the right kind."""
    spec = action_named(action)
    target = target.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        raise AdminError("invalid_request", f"the target of {action} is {spec.target}")
    canonical = await _canonical_target(session, action, spec, target)
    if len(canonical) > MAX_TARGET:
        raise AdminError("invalid_request", f"the target of {action} is {spec.target}")
    return canonical


async def _canonical_target(session: AsyncSession, action: str, spec: Action, target: str) -> str:
    if action == RETRY:
        # An outbox entry id fits in 64 bits.
        if not (target.isascii() and target.isdigit() and len(target) <= 18):
            raise AdminError("invalid_request", f"the target of {action} is {spec.target}")
        return str(int(target))
    if action in (REPLAY_DLQ, ROTATE_WEBHOOK_KEY):
        return (await find_client(session, target)).client_id
    if action == COMPROMISE_WEBHOOK_KEY:
        app_ref, _, kid = target.rpartition("/")
        if not app_ref or not kid:
            raise AdminError("invalid_request", f"the target of {action} is {spec.target}")
        return f"{(await find_client(session, app_ref)).client_id}/{kid}"
    if action == ROTATE_SIGNING_KEYS:
        if target != "jwks":
            raise AdminError("invalid_request", f'the target of {action} is "jwks"')
        return "jwks"
    if action == MERGE_USERS:
        # Exactly one arrow: "a->b->c" would name two different merges, and a nonce
        # asked for one must not serve the other.
        source, arrow, into = target.partition("->")
        if not arrow or "->" in into or not source.strip() or not into.strip():
            raise AdminError("invalid_request", f"the target of {action} is {spec.target}")
        source_user = await accounts.find_user(session, source.strip())
        target_user = await accounts.find_user(session, into.strip())
        return f"{source_user.id}->{target_user.id}"
    if target == "*":
        return "*"
    return str((await accounts.find_user(session, target)).id)


async def step_up(
    session: AsyncSession,
    runtime: Runtime,
    actor: Actor,
    user_id: int,
    *,
    token_id: int | None,
    action: str,
    target: str,
    code: str,
) -> tuple[str, datetime]:
    """The step-up of the API and the console, in the caller's transaction: check
    ``code``, issue a nonce for ``action`` on the canonical ``target``, audit it.
    Returns the nonce and when it expires."""
    settings = runtime.settings
    nonce, expires_at = await service.step_up(
        session,
        runtime.hasher,
        runtime.box,
        runtime.clock,
        runtime.cache,
        user_id,
        token_id=token_id,
        code=code,
        action=action,
        target=target,
        ttl=timedelta(seconds=settings.admin_step_up_ttl),
        max_failures=settings.admin_totp_max_failures,
        failure_window=settings.login_failure_window,
    )
    audit.add(session, runtime.clock, actor, f"step_up:{action}", target)
    return nonce, expires_at


# -- webhooks -------------------------------------------------------------------------


async def retry_entry(runtime: Runtime, actor: Actor, entry_id: int) -> dict[str, Any]:
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


@contextlib.asynccontextmanager
async def _application_keys(
    runtime: Runtime, app_ref: str
) -> AsyncIterator[tuple[AsyncSession, OAuthApplication]]:
    """A transaction holding the application's webhook-key lock, the application read
    in it (``webhook_keys``: callers hold that lock to rotate or revoke)."""
    async with runtime.database.session() as session:
        found = await find_client(session, app_ref)
    async with runtime.database.session(exclusive=webhook_keys.keys_lock(found.id)) as session:
        application = await session.get(OAuthApplication, found.id)
        if application is None:
            raise ValueError(f"application {app_ref} was deleted meanwhile")
        yield session, application


async def rotate_webhook_key(
    runtime: Runtime,
    actor: Actor,
    app_ref: str,
    *,
    grace: timedelta = webhook_keys.DEFAULT_GRACE,
    scheme: str | None = None,
) -> dict[str, Any]:
    async with _application_keys(runtime, app_ref) as (session, application):
        new, retired = await webhook_keys.rotate(
            session, runtime.box, runtime.clock, application.id, grace=grace, scheme=scheme
        )
        rotation = {"retired_kids": retired, "grace_seconds": grace.total_seconds()}
        audit.add(
            session,
            runtime.clock,
            actor,
            ROTATE_WEBHOOK_KEY,
            application.client_id,
            detail={"kid": new.kid, **rotation},
        )
    return {**new.as_json(), **rotation}


async def compromise_webhook_key(
    runtime: Runtime, actor: Actor, app_ref: str, kid: str
) -> dict[str, Any]:
    async with _application_keys(runtime, app_ref) as (session, application):
        result = await webhook_keys.compromise(
            session,
            runtime.box,
            runtime.clock,
            application,
            kid,
            max_payload_bytes=runtime.settings.webhook_max_payload_bytes,
        )
        audit.add(
            session,
            runtime.clock,
            actor,
            COMPROMISE_WEBHOOK_KEY,
            f"{application.client_id}/{kid}",
            detail={"kid": result.new_key.kid, "restamped_entries": result.restamped},
        )
    return {
        "revoked_kid": result.revoked_kid,
        **result.new_key.as_json(),
        "restamped_entries": result.restamped,
        "event_entry_id": result.event_id,
    }


# -- JWKS -----------------------------------------------------------------------------


async def rotate_signing_keys(
    runtime: Runtime, actor: Actor, *, force: bool = False
) -> list[dict[str, Any]]:
    settings = runtime.settings
    async with runtime.database.session(exclusive=KEYS_LOCK) as session:
        rotations = await signing_keys.rotate(
            session,
            runtime.box,
            runtime.clock,
            max_token_ttl=settings.max_token_ttl,
            propagation_delay=settings.key_refresh_interval,
            min_next_age=0 if force else settings.jwks_max_age + settings.key_refresh_interval,
        )
        rows = [asdict(r) for r in rotations]
        audit.add(
            session,
            runtime.clock,
            actor,
            ROTATE_SIGNING_KEYS,
            "jwks",
            detail={
                "force": force,
                "activated_kids": [r.activated_kid for r in rotations],
                "retired_kids": [r.retired_kid for r in rotations if r.retired_kid],
            },
        )
    return rows


# -- identity -------------------------------------------------------------------------


async def merge_users(
    runtime: Runtime,
    resolver: CanonicalResolver,
    actor: Actor,
    source_ref: str,
    target_ref: str,
    *,
    reason: str | None = None,
    link_actor: str | None = None,
) -> dict[str, Any]:
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
