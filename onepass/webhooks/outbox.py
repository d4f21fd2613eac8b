"""The transactional outbox: webhooks are written in the transaction of the change behind them.

``enqueue(session, app, event_type, payload, idempotency_key)`` adds a row to
``webhook_outbox_entries`` in the caller's transaction: if the change rolls back, so
does the webhook, and if it commits, a dispatcher will deliver it (at least once).
On PostgreSQL the same transaction sends a NOTIFY, delivered at commit only, which
wakes the dispatchers at once; they also poll, so nothing depends on it.

Also here: the operator's views and repairs of the outbox (``webhooks list``,
``retry``, ``replay-dlq``). What pending, delivered and dead mean, and the counts
(backlog, dead per application): ``outbox_queries``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.clock import Clock, SystemClock
from onepass.webhooks.errors import (
    DuplicateIdempotencyKey,
    EntryNotFound,
    PayloadTooLarge,
    WebhookError,
)
from onepass.webhooks.events import ALWAYS_DELIVERED, EventType, parse_event_type
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry
from onepass.webhooks.outbox_queries import STATUSES as STATUSES  # the console's ?status=
from onepass.webhooks.outbox_queries import Status, condition

# NOTIFY channel: a new (or requeued) entry is due.
OUTBOX_CHANNEL = "onepass_webhooks"

# For transactions that read before they enqueue (``Database.session(exclusive=…)``):
# on SQLite a transaction that reads, then writes after another connection (a
# dispatcher) has written, fails at once ("database is locked"); taking the write
# lock at BEGIN avoids that. On PostgreSQL it is an advisory lock of its own.
OUTBOX_LOCK = "webhooks:outbox"

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
# Sent as the webhook-id header and signed; printable, no spaces.
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:~+/=@-]{1,200}")

_table = cast(Table, WebhookOutboxEntry.__table__)
_attempts = cast(Table, WebhookDeliveryAttempt.__table__)
_NOTIFIED = "onepass.webhooks.notified"
_INSERT_CHUNK = 10000


def is_idempotency_key(key: object) -> bool:
    """The whole value (``$`` would let a final newline into the webhook-id header)."""
    return isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key) is not None


@dataclass(frozen=True)
class Event:
    """One webhook to enqueue: its type, its ``data``, and its idempotency key."""

    event_type: str
    payload: dict[str, Any]
    idempotency_key: str


def dialect_of(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None, "the session is bound to the database"
    return bind.dialect.name


def timestamp_text(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def envelope(event_type: str, created_at: datetime, payload: Any) -> bytes:
    """The exact body sent: ``{"type", "timestamp", "data"}`` (Standard Webhooks payload)."""
    return orjson.dumps(
        {"type": event_type, "timestamp": timestamp_text(created_at), "data": payload}
    )


def subscribed(app: OAuthApplication, event_type: EventType) -> bool:
    """An application with a webhook URL gets an event it subscribed to (no list: every
    event), and always ``test.ping`` and ``webhook_key.compromised``. A back-channel
    logout goes to an application with a ``backchannel_logout_uri``, webhook URL or not."""
    if event_type is EventType.OIDC_BACKCHANNEL_LOGOUT:
        return bool(app.backchannel_logout_uri)
    if event_type is EventType.SSF_SET:
        return True  # its stream asked for it (``oauth.ssf`` enqueues only then)
    if not app.webhook_url:
        return False
    if event_type in ALWAYS_DELIVERED or not app.webhook_events:
        return True
    return event_type.value in app.webhook_events


async def enqueue(
    session: AsyncSession,
    app: OAuthApplication,
    event_type: str,
    payload: dict[str, Any],
    idempotency_key: str,
    *,
    clock: Clock | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> int | None:
    """Add one webhook for ``app`` to the caller's transaction; return the entry's id.

    Returns None when the application has no webhook URL or did not subscribe to the
    event. Raises ``PayloadTooLarge`` over ``max_payload_bytes`` (the body as sent),
    ``DuplicateIdempotencyKey`` when the application already has this key (the
    transaction stays usable), ``WebhookError`` for an unknown type or a bad key.
    """
    ids = await enqueue_many(
        session,
        app,
        [Event(event_type, payload, idempotency_key)],
        clock=clock,
        max_payload_bytes=max_payload_bytes,
    )
    return ids[0] if ids else None


async def enqueue_many(
    session: AsyncSession,
    app: OAuthApplication,
    events: Sequence[Event],
    *,
    clock: Clock | None = None,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    skip_duplicates: bool = False,
) -> list[int]:
    """``enqueue`` for many events of one application, in few statements.

    Returns the ids of the entries written, in order. With ``skip_duplicates`` an
    idempotency key the application already has is skipped instead of refused.
    """
    now = (clock or SystemClock()).now()
    rows = []
    seen: set[str] = set()
    for event in events:
        event_type = parse_event_type(event.event_type)
        if not subscribed(app, event_type):
            continue
        key = event.idempotency_key
        if not is_idempotency_key(key):
            raise WebhookError(
                f"idempotency key {str(key)[:60]!r} must be 1 to 200 characters among "
                "letters, digits and . _ : ~ + / = @ -"
            )
        if key in seen:
            if skip_duplicates:
                continue
            raise DuplicateIdempotencyKey(f"idempotency key {key!r} appears twice in one call")
        seen.add(key)
        try:
            size = len(envelope(event_type.value, now, event.payload))
        except TypeError as exc:
            raise WebhookError(f"webhook payload is not JSON-serializable: {exc}") from None
        if size > max_payload_bytes:
            raise PayloadTooLarge(
                f"webhook payload for {event_type.value} is {size:,} bytes once wrapped; "
                f"the limit is {max_payload_bytes:,} (ONEPASS_WEBHOOK_MAX_PAYLOAD_BYTES)"
            )
        rows.append(
            {
                "oauth_application_id": app.id,
                "event_type": event_type.value,
                "payload": event.payload,
                "idempotency_key": key,
                "created_at": now,
                "enqueued_at": now,
                "attempts": 0,
                "due_at": now,
                "key_epoch": 0,
            }
        )
    if not rows:
        return []
    if dialect_of(session) == "postgresql":
        ids = await _insert_pg(session, app, rows, skip_duplicates=skip_duplicates)
        if ids:
            await notify(session, OUTBOX_CHANNEL)
        return ids
    insert = pg_insert if dialect_of(session) == "postgresql" else sqlite_insert
    # One constant statement, its rows as executemany parameters: SQLAlchemy sends them
    # in multi-row batches ("insertmanyvalues") and compiles the statement once.
    statement = (
        insert(_table)
        .on_conflict_do_nothing(index_elements=["oauth_application_id", "idempotency_key"])
        .returning(_table.c.id, _table.c.idempotency_key)
    )
    ids = []
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        result = await session.execute(statement, chunk)
        written = {key: id_ for id_, key in result.all()}
        if len(written) != len(chunk) and not skip_duplicates:
            taken = next(r["idempotency_key"] for r in chunk if r["idempotency_key"] not in written)
            raise DuplicateIdempotencyKey(
                f"application {app.client_id} already has a webhook with idempotency key {taken!r}"
            )
        ids.extend(written[r["idempotency_key"]] for r in chunk if r["idempotency_key"] in written)
    if ids:
        await notify(session, OUTBOX_CHANNEL)
    return ids


_PG_INSERT = """
INSERT INTO webhook_outbox_entries
    (oauth_application_id, event_type, payload, idempotency_key,
     created_at, enqueued_at, attempts, due_at, key_epoch)
SELECT $1::bigint, u.event_type, u.payload::jsonb, u.idempotency_key, $5, $5, 0, $5, 0
FROM unnest($2::text[], $3::text[], $4::text[]) AS u(event_type, payload, idempotency_key)
ON CONFLICT (oauth_application_id, idempotency_key) DO NOTHING
RETURNING id, idempotency_key
"""


async def _insert_pg(
    session: AsyncSession,
    app: OAuthApplication,
    rows: list[dict[str, Any]],
    *,
    skip_duplicates: bool,
) -> list[int]:
    """PostgreSQL: every row in one ``INSERT … SELECT FROM unnest(…)``, on the session's
    own connection and transaction. Sending three arrays instead of nine parameters a
    row is what lets a backfill enqueue tens of thousands of entries a second."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # a live connection's asyncpg connection
    records = await raw.fetch(
        _PG_INSERT,
        app.id,
        [r["event_type"] for r in rows],
        [orjson.dumps(r["payload"]).decode() for r in rows],
        [r["idempotency_key"] for r in rows],
        rows[0]["created_at"],
    )
    written = {record["idempotency_key"]: record["id"] for record in records}
    if len(written) != len(rows) and not skip_duplicates:
        taken = next(r["idempotency_key"] for r in rows if r["idempotency_key"] not in written)
        raise DuplicateIdempotencyKey(
            f"application {app.client_id} already has a webhook with idempotency key {taken!r}"
        )
    return [written[r["idempotency_key"]] for r in rows if r["idempotency_key"] in written]


async def notify(session: AsyncSession, channel: str, payload: str = "") -> None:
    """PostgreSQL NOTIFY in the session's transaction (sent at commit, once per transaction)."""
    if dialect_of(session) != "postgresql":
        return
    marker = (channel, payload, session.get_transaction())
    sent = session.info.setdefault(_NOTIFIED, set())
    if marker in sent:
        return
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )
    sent.add(marker)


async def list_entries(
    session: AsyncSession,
    *,
    status: str | None = None,
    app_id: int | None = None,
    limit: int | None = 1000,
    after_id: int | None = None,
    newest_first: bool = False,
    event_type: str | None = None,
) -> list[WebhookOutboxEntry]:
    """Entries, oldest (or newest) first, filtered by status (pending, delivered, dead),
    application and event type (``UnknownEventType`` for one 1pass does not send);
    ``after_id`` pages on (the entries listed after that one)."""
    table = WebhookOutboxEntry
    query = select(table).order_by(table.id.desc() if newest_first else table.id)
    if after_id is not None:
        query = query.where(table.id < after_id if newest_first else table.id > after_id)
    if status is not None:
        query = query.where(condition(status))
    if app_id is not None:
        query = query.where(WebhookOutboxEntry.oauth_application_id == app_id)
    if event_type is not None:
        query = query.where(table.event_type == parse_event_type(event_type).value)
    if limit:
        query = query.limit(limit)
    return list(await session.scalars(query))


async def get_entry(session: AsyncSession, entry_id: int) -> WebhookOutboxEntry:
    entry = await session.get(WebhookOutboxEntry, entry_id)
    if entry is None:
        raise EntryNotFound(f"no webhook outbox entry with id {entry_id}")
    return entry


async def list_attempts(session: AsyncSession, entry_id: int) -> list[WebhookDeliveryAttempt]:
    return list(
        await session.scalars(
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.outbox_entry_id == entry_id)
            .order_by(WebhookDeliveryAttempt.id)
        )
    )


def _requeue_values(now: datetime) -> dict[str, Any]:
    # The playbook's retry: dlq_at, next_retry_at, attempts and last_error cleared,
    # enqueued_at = now; the next dispatcher pass picks it up.
    return {
        "dlq_at": None,
        "next_retry_at": None,
        "attempts": 0,
        "last_error": None,
        "enqueued_at": now,
        "due_at": now,
        "leased_by": None,
        "lease_token": None,
        "lease_expires_at": None,
    }


async def retry_entry(session: AsyncSession, clock: Clock, entry_id: int) -> WebhookOutboxEntry:
    """Send one dead (or pending) entry again from the start of the schedule."""
    entry = await get_entry(session, entry_id)
    now = clock.now()
    if entry.delivered_at is not None:
        raise WebhookError(
            f"webhook outbox entry {entry_id} was delivered at {timestamp_text(entry.delivered_at)}; "
            "there is nothing to retry"
        )
    if entry.dlq_at is None and entry.lease_expires_at is not None and entry.lease_expires_at > now:
        raise WebhookError(
            f"webhook outbox entry {entry_id} is being delivered right now (leased by "
            f"{entry.leased_by}); look again in a few seconds"
        )
    await session.execute(
        update(_table).where(_table.c.id == entry_id).values(**_requeue_values(now))
    )
    await notify(session, OUTBOX_CHANNEL)
    await session.refresh(entry)
    return entry


async def replay_dead(
    session: AsyncSession,
    clock: Clock,
    app_id: int,
    *,
    since: datetime | None = None,
    event_type: str | None = None,
    dry_run: bool = False,
) -> list[int]:
    """Requeue every dead entry of an application (dead since ``since``, of ``event_type``).

    Returns the ids requeued (or, with ``dry_run``, that would be).
    """
    table = WebhookOutboxEntry
    conditions = [table.oauth_application_id == app_id, condition(Status.DEAD)]
    if since is not None:
        conditions.append(table.dlq_at >= since)
    if event_type is not None:
        conditions.append(table.event_type == parse_event_type(event_type).value)
    if dry_run:
        return list(await session.scalars(select(table.id).where(*conditions).order_by(table.id)))
    result = await session.execute(
        update(_table)
        .where(*(c for c in conditions))
        .values(**_requeue_values(clock.now()))
        .returning(_table.c.id)
    )
    ids = sorted(result.scalars().all())
    if ids:
        await notify(session, OUTBOX_CHANNEL)
    return ids


def describe_entry(entry: WebhookOutboxEntry) -> dict[str, Any]:
    """Every column (``webhooks list --json``, the admin API)."""
    return {column.name: getattr(entry, column.name) for column in _table.c}


def describe_attempt(attempt: WebhookDeliveryAttempt) -> dict[str, Any]:
    """Every column of a delivery attempt (``webhooks show --json``, the admin API)."""
    return {column.name: getattr(attempt, column.name) for column in _attempts.c}
