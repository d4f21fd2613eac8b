"""The signing keys one process holds in memory.

Every process (uvicorn worker, machine) re-reads the published keys every
``key_refresh_interval`` seconds, so a rotation made anywhere is used everywhere
within that time, without a database round trip per token. If a refresh fails
(database down), the last keys stay in use and the failure is logged.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import structlog
from joserfc.jwk import KeySetSerialization

from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.db import Database
from onepass.keys import service
from onepass.keys.jwt import JWTSigner
from onepass.keys.models import KeyState
from onepass.services import Service

log = structlog.get_logger("onepass.keys")


class NoActiveKey(Exception):
    """No active signing key for the algorithm (the keys were removed or never created)."""


class KeyRing:
    def __init__(
        self, database: Database, box: SecretBox, clock: Clock, *, refresh_interval: float
    ) -> None:
        self._database = database
        self._box = box
        self._clock = clock
        self.refresh_interval = refresh_interval
        self._signers: dict[str, JWTSigner] = {}
        self._fingerprint: tuple[tuple[str, str], ...] | None = None
        self.jwks: KeySetSerialization = {"keys": []}
        self.jwks_body: bytes = orjson.dumps(self.jwks)
        self.last_refreshed: float | None = None  # monotonic time of the last good refresh

    def has_signer(self, alg: str) -> bool:
        return alg in self._signers

    def signer(self, alg: str) -> JWTSigner:
        signer = self._signers.get(alg)
        if signer is None:
            raise NoActiveKey(f"no active {alg} signing key")
        return signer

    def staleness(self) -> float | None:
        """Seconds since the last successful refresh (None: never refreshed)."""
        return None if self.last_refreshed is None else time.monotonic() - self.last_refreshed

    async def refresh(self) -> bool:
        """Reload the published keys; True if anything changed."""
        async with self._database.session(readonly=True) as session:
            keys = await service.published_keys(session, self._clock)
        fingerprint = tuple((key.kid, key.state) for key in keys)
        if fingerprint == self._fingerprint:
            self.last_refreshed = time.monotonic()
            return False
        known = {signer.kid: signer for signer in self._signers.values()}
        signers = {}
        for key in keys:
            if key.state == KeyState.ACTIVE:
                signers[key.alg] = known.get(key.kid) or service.load_signer(self._box, key)
        self._signers = signers
        self.jwks = {"keys": [key.public_jwk for key in keys]}
        self.jwks_body = orjson.dumps(self.jwks)
        self._fingerprint = fingerprint
        self.last_refreshed = time.monotonic()
        log.info(
            "keys.loaded", active={alg: s.kid for alg, s in signers.items()}, published=len(keys)
        )
        return True

    async def run(self) -> None:
        """Refresh forever (a task of the application's lifespan)."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("keys.refresh_failed", error=type(exc).__name__, detail=str(exc)[:200])


KEYRING: Service[KeyRing] = Service("keys.keyring")
