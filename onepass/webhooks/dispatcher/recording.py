"""Recording outcomes: results are written in batches, fenced by the lease token and the
key epoch (``store.record``): a result whose lease was lost, or whose entry was
re-stamped by a key compromise, changes nothing and is logged as discarded. Every
attempt goes to ``webhook_delivery_attempts``; the outcomes to ``GET /metrics``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from onepass import instruments
from onepass.clock import Clock
from onepass.webhooks.dispatcher.attempt import Result, error_class
from onepass.webhooks.models import AttemptOutcome
from onepass.webhooks.retry import Outcome
from onepass.webhooks.store import RESTAMPED_ERROR, EntryUpdate, Recorded, Store

log = structlog.get_logger("onepass.webhooks.dispatcher")

# How long the recorder waits for more results before writing a batch.
RECORD_WINDOW = 0.005


@dataclass
class Stats:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    discarded: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "retrying": self.retrying,
            "dead": self.dead,
            "discarded": self.discarded,
        }


class Recorder:
    """Writes the results of one dispatcher (``name``) and counts them in ``stats``."""

    def __init__(self, store: Store, clock: Clock, name: str, stats: Stats) -> None:
        self.store = store
        self.clock = clock
        self.name = name
        self.stats = stats

    async def run(self, results: asyncio.Queue[Result | None], busy: Callable[[], bool]) -> None:
        """Record what arrives on ``results`` until a None; ``busy``: attempts are in
        flight (more results may follow soon)."""
        done = False
        while not done:
            first = await results.get()
            if first is None:
                break
            # Let what finishes within a few milliseconds join: one write for many results.
            if results.qsize() < 100 and busy():
                await asyncio.sleep(RECORD_WINDOW)
            batch = [first]
            while not results.empty() and len(batch) < 2000:
                item = results.get_nowait()
                if item is None:
                    done = True
                    break
                batch.append(item)
            failures = 0
            while True:
                try:
                    await self.record(batch)
                    break
                except Exception as exc:  # the database is away, or a bug: keep recording
                    failures += 1
                    log.error(
                        "webhooks.record_failed",
                        error=type(exc).__name__,
                        results=len(batch),
                        detail=str(exc).splitlines()[0][:200] if str(exc) else "",
                    )
                    if failures >= 10:
                        # The leases expire and the entries are delivered again: at least once.
                        break
                    await asyncio.sleep(min(10.0, 0.2 * 2**failures))

    async def record(self, results: Sequence[Result]) -> None:
        """Apply outcomes (fenced by lease token and key epoch) and log every attempt."""

        def attempt_rows(recorded: Recorded) -> list[tuple[Any, ...]]:
            rows = []
            for r in results:
                if r.entry.id in recorded.gone:
                    continue
                outcome: str = r.decision.outcome.value
                error = r.decision.reason
                if r.entry.id not in recorded.applied:
                    outcome = AttemptOutcome.DISCARDED.value
                    why = (
                        RESTAMPED_ERROR
                        if r.entry.id in recorded.restamped
                        else "the lease expired before the result was recorded"
                    )
                    error = f"{error}; not applied: {why}" if error else f"not applied: {why}"
                rows.append(  # in store.ATTEMPT_COLUMNS order
                    (
                        r.entry.id,
                        r.entry.app_id,
                        r.entry.attempts + 1,
                        r.started_at,
                        r.duration_ms,
                        r.status,
                        error_class(r),
                        error,
                        r.response_body,
                        r.kids,
                        outcome,
                        self.name,
                    )
                )
            return rows

        recorded = await self.store.record(
            [entry_update(r) for r in results], attempt_rows, self.clock.now()
        )
        # GET /metrics (onepass.instruments): the outcomes just recorded.
        instruments.count_deliveries(
            Counter(
                r.decision.outcome.value
                if r.entry.id in recorded.applied
                else AttemptOutcome.DISCARDED.value
                for r in results
                if r.entry.id not in recorded.gone
            )
        )
        for r in results:
            if r.entry.id not in recorded.applied:
                self.stats.discarded += 1
                log.warning(
                    "webhooks.result_discarded",
                    entry_id=r.entry.id,
                    app_id=r.entry.app_id,
                    restamped=r.entry.id in recorded.restamped,
                )
                continue
            outcome = r.decision.outcome
            if outcome is Outcome.DELIVERED:
                self.stats.delivered += 1
            elif outcome is Outcome.RETRY:
                self.stats.retrying += 1
                log.info(
                    "webhooks.delivery_failed",
                    entry_id=r.entry.id,
                    app_id=r.entry.app_id,
                    status=r.status,
                    error=r.decision.reason,
                )
            else:
                self.stats.dead += 1
                log.warning(
                    "webhooks.dead_lettered",
                    entry_id=r.entry.id,
                    app_id=r.entry.app_id,
                    status=r.status,
                    error=r.decision.reason,
                )


def entry_update(r: Result) -> EntryUpdate:
    """What a result does to its entry (applied only if the lease is still this one's)."""
    decision = r.decision
    retry_at = (
        r.finished_at + timedelta(seconds=decision.delay)
        if decision.outcome is Outcome.RETRY and decision.delay is not None
        else None
    )
    return EntryUpdate(
        id=r.entry.id,
        token=r.entry.lease_token,
        epoch=r.entry.key_epoch,
        delivered_at=r.finished_at if decision.outcome is Outcome.DELIVERED else None,
        dlq_at=r.finished_at if decision.outcome is Outcome.DEAD else None,
        next_retry_at=retry_at,
        status_code=r.status,
        last_error=decision.reason,
    )
