"""What ``onepass serve`` does once, before its workers start."""

from __future__ import annotations

import structlog

from onepass.crypto import DecryptionError
from onepass.db import migrate
from onepass.identity.enforcement import guard_enforcement
from onepass.keys import service as keys
from onepass.keys.models import KeyState
from onepass.keys.service import KEYS_LOCK
from onepass.runtime import Runtime

log = structlog.get_logger("onepass.startup")


async def check_enforcement(runtime: Runtime) -> None:
    """With ENFORCE_CANONICAL_RESOLUTION on, every RP must hold every identity link.

    Production refuses to start otherwise (unless ONEPASS_FORCE_CANONICAL_ENFORCEMENT=1);
    development warns.
    """
    settings = runtime.settings
    if not settings.enforce_canonical_resolution:
        return
    force = settings.force_canonical_enforcement or not settings.is_production
    async with runtime.database.session() as session:
        lacking = await guard_enforcement(session, force=force)
    for state in lacking:
        log.warning(
            "identity.enforcement_with_missing_links",
            client_id=state.client_id,
            missing=state.missing,
            hint="onepass webhooks backfill-links --all",
        )


async def prepare(runtime: Runtime) -> None:
    """Apply migrations, create the signing keys missing for ONEPASS_SIGNING_ALGS, retire
    those of an algorithm taken out of it, prove the secret key opens the active ones."""
    await migrate.upgrade(runtime.database)
    settings = runtime.settings
    algs = settings.signing_algorithms
    async with runtime.database.session(exclusive=KEYS_LOCK) as session:
        created = await keys.ensure_keys(session, runtime.box, runtime.clock, algs)
        retired = await keys.retire_unlisted(
            session,
            runtime.clock,
            algs,
            keys.retention(settings.max_token_ttl, settings.key_refresh_interval),
        )
        active = [k for k in await keys.list_keys(session) if k.state == KeyState.ACTIVE]
    for key in created:
        log.info("keys.created", kid=key.kid, alg=key.alg, state=key.state)
    for key in retired:
        log.warning(
            "keys.retired_unlisted",
            kid=key.kid,
            alg=key.alg,
            remove_after=key.remove_after.isoformat() if key.remove_after else None,
            hint="its algorithm is not in ONEPASS_SIGNING_ALGS",
        )
    await check_enforcement(runtime)
    for key in active:
        try:
            keys.load_signer(runtime.box, key)
        except DecryptionError:
            raise DecryptionError(
                f"signing key {key.kid} does not decrypt: ONEPASS_SECRET_KEY is not the key "
                "the signing keys were created with"
            ) from None
