"""Prometheus metrics (``GET /metrics``), in the text exposition format.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``onepass serve --workers N``), every process
writes its counters to files in that directory and a scrape of any worker adds them
all up (prometheus-client's multiprocess mode); without it, one process-wide registry.
The directory must exist and be emptied before the server starts (``onepass serve``
does both).

The instruments themselves (HTTP requests, tokens, webhook deliveries), and what
counts into them where, are ``onepass.instruments``; this module renders them, with
the outbox gauges (pending, dead per RP, age of the oldest due entry) read from the
database at scrape time with index-only queries (``outbox_snapshot``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.instruments import REGISTRY, flush_all
from onepass.release import current as current_release
from onepass.webhooks import outbox_queries

__all__ = ["CONTENT_TYPE_LATEST", "OutboxSnapshot", "read_outbox", "render"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


# -- outbox gauges, read at scrape time -----------------------------------------------


@dataclass
class OutboxSnapshot:
    """What ``outbox_snapshot`` read; ``ok`` is False when the database did not answer."""

    ok: bool
    pending: int = 0
    due: int = 0
    oldest_due_age: float = 0.0
    dead: dict[str, int] = field(default_factory=dict)  # client_id -> dead entries


async def outbox_snapshot(session: AsyncSession, now: datetime) -> OutboxSnapshot:
    """The outbox gauges from the read model's indexed queries (``outbox_queries``):
    pending and due entries through the partial index on ``due_at``, dead ones per RP
    through ``ix_…_dead`` (the playbook's dead-count query)."""
    backlog = await outbox_queries.backlog(session, now)
    dead = await outbox_queries.dead_by_application(session)
    return OutboxSnapshot(
        ok=True,
        pending=backlog.pending,
        due=backlog.due,
        oldest_due_age=backlog.oldest_due_age(now),
        dead={d.client_id: d.dead_count for d in dead if d.client_id is not None},
    )


class _Families:
    """A collector that yields metric families computed beforehand (this scrape's)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


class _Registry:
    """prometheus-client's registry API over our process-wide registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def outbox_families(snapshot: OutboxSnapshot) -> list[Metric]:
    up = GaugeMetricFamily(
        "onepass_webhook_outbox_scrape_ok",
        "1 when the outbox gauges below were read from the database at this scrape, else 0.",
        value=1 if snapshot.ok else 0,
    )
    if not snapshot.ok:
        return [up]
    dead = GaugeMetricFamily(
        "onepass_webhook_outbox_dead",
        "Dead-lettered webhook entries (dlq_at set, not delivered), per RP.",
        labels=["client_id"],
    )
    for client_id, n in sorted(snapshot.dead.items()):
        dead.add_metric([client_id], n)
    return [
        up,
        GaugeMetricFamily(
            "onepass_webhook_outbox_pending",
            "Webhook entries not yet delivered nor dead (due now or scheduled for a retry).",
            value=snapshot.pending,
        ),
        GaugeMetricFamily(
            "onepass_webhook_outbox_due",
            "Pending webhook entries whose delivery is due now (the dispatchers' backlog).",
            value=snapshot.due,
        ),
        GaugeMetricFamily(
            "onepass_webhook_outbox_oldest_due_age_seconds",
            "How long the oldest due webhook entry has been waiting; 0 when none is due.",
            value=snapshot.oldest_due_age,
        ),
        dead,
    ]


def release_family() -> Metric:
    """``onepass_release_info{version, commit, revision} 1``: what this process runs, so a
    dashboard shows two releases serving at once during (or after a stuck) deploy."""
    release = current_release()
    return InfoMetricFamily(
        "onepass_release",
        "The release this process runs: version, git commit, newest migration it ships.",
        value={
            "version": release.version,
            "commit": release.commit or "unknown",
            "revision": release.revision,
        },
    )


def render(snapshot: OutboxSnapshot) -> bytes:
    """This scrape's text: every process's metrics (multiprocess mode) or this one's,
    then the outbox gauges."""
    flush_all()
    registry = CollectorRegistry(auto_describe=False)
    multiproc_dir = os.environ.get(MULTIPROC_ENV)
    if multiproc_dir:
        MultiProcessCollector(registry, path=multiproc_dir)
    else:
        registry.register(_Registry())
    registry.register(_Families([release_family(), *outbox_families(snapshot)]))
    return generate_latest(registry)


async def read_outbox(database: Any, now: datetime, within: float = 2.0) -> OutboxSnapshot:
    """``outbox_snapshot`` within ``within`` seconds; a database that does not answer gives
    ``ok=False`` (the HTTP metrics are still served)."""
    try:
        async with asyncio.timeout(within), database.session(readonly=True) as session:
            return await outbox_snapshot(session, now)
    except Exception:
        return OutboxSnapshot(ok=False)


def clear_multiprocess_directory() -> str | None:
    """Create ``PROMETHEUS_MULTIPROC_DIR`` and empty it of a previous run's files
    (prometheus-client requires it: counters of a previous run would be added in).
    Returns the directory, or None when multiprocess mode is off."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return None
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))
    return directory
