"""The dispatcher's key ring, for the logout tokens of back-channel logouts
(``webhooks.logout_tokens``): 1pass's own signing keys, as ID tokens are signed.

Loaded on the first logout a dispatcher sends (a dispatcher that sends only webhooks
never reads it), then read again whenever it is older than
``ONEPASS_KEY_REFRESH_INTERVAL``, as every server process does: a key rotation made
anywhere signs the next logout tokens. A refresh that fails keeps the keys it had.
"""

from __future__ import annotations

import asyncio

import structlog

from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.db import Database
from onepass.keys.jwt import JWTSigner
from onepass.keys.keyring import KeyRing, NoActiveKey

log = structlog.get_logger("onepass.webhooks.dispatcher")


class LogoutKeys:
    def __init__(
        self, database: Database, box: SecretBox, clock: Clock, *, refresh_interval: float
    ) -> None:
        self.ring = KeyRing(database, box, clock, refresh_interval=refresh_interval)
        self._lock = asyncio.Lock()

    async def signer(self, alg: str) -> JWTSigner:
        """The active key for ``alg``; ``NoActiveKey`` if there is none."""
        ring = self.ring
        stale = ring.staleness()
        if stale is None or stale >= ring.refresh_interval:
            async with self._lock:
                stale = ring.staleness()
                if stale is None or stale >= ring.refresh_interval:
                    try:
                        await ring.refresh()
                    except Exception as exc:  # the database is away: the keys we had
                        log.warning(
                            "webhooks.logout_keys_refresh_failed",
                            error=type(exc).__name__,
                            detail=str(exc)[:200],
                        )
                        if ring.last_refreshed is None:
                            raise NoActiveKey(
                                f"the signing keys could not be read ({type(exc).__name__})"
                            ) from None
        return ring.signer(alg)
