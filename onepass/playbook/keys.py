"""The playbook's keys chapter: rotate the JWKS signing keys (under ``KEYS_LOCK``),
rotate an RP's webhook signing key, and the emergency of a leaked one (``compromise``),
both under that application's webhook-key lock. The rules are ``onepass.keys.service``'s
and ``onepass.webhooks.keys``'s."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.clients.registry import ClientNotFound, find_client
from onepass.keys import service as signing_keys
from onepass.keys.service import KEYS_LOCK
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook.actions import (
    COMPROMISE_WEBHOOK_KEY,
    ROTATE_SIGNING_KEYS,
    ROTATE_WEBHOOK_KEY,
)
from onepass.runtime import Runtime
from onepass.webhooks import keys as webhook_keys


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
            raise ClientNotFound(f"application {app_ref} was deleted meanwhile")
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


async def rotate_signing_keys(
    runtime: Runtime, actor: Actor, *, force: bool = False, algs: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rotate the JWKS keys of ``algs`` (none named: every algorithm of
    ONEPASS_SIGNING_ALGS); an algorithm the deployment keeps no keys for, or that 1pass
    does not sign with, is refused (``UnsupportedAlgorithm``) before anything changes."""
    settings = runtime.settings
    configured = settings.signing_algorithms
    chosen = signing_keys.check_algorithms(algs, configured) if algs else list(configured)
    async with runtime.database.session(exclusive=KEYS_LOCK) as session:
        rotations = await signing_keys.rotate(
            session,
            runtime.box,
            runtime.clock,
            algs=chosen,
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
                "algs": chosen,
                "activated_kids": [r.activated_kid for r in rotations],
                "retired_kids": [r.retired_kid for r in rotations if r.retired_kid],
            },
        )
    return rows
