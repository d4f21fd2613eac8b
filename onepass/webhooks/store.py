"""The dispatcher's statements: claim, read keys, release, record. One class per engine.

``PostgresStore`` runs them on asyncpg connections of its own, as raw SQL: the claim
and the batched result are single statements whose rows are handled without an ORM
layer; measured (bench/webhook_dispatch.py), SQLAlchemy's result processing tripled
the claim's time and kept the dispatcher far from its throughput target. The tables
are the models' (``webhooks.models``); nothing here defines schema.

``SqlStore`` runs the same operations through SQLAlchemy; it serves SQLite, where one
dispatcher runs at a time.

The claim, in both::

    UPDATE webhook_outbox_entries SET leased_by, lease_token, lease_expires_at = now + lease
    WHERE id IN (the oldest due entries whose lease, if any, has ended, FOR UPDATE SKIP
                 LOCKED, at most each application's free slots)
    RETURNING …

Results are applied only where the lease token and the key epoch are still the ones
claimed (a lost lease or a key compromise in between: the outcome does not count).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import asyncpg
import orjson
from sqlalchemy import Table, bindparam, case, func, literal, select, update
from sqlalchemy.engine import make_url

from onepass.clients.models import OAuthApplication
from onepass.db import Database
from onepass.webhooks.models import (
    WebhookDeliveryAttempt,
    WebhookOutboxEntry,
    WebhookSigningKey,
)
from onepass.webhooks.outbox_queries import claimable, not_held

_entries = cast(Table, WebhookOutboxEntry.__table__)
_attempts = cast(Table, WebhookDeliveryAttempt.__table__)

RESTAMPED_ERROR = (
    "a signing key was revoked while this attempt was in flight; "
    "sending again, signed only with valid keys"
)


@dataclass(slots=True)
class Claimed:
    """An entry this dispatcher holds the lease of."""

    id: int
    app_id: int
    event_type: str
    payload: Any
    idempotency_key: str
    created_at: datetime
    attempts: int
    key_epoch: int
    lease_token: str


@dataclass(slots=True)
class KeyRow:
    """An application's URL and one of its valid keys (kid None: it has none), and what
    its back-channel logouts need: where they go, its client_id (the logout token's
    ``aud``) and the algorithm its ID tokens are signed with."""

    app_id: int
    url: str | None
    kid: str | None
    scheme: str | None
    sealed: str | None
    expires_at: datetime | None
    logout_uri: str | None = None
    client_id: str | None = None
    id_token_alg: str | None = None


@dataclass(slots=True)
class EntryUpdate:
    """What one attempt did to its entry."""

    id: int
    token: str
    epoch: int
    delivered_at: datetime | None
    dlq_at: datetime | None
    next_retry_at: datetime | None
    status_code: int | None
    last_error: str | None


@dataclass(frozen=True)
class Recorded:
    applied: set[int]  # outcome counted
    restamped: set[int]  # not counted: a key was revoked meanwhile; due again now
    gone: set[int]  # the entry no longer exists (its application was deleted)


ATTEMPT_COLUMNS = (
    "outbox_entry_id",
    "oauth_application_id",
    "attempt",
    "started_at",
    "duration_ms",
    "status_code",
    "error_class",
    "error",
    "response_body",
    "signed_kids",
    "outcome",
    "dispatcher",
)
_KIDS = ATTEMPT_COLUMNS.index("signed_kids")

# Builds the attempt rows (tuples in ATTEMPT_COLUMNS order) once it is known which
# outcomes were applied.
AttemptRows = Callable[[Recorded], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class ClaimSlots:
    """How much a claim may take: ``limit`` in all, nothing of ``full_apps``, at most
    ``busy[app]`` of a busy application, ``app_cap`` of any other."""

    limit: int
    full_apps: list[int]
    busy: dict[int, int]
    app_cap: int

    @classmethod
    def of(cls, limit: int, in_flight: Mapping[int, int], app_cap: int) -> ClaimSlots:
        full = sorted(a for a, n in in_flight.items() if n >= app_cap)
        busy = {a: app_cap - n for a, n in in_flight.items() if 0 < n < app_cap}
        return cls(limit, full, busy, app_cap)


class Store(Protocol):
    async def claim(
        self, slots: ClaimSlots, *, now: datetime, until: datetime, name: str, token: str
    ) -> list[Claimed]: ...

    async def keys(self, app_ids: Sequence[int], now: datetime) -> list[KeyRow]: ...

    async def release(
        self, claims: Sequence[Claimed], *, due: datetime, error: str | None
    ) -> list[int]: ...

    async def record(
        self, updates: Sequence[EntryUpdate], attempt_rows: AttemptRows, now: datetime
    ) -> Recorded: ...

    async def close(self) -> None: ...


def create_store(database: Database) -> Store:
    if database.dialect == "postgresql":
        return PostgresStore(database.url)
    return SqlStore(database)


def _by_token(claims: Sequence[Claimed]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for claim in claims:
        grouped.setdefault(claim.lease_token, []).append(claim.id)
    return grouped


# --------------------------------------------------------------------------- PostgreSQL

CLAIM_SQL = """
UPDATE webhook_outbox_entries
SET leased_by = $1, lease_token = $2, lease_expires_at = $3
WHERE id = ANY(ARRAY(
    SELECT id FROM (
        SELECT id, oauth_application_id,
               row_number() OVER (PARTITION BY oauth_application_id ORDER BY due_at, id) AS rank
        FROM (
            SELECT id, oauth_application_id, due_at FROM webhook_outbox_entries
            WHERE delivered_at IS NULL AND dlq_at IS NULL AND due_at <= $4
              AND (lease_expires_at IS NULL OR lease_expires_at <= $4)
              AND oauth_application_id <> ALL($6::bigint[])
              AND oauth_application_id <> ALL(ARRAY(
                  SELECT a.id FROM oauth_applications AS a WHERE a.disabled_at IS NOT NULL))
            ORDER BY due_at
            LIMIT $5
            FOR UPDATE SKIP LOCKED
        ) AS due
    ) AS ranked
    WHERE rank <= COALESCE(
        (SELECT slots.free
         FROM unnest($7::bigint[], $8::integer[]) AS slots(app, free)
         WHERE slots.app = ranked.oauth_application_id),
        $9)
))
RETURNING id, oauth_application_id, event_type, payload, idempotency_key, created_at,
          attempts, key_epoch
"""
"""The claim, on PostgreSQL. Its innermost WHERE mirrors ``outbox_queries.claimable($4)``
(the pending state of ``outbox_queries.STATES``, due, not leased) and skips the entries
of disabled applications (``clients disable``: they stay pending), spelled in raw SQL
for speed. The disabled applications are read once, into an array (by their partial
index), and filtered row by row: an anti-join would let PostgreSQL sort every due entry
before the LIMIT instead of reading them in ``due_at`` order from the due index; tests/functional/webhooks/test_outbox_queries.py runs both over the same
rows. The ids are gathered into an array first, so the UPDATE finds its rows by primary
key whatever the table's size (``WHERE id IN (SELECT …)`` can be planned as a hash join
over a sequential scan of the whole table). It changes
no indexed column, so PostgreSQL can update the rows in place (HOT, with the table's
fillfactor leaving room): entries in flight stay in the due index, skipped by the
lease condition until their lease ends."""

_KEYS_SQL = """
SELECT a.id, a.webhook_url, k.kid, k.scheme, k.secret_encrypted, k.expires_at,
       a.backchannel_logout_uri, a.client_id, a.id_token_signed_response_alg
FROM oauth_applications AS a
LEFT JOIN webhook_signing_keys AS k
  ON k.oauth_application_id = a.id AND k.revoked_at IS NULL
 AND (k.expires_at IS NULL OR k.expires_at > $2)
WHERE a.id = ANY($1::bigint[])
ORDER BY a.id, k.created_at DESC, k.id DESC
"""

_RELEASE_SQL = """
UPDATE webhook_outbox_entries
SET due_at = $3, leased_by = NULL, lease_token = NULL, lease_expires_at = NULL,
    last_error = COALESCE($4, last_error)
WHERE id = ANY($1::bigint[]) AND lease_token = $2
RETURNING id
"""

_RECORD_SQL = """
UPDATE webhook_outbox_entries AS e SET
    attempts = e.attempts + 1,
    delivered_at = v.delivered_at,
    dlq_at = v.dlq_at,
    next_retry_at = v.next_retry_at,
    due_at = COALESCE(v.next_retry_at, e.due_at),
    last_status_code = v.status_code,
    last_error = v.last_error,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[],
            $6::timestamptz[], $7::integer[], $8::text[])
     AS v(id, token, epoch, delivered_at, dlq_at, next_retry_at, status_code, last_error)
WHERE e.id = v.id AND e.lease_token = v.token AND e.key_epoch = v.epoch
RETURNING e.id
"""

_RESTAMP_SQL = """
UPDATE webhook_outbox_entries AS e
SET due_at = $3, leased_by = NULL, lease_token = NULL, lease_expires_at = NULL, last_error = $4
FROM unnest($1::bigint[], $2::text[]) AS v(id, token)
WHERE e.id = v.id AND e.lease_token = v.token
RETURNING e.id
"""

_INSERT_ATTEMPTS_SQL = """
INSERT INTO webhook_delivery_attempts (outbox_entry_id, oauth_application_id, attempt,
    started_at, duration_ms, status_code, error_class, error, response_body, signed_kids,
    outcome, dispatcher)
SELECT outbox_entry_id, oauth_application_id, attempt, started_at, duration_ms, status_code,
       error_class, error, response_body, signed_kids::jsonb, outcome, dispatcher
FROM unnest($1::bigint[], $2::bigint[], $3::integer[], $4::timestamptz[], $5::integer[],
            $6::integer[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::text[])
     AS v(outbox_entry_id, oauth_application_id, attempt, started_at, duration_ms,
          status_code, error_class, error, response_body, signed_kids, outcome, dispatcher)
"""


def claim_args(
    slots: ClaimSlots, *, now: datetime, until: datetime, name: str, token: str
) -> list[Any]:
    """The parameters of ``CLAIM_SQL``, in order."""
    return [
        name,
        token,
        until,
        now,
        slots.limit,
        slots.full_apps,
        list(slots.busy),
        list(slots.busy.values()),
        slots.app_cap,
    ]


class PostgresStore:
    """Two asyncpg connections of its own: one for the claim loop (autocommit single
    statements), one for recording results (transactions). A connection that fails,
    or whose statement was cancelled, is dropped and opened again on next use."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._connect_args = {
            "host": parsed.host,
            "port": parsed.port or 5432,
            "user": parsed.username,
            "password": parsed.password,
            "database": parsed.database,
            "timeout": 10,
            "command_timeout": 30,
            # Plan each claim for its parameters and the table as it is now: a generic
            # plan cached while the table was small (a sequential scan) would stay in
            # use as it grows.
            "server_settings": {"plan_cache_mode": "force_custom_plan"},
        }
        self._loop_connection: asyncpg.Connection | None = None
        self._record_connection: asyncpg.Connection | None = None

    @contextlib.asynccontextmanager
    async def _connection(self, which: str) -> Any:
        connection = getattr(self, which)
        if connection is None or connection.is_closed():
            connection = await asyncpg.connect(**self._connect_args)
            setattr(self, which, connection)
        try:
            yield connection
        except BaseException:
            setattr(self, which, None)
            with contextlib.suppress(Exception):
                connection.terminate()
            raise

    async def claim(
        self, slots: ClaimSlots, *, now: datetime, until: datetime, name: str, token: str
    ) -> list[Claimed]:
        args = claim_args(slots, now=now, until=until, name=name, token=token)
        async with self._connection("_loop_connection") as connection:
            rows = await connection.fetch(CLAIM_SQL, *args)
        loads = orjson.loads
        return [Claimed(r[0], r[1], r[2], loads(r[3]), r[4], r[5], r[6], r[7], token) for r in rows]

    async def keys(self, app_ids: Sequence[int], now: datetime) -> list[KeyRow]:
        async with self._connection("_loop_connection") as connection:
            rows = await connection.fetch(_KEYS_SQL, list(app_ids), now)
        return [KeyRow(*row) for row in rows]

    async def release(
        self, claims: Sequence[Claimed], *, due: datetime, error: str | None
    ) -> list[int]:
        released: list[int] = []
        async with self._connection("_loop_connection") as connection:
            for token, ids in _by_token(claims).items():
                rows = await connection.fetch(_RELEASE_SQL, ids, token, due, error)
                released.extend(r[0] for r in rows)
        return released

    async def record(
        self, updates: Sequence[EntryUpdate], attempt_rows: AttemptRows, now: datetime
    ) -> Recorded:
        async with (
            self._connection("_record_connection") as connection,
            connection.transaction(),
        ):
            rows = await connection.fetch(
                _RECORD_SQL,
                [u.id for u in updates],
                [u.token for u in updates],
                [u.epoch for u in updates],
                [u.delivered_at for u in updates],
                [u.dlq_at for u in updates],
                [u.next_retry_at for u in updates],
                [u.status_code for u in updates],
                [u.last_error for u in updates],
            )
            applied = {r[0] for r in rows}
            restamped: set[int] = set()
            gone: set[int] = set()
            unapplied = [u for u in updates if u.id not in applied]
            if unapplied:
                rows = await connection.fetch(
                    _RESTAMP_SQL,
                    [u.id for u in unapplied],
                    [u.token for u in unapplied],
                    now,
                    RESTAMPED_ERROR,
                )
                restamped = {r[0] for r in rows}
                ids = [u.id for u in unapplied]
                existing = await connection.fetch(
                    "SELECT id FROM webhook_outbox_entries WHERE id = ANY($1::bigint[])", ids
                )
                gone = set(ids) - {r[0] for r in existing}
            recorded = Recorded(applied, restamped, gone)
            attempts = attempt_rows(recorded)
            if attempts:
                columns = [list(column) for column in zip(*attempts, strict=True)]
                columns[_KIDS] = [orjson.dumps(kids).decode() for kids in columns[_KIDS]]
                await connection.execute(_INSERT_ATTEMPTS_SQL, *columns)
        return recorded

    async def close(self) -> None:
        for which in ("_loop_connection", "_record_connection"):
            connection = getattr(self, which)
            setattr(self, which, None)
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=5)


# --------------------------------------------------------------------------- SQLAlchemy


class SqlStore:
    """The same operations through SQLAlchemy sessions (SQLite)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @staticmethod
    def claim_statement(
        slots: ClaimSlots, *, now: datetime, until: datetime, name: str, token: str
    ) -> Any:
        due = (
            select(_entries.c.id, _entries.c.oauth_application_id, _entries.c.due_at)
            .where(claimable(now, _entries.c), not_held(_entries.c))
            .order_by(_entries.c.due_at)
            .limit(slots.limit)
            .with_for_update(skip_locked=True)
        )
        if slots.full_apps:
            due = due.where(_entries.c.oauth_application_id.not_in(slots.full_apps))
        due_q = due.subquery("due")
        ranked = select(
            due_q.c.id,
            due_q.c.oauth_application_id,
            func.row_number()
            .over(partition_by=due_q.c.oauth_application_id, order_by=(due_q.c.due_at, due_q.c.id))
            .label("rank"),
        ).subquery("ranked")
        free = (
            case(slots.busy, value=ranked.c.oauth_application_id, else_=slots.app_cap)
            if slots.busy
            else literal(slots.app_cap)
        )
        return (
            update(_entries)
            .where(_entries.c.id.in_(select(ranked.c.id).where(ranked.c.rank <= free)))
            .values(leased_by=name, lease_token=token, lease_expires_at=until)
            .returning(
                _entries.c.id,
                _entries.c.oauth_application_id,
                _entries.c.event_type,
                _entries.c.payload,
                _entries.c.idempotency_key,
                _entries.c.created_at,
                _entries.c.attempts,
                _entries.c.key_epoch,
            )
        )

    async def claim(
        self, slots: ClaimSlots, *, now: datetime, until: datetime, name: str, token: str
    ) -> list[Claimed]:
        # Most polls find nothing due: a read, which takes no lock, says so before a
        # write transaction would queue every writer of the process behind this one.
        async with self._database.session(readonly=True) as session:
            due = await session.scalar(
                select(_entries.c.id)
                .where(claimable(now, _entries.c), not_held(_entries.c))
                .limit(1)
            )
        if due is None:
            return []
        statement = self.claim_statement(slots, now=now, until=until, name=name, token=token)
        async with self._database.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            Claimed(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], lease_token=token) for r in rows
        ]

    async def keys(self, app_ids: Sequence[int], now: datetime) -> list[KeyRow]:
        keys = cast(Table, WebhookSigningKey.__table__)
        apps = cast(Table, OAuthApplication.__table__)
        statement = (
            select(
                apps.c.id,
                apps.c.webhook_url,
                keys.c.kid,
                keys.c.scheme,
                keys.c.secret_encrypted,
                keys.c.expires_at,
                apps.c.backchannel_logout_uri,
                apps.c.client_id,
                apps.c.id_token_signed_response_alg,
            )
            .select_from(
                apps.outerjoin(
                    keys,
                    (keys.c.oauth_application_id == apps.c.id)
                    & keys.c.revoked_at.is_(None)
                    & (keys.c.expires_at.is_(None) | (keys.c.expires_at > now)),
                )
            )
            .where(apps.c.id.in_(list(app_ids)))
            .order_by(apps.c.id, keys.c.created_at.desc(), keys.c.id.desc())
        )
        # A read: it need not queue behind the writers (claims, results) for SQLite's lock.
        async with self._database.session(readonly=True) as session:
            rows = (await session.execute(statement)).all()
        return [KeyRow(*row) for row in rows]

    async def release(
        self, claims: Sequence[Claimed], *, due: datetime, error: str | None
    ) -> list[int]:
        values: dict[str, Any] = {
            "due_at": due,
            "leased_by": None,
            "lease_token": None,
            "lease_expires_at": None,
        }
        if error is not None:
            values["last_error"] = error
        released: list[int] = []
        async with self._database.session() as session:
            for token, ids in _by_token(claims).items():
                result = await session.execute(
                    update(_entries)
                    .where(_entries.c.id.in_(ids), _entries.c.lease_token == token)
                    .values(**values)
                    .returning(_entries.c.id)
                )
                released.extend(result.scalars().all())
        return released

    async def record(
        self, updates: Sequence[EntryUpdate], attempt_rows: AttemptRows, now: datetime
    ) -> Recorded:
        # A handful of statements whatever the batch's size: on SQLite the claim
        # queues behind this transaction for the write lock. The transaction holds
        # that lock from its BEGIN (``Database.session``), so the leases read here
        # are still the ones the updates below apply to.
        ids = [u.id for u in updates]
        async with self._database.session() as session:
            held = {
                r[0]: (r[1], r[2])
                for r in await session.execute(
                    select(_entries.c.id, _entries.c.lease_token, _entries.c.key_epoch).where(
                        _entries.c.id.in_(ids)
                    )
                )
            }
            applied = {u.id for u in updates if held.get(u.id) == (u.token, u.epoch)}
            restamped = {
                u.id
                for u in updates
                if u.id not in applied and u.id in held and held[u.id][0] == u.token
            }
            gone = set(ids) - set(held)
            if applied:
                await session.execute(
                    update(_entries)
                    .where(_entries.c.id == bindparam("b_id"))
                    .values(
                        attempts=_entries.c.attempts + 1,
                        delivered_at=bindparam("b_delivered", type_=_entries.c.delivered_at.type),
                        dlq_at=bindparam("b_dlq", type_=_entries.c.dlq_at.type),
                        next_retry_at=bindparam("b_retry", type_=_entries.c.next_retry_at.type),
                        due_at=func.coalesce(
                            bindparam("b_retry", type_=_entries.c.due_at.type), _entries.c.due_at
                        ),
                        last_status_code=bindparam("b_status"),
                        last_error=bindparam("b_error"),
                        leased_by=None,
                        lease_token=None,
                        lease_expires_at=None,
                    ),
                    [
                        {
                            "b_id": u.id,
                            "b_delivered": u.delivered_at,
                            "b_dlq": u.dlq_at,
                            "b_retry": u.next_retry_at,
                            "b_status": u.status_code,
                            "b_error": u.last_error,
                        }
                        for u in updates
                        if u.id in applied
                    ],
                )
            if restamped:
                await session.execute(
                    update(_entries)
                    .where(_entries.c.id.in_(restamped))
                    .values(
                        due_at=now,
                        leased_by=None,
                        lease_token=None,
                        lease_expires_at=None,
                        last_error=RESTAMPED_ERROR,
                    )
                )
            recorded = Recorded(applied, restamped, gone)
            attempts = attempt_rows(recorded)
            if attempts:
                await session.execute(
                    _attempts.insert(),
                    [dict(zip(ATTEMPT_COLUMNS, a, strict=True)) for a in attempts],
                )
        return recorded

    async def close(self) -> None:
        return None
