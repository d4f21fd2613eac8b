"""What each application's deliveries need: its webhook URL and its valid signing keys,
read for every claimed batch just before its attempts start."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from onepass.clock import Clock
from onepass.crypto import DecryptionError, SecretBox
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks import signing
from onepass.webhooks.store import Store

log = structlog.get_logger("onepass.webhooks.dispatcher")

MAX_SIGNING_KEYS = 5


@dataclass
class Target:
    """What one application's deliveries need: its URL and its signing keys; for its
    back-channel logouts, their URI, its client_id and its ID tokens' algorithm."""

    url: str | None
    keys: list[tuple[signing.Signer, datetime | None]] = field(default_factory=list)
    error: str | None = None
    logout_uri: str | None = None
    client_id: str | None = None
    id_token_alg: str | None = None

    def signers_at(self, now: datetime) -> list[signing.Signer]:
        signers = [s for s, expires in self.keys if expires is None or expires > now]
        return signers[:MAX_SIGNING_KEYS]


class Targets:
    """Loads targets through the store, decrypting each kid's secret once."""

    def __init__(self, store: Store, box: SecretBox, clock: Clock) -> None:
        self.store = store
        self.box = box
        self.clock = clock
        self._signers: dict[str, signing.Signer] = {}

    async def load(self, app_ids: Sequence[int]) -> dict[int, Target]:
        """Each application's URL and valid keys, read as its attempts are about to start.

        Read for every batch, never cached across batches: a key revoked by a
        compromise signs nothing that starts after the read that follows the commit.
        (Decrypted secrets are cached by kid: a kid's secret never changes.)
        """
        targets = {a: Target(None) for a in app_ids}
        for row in await self.store.keys(app_ids, self.clock.now()):
            target = targets[row.app_id]
            target.url = row.url
            target.logout_uri = row.logout_uri
            target.client_id = row.client_id
            target.id_token_alg = row.id_token_alg
            if row.kid is None or row.sealed is None or row.scheme is None:
                continue
            signer = self._signers.get(row.kid)
            if signer is None:
                try:
                    secret = self.box.decrypt(row.sealed, webhook_keys.box_context(row.kid))
                    signer = signing.Signer.create(row.kid, row.scheme, secret)
                except DecryptionError as exc:
                    target.error = f"signing key {row.kid} does not decrypt: {exc}"
                    log.error("webhooks.key_does_not_decrypt", kid=row.kid)
                    continue
                self._signers[row.kid] = signer
            target.keys.append((signer, row.expires_at))
        return targets
