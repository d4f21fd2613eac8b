"""The JWK sets of clients registered with a ``jwks_uri`` (``private_key_jwt``), fetched
by 1pass: with the webhook dispatcher's guard against SSRF (the URL's rules and the
connector that connects only to allowed addresses, ``webhooks.safety`` and
``webhooks.resolver``; ``ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS`` lifts it in
development), at most 64 KB, within 5 seconds, kept 5 minutes per process. An
assertion naming a ``kid`` the kept set lacks fetches it again, at most once a minute
per client (a client rotating its keys is seen at once; a flood of made-up kids costs
one fetch a minute). A failed fetch keeps the last good set."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import orjson
import structlog
from joserfc.jwk import KeySet

from onepass.clients.registry import PRIVATE_MEMBERS, ClientRecord
from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.resolver import connector
from onepass.webhooks.safety import check_url

log = structlog.get_logger("onepass.oauth.client_keys")

MAX_BYTES = 64 * 1024
TIMEOUT = 5.0
TTL = 300.0
MIN_REFETCH = 60.0


@dataclass
class _Kept:
    keys: KeySet | None
    fetched_at: float
    uri: str
    refreshed_at: float = float("-inf")  # the last fetch an unknown kid asked for


class FetchedKeys:
    """``clients.assertions.KeySource`` for ``jwks_uri`` clients."""

    def __init__(self, *, production: bool, allow_private: bool) -> None:
        self._production = production
        self._allow_private = allow_private
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_set(self, client: ClientRecord, *, refresh: bool) -> KeySet | None:
        uri = client.jwks_uri
        if uri is None:
            return None
        now = time.monotonic()
        kept = self._kept.get(client.client_id)
        if kept is not None and kept.uri == uri:
            age = now - kept.fetched_at
            if age < TTL and not refresh:
                return kept.keys
            if refresh and now - kept.refreshed_at < MIN_REFETCH:
                return kept.keys
        lock = self._locks.setdefault(client.client_id, asyncio.Lock())
        async with lock:
            kept = self._kept.get(client.client_id)
            if kept is not None and kept.uri == uri and time.monotonic() - kept.fetched_at < 1:
                if not refresh or time.monotonic() - kept.refreshed_at < 1:
                    return kept.keys  # fetched by the request this one waited for
            keys = await self._fetch(client.client_id, uri)
            if keys is None and kept is not None and kept.uri == uri:
                keys = kept.keys  # keep the last good set
            now = time.monotonic()
            refreshed = now if refresh else (kept.refreshed_at if kept else float("-inf"))
            self._kept[client.client_id] = _Kept(keys, now, uri, refreshed)
            return keys

    async def _fetch(self, client_id: str, uri: str) -> KeySet | None:
        try:
            target = check_url(uri, production=self._production, allow_private=self._allow_private)
            async with (
                aiohttp.ClientSession(
                    connector=connector(limit=2, allow_private=self._allow_private),
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                ) as session,
                session.get(
                    target, allow_redirects=False, headers={"accept": "application/json"}
                ) as response,
            ):
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                body = await response.content.read(MAX_BYTES + 1)
                if len(body) > MAX_BYTES:
                    raise ValueError("larger than 64 KB")
            data = orjson.loads(body)
            keys = data.get("keys") if isinstance(data, dict) else None
            if not isinstance(keys, list) or not keys:
                raise ValueError("not a JWK set")
            public = [
                k for k in keys if isinstance(k, dict) and not any(m in k for m in PRIVATE_MEMBERS)
            ]
            return KeySet.import_key_set({"keys": public})
        except (TimeoutError, UnsafeWebhookTarget, aiohttp.ClientError, OSError) as exc:
            log.warning("clients.jwks_fetch_failed", client_id=client_id, error=str(exc)[:200])
        except Exception as exc:  # a malformed set: joserfc and orjson raise several kinds
            log.warning("clients.jwks_fetch_failed", client_id=client_id, error=type(exc).__name__)
        return None
