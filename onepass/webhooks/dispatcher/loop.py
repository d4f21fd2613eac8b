"""The claim loop and its wake-up rules: when to claim, how much, and shutting down.

Any number of dispatchers (processes, machines) share one PostgreSQL database. Each
claims a batch of due entries with one statement (``store.CLAIM_SQL``: ``UPDATE …
WHERE id = ANY(ARRAY(SELECT … FOR UPDATE SKIP LOCKED)) RETURNING``), so no entry is
held by two dispatchers at once, and an entry whose dispatcher died is claimed again
when its lease expires, and no sooner. The lease
outlasts the HTTP timeout, so a live dispatcher always finishes first. Results are
recorded in batches, fenced by the lease token (``recording.py``): a dispatcher that
lost its lease (or whose entry was re-stamped by a key compromise) cannot overwrite
anything.

On SQLite one dispatcher runs at a time (``embedded.DispatcherLock``); the same
operations run through SQLAlchemy there (``store.SqlStore``). Tests run the loop on
``memory_store.MemoryStore``.

New entries wake dispatchers through PostgreSQL LISTEN/NOTIFY (``listener.py``);
polling every ``ONEPASS_WEBHOOK_POLL_INTERVAL`` remains the fallback and finds the
retries that become due. A per-application concurrency cap keeps a slow RP from
taking every slot: an application at its cap is left out of the next claims, and a
claim takes no more of an application's entries than it has free slots, so whatever
is claimed starts at once, its signing keys read just before. The loop claims again as
soon as a claim is worth its statement: a quarter of its slots free while entries may
be due elsewhere, or a quarter of the slots of an application left at its cap (which
may have more due), so one RP's backlog drains at its cap in flight, never one batch
per poll interval; an application whose last claim gave it fewer than its free slots
has nothing more due and wakes nothing until the next poll interval or NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from sqlalchemy.exc import SQLAlchemyError

from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.db import Database
from onepass.durations import parse_schedule
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks import outbox
from onepass.webhooks.dispatcher.attempt import Result, Sender
from onepass.webhooks.dispatcher.logout import LogoutKeys
from onepass.webhooks.dispatcher.recording import Recorder, Stats
from onepass.webhooks.dispatcher.streams import Streams
from onepass.webhooks.dispatcher.targets import Target, Targets
from onepass.webhooks.listener import Listener
from onepass.webhooks.retry import RetryPolicy
from onepass.webhooks.store import Claimed, ClaimSlots, Store, create_store

log = structlog.get_logger("onepass.webhooks.dispatcher")

# Errors of the database (or of the network to it): the dispatcher waits and goes on.
DATABASE_ERRORS = (SQLAlchemyError, OSError, asyncpg.PostgresError)


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Dispatcher:
    """Delivers due outbox entries until stopped; use as an async context manager."""

    def __init__(
        self,
        database: Database | None,
        settings: Settings,
        box: SecretBox,
        clock: Clock,
        *,
        store: Store | None = None,
        concurrency: int | None = None,
        app_concurrency: int | None = None,
        batch_size: int = 500,
        name: str | None = None,
        rng: random.Random | None = None,
        listen: bool = True,
    ) -> None:
        self.database = database
        self.settings = settings
        self.box = box
        self.clock = clock
        self.concurrency = concurrency or settings.webhook_concurrency
        self.app_concurrency = min(
            app_concurrency or settings.webhook_app_concurrency, self.concurrency
        )
        self.batch_size = batch_size
        self.name = name or default_name()
        self.rng = rng or random.Random()
        self.policy = RetryPolicy(
            parse_schedule(settings.webhook_retry_schedule),
            settings.webhook_retry_jitter,
            settings.webhook_retry_after_max,
        )
        self.timeout = settings.webhook_timeout
        self.lease = timedelta(seconds=settings.webhook_lease_seconds)
        self.poll_interval = settings.webhook_poll_interval
        self.stats = Stats()
        # ``store``: the database's statements (``store.create_store``) unless given one
        # (``memory_store.MemoryStore``, database None: the loop's unit tests).
        if store is None:
            assert database is not None, "a dispatcher needs a database or a store"
            store = create_store(database)
        self.store = store
        self._listen = listen and database is not None and database.dialect == "postgresql"
        self._listener: Listener | None = None
        # Back-channel logouts sign logout tokens with 1pass's keys (read on first use).
        logout_keys = (
            LogoutKeys(database, box, clock, refresh_interval=settings.key_refresh_interval)
            if database is not None
            else None
        )
        self._sender = Sender(
            settings,
            clock,
            self.policy,
            self.rng,
            concurrency=self.concurrency,
            logout_keys=logout_keys,
            # Shared Signals pushes read their stream at each attempt.
            streams=Streams(database, box) if database is not None else None,
        )
        self._targets = Targets(store, box, clock)
        self._recorder = Recorder(store, clock, self.name, self.stats)
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_app: Counter[int] = Counter()
        self._results: asyncio.Queue[Result | None] = asyncio.Queue()
        self._cancelled: list[Claimed] = []
        self._wake = asyncio.Event()
        self._capacity = asyncio.Event()
        # When a claim is worth it (``_worth_claiming``): ``refill`` free slots in all
        # while entries may be due outside the applications at their cap
        # (``_elsewhere``), or ``app_refill`` free slots of an application that was at
        # its cap (``_capped``: it may have more due than it was given).
        self._refill = max(1, min(self.batch_size, self.concurrency) // 4)
        self._app_refill = max(1, self.app_concurrency // 4)
        self._capped: set[int] = set()
        self._elsewhere = True
        self._next_look = 0.0

    @classmethod
    def from_runtime(cls, runtime: Runtime, **options: Any) -> Dispatcher:
        return cls(runtime.database, runtime.settings, runtime.box, runtime.clock, **options)

    async def __aenter__(self) -> Dispatcher:
        self._sender.open()
        if self._listen:
            assert self.database is not None
            self._listener = Listener(self.database.url, {outbox.OUTBOX_CHANNEL: self._on_outbox})
            await self._listener.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()
        if self._listener is not None:
            await self._listener.stop()
        await self._sender.close()

    # -- wake-ups ---------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due entries now (NOTIFY, or an enqueue in this process)."""
        self._wake.set()

    def _on_outbox(self, _payload: str) -> None:
        self._wake.set()

    # -- running ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, force: asyncio.Event | None = None) -> Stats:
        """Deliver until ``stop`` is set; then finish the attempts in flight (or, once
        ``force`` is set, abandon them and release their claims) and return."""
        log.info(
            "webhooks.dispatcher.started",
            dispatcher=self.name,
            concurrency=self.concurrency,
            app_concurrency=self.app_concurrency,
            listen=self._listener is not None,
        )
        await self._loop(stop, force=force, once=False)
        log.info("webhooks.dispatcher.stopped", dispatcher=self.name, **self.stats.as_json())
        return self.stats

    async def run_once(
        self, stop: asyncio.Event | None = None, *, force: asyncio.Event | None = None
    ) -> Stats:
        """Deliver every entry due now (waiting for the attempts to finish), then return;
        ``stop`` and ``force`` end it early, as for ``run``."""
        await self._loop(stop or asyncio.Event(), force=force, once=True)
        return self.stats

    async def _loop(self, stop: asyncio.Event, *, force: asyncio.Event | None, once: bool) -> None:
        assert self._sender.is_open, "use the dispatcher as an async context manager"
        recorder = asyncio.create_task(
            self._recorder.run(self._results, lambda: bool(self._tasks)), name="webhooks-recorder"
        )
        failures = 0
        try:
            while not stop.is_set():
                # The decision point. The capacity signal is cleared here and only here,
                # before what follows reads the state it signals: a slot freed during
                # the claim's awaits sets it again, and the wait below returns at once.
                self._capacity.clear()
                if self._wake.is_set() or (not once and time.monotonic() >= self._next_look):
                    # New entries (NOTIFY, an enqueue here), or a poll interval gone by
                    # (retries come due, leases end): look beyond the capped applications.
                    self._wake.clear()
                    self._next_look = time.monotonic() + self.poll_interval
                    self._elsewhere = True
                free = self.concurrency - len(self._tasks)
                limit = min(free, self.batch_size)
                last_look = once and not self._tasks
                if limit <= 0 or not (last_look or self._worth_claiming()):
                    await self._wait(stop, once)
                    continue
                asked = limit if last_look or self._elsewhere else self._capped_slots(limit)
                in_flight = dict(self._per_app)
                try:
                    claimed = await self.claim_batch(asked, in_flight)
                    if claimed:
                        await self._start(claimed)
                    failures = 0
                except DATABASE_ERRORS as exc:
                    # The database is away: what was claimed stays leased and is
                    # claimed again when the lease ends.
                    if once:
                        raise
                    failures += 1
                    log.error(
                        "webhooks.claim_failed",
                        dispatcher=self.name,
                        error=type(exc).__name__,
                        detail=str(exc).splitlines()[0][:200] if str(exc) else "",
                    )
                    await self._sleep(stop, min(30.0, 0.5 * 2**failures))
                    continue
                self._claimed(claimed, limit, asked, in_flight)
                if last_look and not claimed:
                    break
        finally:
            await self._shutdown(force)
            await self._results.put(None)
            await recorder

    # -- when to claim ----------------------------------------------------------------

    def _worth_claiming(self) -> bool:
        """Whether a claim now can start enough deliveries to be worth its statement.

        Never true just because one attempt finished (a claim per delivery), nor for
        an application whose last claim gave it less than its free slots (nothing more
        of it is due: its entries wait in back-off, or it has none), which is what
        keeps a capped RP whose backlog is in back-off from making the loop spin.
        """
        free = self.concurrency - len(self._tasks)
        if free >= self._refill and self._elsewhere:
            return True
        if free < self._app_refill:
            return False
        cap = self.app_concurrency
        return any(cap - self._per_app.get(a, 0) >= self._app_refill for a in self._capped)

    def _capped_slots(self, limit: int) -> int:
        """The capped applications' free slots: what a claim is for when nothing is due
        outside them (the claim's scan then stays as small as what it can take)."""
        cap = self.app_concurrency
        wanted = sum(max(0, cap - self._per_app.get(a, 0)) for a in self._capped)
        return max(1, min(limit, wanted))

    def _claimed(
        self, claimed: list[Claimed], limit: int, asked: int, in_flight: Mapping[int, int]
    ) -> None:
        """What a claim tells about what is still due: ``asked`` for at most ``limit``
        (the free slots) with ``in_flight`` the attempts running when it was made."""
        cap = self.app_concurrency
        got = Counter(e.app_id for e in claimed)
        # Left out of the claim (at its cap when it was made): nothing learnt, it may
        # have more. Given all its free slots: its rows beyond them took part of the
        # claim's scan, which may have hidden other applications'.
        left_out = {a for a, n in in_flight.items() if n >= cap}
        cut = {a for a, n in got.items() if n >= cap - in_flight.get(a, 0)}
        # Cut short by the free slots, or (a claim sized for the capped applications)
        # by entries of others that came due: more may be due anywhere.
        full = len(claimed) >= limit or (
            len(claimed) >= asked and any(a not in self._capped for a in got)
        )
        if full or cut:
            self._capped |= left_out | cut
        else:
            # Every application below its cap was offered its free slots and took
            # fewer: nothing more of it is due, and nothing outside the capped ones.
            self._capped = left_out
        self._elsewhere = full or (bool(cut) and self._elsewhere)

    async def _wait(self, stop: asyncio.Event, once: bool) -> None:
        waiters = [asyncio.ensure_future(self._capacity.wait()), asyncio.ensure_future(stop.wait())]
        if not once:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(
                waiters,
                timeout=None if once else max(0.0, self._next_look - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def _shutdown(self, force: asyncio.Event | None) -> None:
        """Let the attempts in flight finish (at most the HTTP timeout, unless ``force``
        is set); release the claims of those that do not."""
        pending = set(self._tasks)
        forced = asyncio.ensure_future(force.wait()) if force is not None else None
        deadline = time.monotonic() + self.timeout + 5
        while pending and time.monotonic() < deadline and not (forced and forced.done()):
            waiting: set[asyncio.Future[Any]] = set(pending)
            if forced is not None:
                waiting.add(forced)
            await asyncio.wait(
                waiting, timeout=deadline - time.monotonic(), return_when=asyncio.FIRST_COMPLETED
            )
            pending = {t for t in pending if not t.done()}
        if forced is not None:
            forced.cancel()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._cancelled:
            cancelled, self._cancelled = self._cancelled, []
            try:
                await self.store.release(cancelled, due=self.clock.now(), error=None)
            except DATABASE_ERRORS as exc:
                log.error(
                    "webhooks.release_failed", error=type(exc).__name__, entries=len(cancelled)
                )
            log.info("webhooks.claims_released", entries=len(cancelled))

    # -- claiming ---------------------------------------------------------------------

    async def claim_batch(
        self, limit: int, in_flight: Mapping[int, int] | None = None
    ) -> list[Claimed]:
        """Lease up to ``limit`` due entries, oldest due first, taking no more of an
        application than its free slots (``in_flight``: attempts running per application)."""
        now = self.clock.now()
        return await self.store.claim(
            self.claim_slots(limit, in_flight or {}),
            now=now,
            until=now + self.lease,
            name=self.name,
            token=secrets.token_hex(8),
        )

    def claim_slots(self, limit: int, in_flight: Mapping[int, int]) -> ClaimSlots:
        return ClaimSlots.of(limit, in_flight, self.app_concurrency)

    async def _start(self, claimed: list[Claimed]) -> None:
        claimed.sort(key=lambda e: e.id)
        targets = await self._targets.load(sorted({e.app_id for e in claimed}))
        for entry in claimed:
            self._per_app[entry.app_id] += 1
            task = asyncio.create_task(self._attempt(entry, targets[entry.app_id]))
            self._tasks.add(task)
            task.add_done_callback(self._finished(entry.app_id))

    def _finished(self, app_id: int) -> Any:
        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._per_app[app_id] -= 1
            if self._per_app[app_id] <= 0:
                del self._per_app[app_id]
            # Wake the claim loop when a claim is worth it (or nothing is left in
            # flight: ``run_once`` then looks one last time).
            if not self._capacity.is_set() and (not self._tasks or self._worth_claiming()):
                self._capacity.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("webhooks.attempt_crashed", exc_info=task.exception())

        return done

    # -- delivering -------------------------------------------------------------------

    async def _attempt(self, entry: Claimed, target: Target) -> None:
        try:
            result = await self.deliver(entry, target)
        except asyncio.CancelledError:
            self._cancelled.append(entry)
            raise
        await self._results.put(result)

    async def deliver(self, entry: Claimed, target: Target) -> Result:
        """One attempt (``attempt.Sender.deliver``); never raises for the RP's faults."""
        return await self._sender.deliver(entry, target)

    # -- recording --------------------------------------------------------------------

    async def record_results(self, results: Sequence[Result]) -> None:
        """Apply outcomes (fenced by lease token and key epoch) and log every attempt."""
        await self._recorder.record(results)
