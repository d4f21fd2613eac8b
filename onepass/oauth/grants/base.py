from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from onepass.cache import Cache
from onepass.clients.registry import ClientRecord
from onepass.clients.resources import ResourceCache
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.db import Database
from onepass.db.direct import DirectStore
from onepass.identity.canonical import CanonicalResolver
from onepass.keys.keyring import KeyRing
from onepass.settings import Settings


@dataclass
class TokenContext:
    """What every grant may use; built once per process."""

    settings: Settings
    keyring: KeyRing
    clock: Clock
    database: Database
    hasher: KeyedHasher
    # The grants' statements, straight to the driver (onepass.db.direct).
    direct: DirectStore
    resolver: CanonicalResolver | None = None
    # Resource servers (RFC 8707), asked only by a request or grant that names one.
    resources: ResourceCache | None = None
    # RFC 8628 §3.5: the device_code grant's slow_down intervals (Redis when set).
    cache: Cache | None = None


class Grant(Protocol):
    grant_type: str

    async def create_token_response(
        self,
        ctx: TokenContext,
        client: ClientRecord,
        form: dict[str, str],
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        """Validate the request for this grant and return the token response body;
        ``jkt``: the thumbprint of the key of the request's DPoP proof (RFC 9449), which
        what is issued is bound to."""
        ...
