"""The dispatcher's store in memory: the ``store.Store`` protocol without a database.

For tests of the claim loop (``dispatcher.loop``), as procrastinate tests its worker on
its in-memory connector: the rules the SQL statements implement, written over Python
objects. A claim takes what ``outbox_queries.is_claimable`` allows (the read model's
one definition), oldest due first, at most each application's free slots, and leases
it; a result applies only while the lease token and the key epoch are still the ones
claimed; a release gives an entry back only to the holder of its lease. Time is the
``now`` each call is given, so a test moves a ``FrozenClock`` to end a lease. Every call
suspends (for ``latency`` seconds, 0 by default), as a statement does: attempts finish
while the loop awaits its claim, and a loop that claimed without waiting would show as
a count of claims, not as a hung event loop.

tests/functional/webhooks/test_outbox_queries.py runs its claim, the SQL ones and the
read model's conditions over the same rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onepass.webhooks.outbox_queries import is_claimable
from onepass.webhooks.store import (
    ATTEMPT_COLUMNS,
    RESTAMPED_ERROR,
    AttemptRows,
    Claimed,
    ClaimSlots,
    EntryUpdate,
    KeyRow,
    Recorded,
)


@dataclass
class MemoryEntry:
    """A ``webhook_outbox_entries`` row (the columns the dispatcher reads and writes)."""

    id: int
    app_id: int
    event_type: str
    payload: Any
    idempotency_key: str
    created_at: datetime
    due_at: datetime
    attempts: int = 0
    next_retry_at: datetime | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    delivered_at: datetime | None = None
    dlq_at: datetime | None = None
    leased_by: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    key_epoch: int = 0


@dataclass
class MemoryKey:
    """A ``webhook_signing_keys`` row: ``sealed`` is the secret as ``SecretBox`` seals it."""

    kid: str
    scheme: str
    sealed: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass
class MemoryApp:
    id: int
    url: str | None
    keys: list[MemoryKey] = field(default_factory=list)


class MemoryStore:
    """Entries, applications and the attempt log as dicts and lists."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self.entries: dict[int, MemoryEntry] = {}
        self.apps: dict[int, MemoryApp] = {}
        # Applications disabled (``clients disable``): a claim skips their entries.
        self.disabled_apps: set[int] = set()
        self.attempts: list[dict[str, Any]] = []  # the attempt log, by ATTEMPT_COLUMNS
        self.claims = 0  # claim statements run
        self.closed = False
        self._next_id = 1

    # -- what the outbox and the registry would hold -----------------------------------

    def add_app(self, app_id: int, url: str | None, keys: Sequence[MemoryKey] = ()) -> MemoryApp:
        app = self.apps[app_id] = MemoryApp(app_id, url, list(keys))
        return app

    def enqueue(
        self,
        app_id: int,
        now: datetime,
        *,
        key: str | None = None,
        event_type: str = "test.ping",
        payload: Any = None,
    ) -> MemoryEntry:
        """A new entry, due at ``now`` (what ``outbox.enqueue`` writes)."""
        entry_id = self._next_id
        self._next_id += 1
        entry = MemoryEntry(
            id=entry_id,
            app_id=app_id,
            event_type=event_type,
            payload={} if payload is None else payload,
            idempotency_key=key or f"entry-{entry_id}",
            created_at=now,
            due_at=now,
        )
        self.entries[entry_id] = entry
        return entry

    def add(self, entry: MemoryEntry) -> MemoryEntry:
        """An entry in any state (ids given by the caller)."""
        self.entries[entry.id] = entry
        self._next_id = max(self._next_id, entry.id + 1)
        return entry

    # -- store.Store ---------------------------------------------------------------------

    async def claim(
        self, slots: ClaimSlots, *, now: datetime, until: datetime, name: str, token: str
    ) -> list[Claimed]:
        # As CLAIM_SQL: the oldest ``limit`` claimable entries outside the full
        # applications and the disabled ones, then no more of each application than its
        # free slots.
        self.claims += 1
        await asyncio.sleep(self.latency)
        full = set(slots.full_apps) | self.disabled_apps
        due = sorted(
            (e for e in self.entries.values() if e.app_id not in full and is_claimable(e, now)),
            key=lambda e: (e.due_at, e.id),
        )[: slots.limit]
        taken: dict[int, int] = {}
        claimed = []
        for entry in due:
            if taken.get(entry.app_id, 0) >= slots.busy.get(entry.app_id, slots.app_cap):
                continue
            taken[entry.app_id] = taken.get(entry.app_id, 0) + 1
            entry.leased_by, entry.lease_token, entry.lease_expires_at = name, token, until
            claimed.append(
                Claimed(
                    entry.id,
                    entry.app_id,
                    entry.event_type,
                    entry.payload,
                    entry.idempotency_key,
                    entry.created_at,
                    entry.attempts,
                    entry.key_epoch,
                    token,
                )
            )
        return claimed

    async def keys(self, app_ids: Sequence[int], now: datetime) -> list[KeyRow]:
        await asyncio.sleep(self.latency)
        rows = []
        for app_id in sorted(app_ids):
            app = self.apps.get(app_id)
            if app is None:
                continue
            valid = [
                k
                for k in app.keys
                if k.revoked_at is None and (k.expires_at is None or k.expires_at > now)
            ]
            # Newest first (``created_at DESC``; the later added first on a tie).
            ordered = sorted(enumerate(valid), key=lambda p: (p[1].created_at, p[0]), reverse=True)
            if not ordered:
                rows.append(KeyRow(app_id, app.url, None, None, None, None))
            for _, k in ordered:
                rows.append(KeyRow(app_id, app.url, k.kid, k.scheme, k.sealed, k.expires_at))
        return rows

    async def release(
        self, claims: Sequence[Claimed], *, due: datetime, error: str | None
    ) -> list[int]:
        await asyncio.sleep(self.latency)
        released = []
        for claim in claims:
            entry = self.entries.get(claim.id)
            if entry is None or entry.lease_token != claim.lease_token:
                continue
            entry.due_at = due
            entry.leased_by = entry.lease_token = entry.lease_expires_at = None
            if error is not None:
                entry.last_error = error
            released.append(entry.id)
        return released

    async def record(
        self, updates: Sequence[EntryUpdate], attempt_rows: AttemptRows, now: datetime
    ) -> Recorded:
        await asyncio.sleep(self.latency)
        applied: set[int] = set()
        restamped: set[int] = set()
        gone: set[int] = set()
        for u in updates:
            entry = self.entries.get(u.id)
            if entry is None:
                gone.add(u.id)
            elif (entry.lease_token, entry.key_epoch) == (u.token, u.epoch):
                applied.add(u.id)
                entry.attempts += 1
                entry.delivered_at = u.delivered_at
                entry.dlq_at = u.dlq_at
                entry.next_retry_at = u.next_retry_at
                entry.due_at = u.next_retry_at or entry.due_at
                entry.last_status_code = u.status_code
                entry.last_error = u.last_error
                entry.leased_by = entry.lease_token = entry.lease_expires_at = None
            elif entry.lease_token == u.token:
                # Still this claim's, but a key compromise raised the epoch meanwhile.
                restamped.add(u.id)
                entry.due_at = now
                entry.leased_by = entry.lease_token = entry.lease_expires_at = None
                entry.last_error = RESTAMPED_ERROR
        recorded = Recorded(applied, restamped, gone)
        self.attempts.extend(
            dict(zip(ATTEMPT_COLUMNS, row, strict=True)) for row in attempt_rows(recorded)
        )
        return recorded

    async def close(self) -> None:
        self.closed = True
