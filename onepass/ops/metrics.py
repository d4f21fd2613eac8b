"""Prometheus metrics (``GET /metrics``), in the text exposition format.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``onepass serve --workers N``), every process
writes its counters to files in that directory and a scrape of any worker adds them
all up (prometheus-client's multiprocess mode); without it, one process-wide registry.
The directory must exist and be emptied before the server starts (``onepass serve``
does both).

What is counted where:

- HTTP requests by route template and status class, and their latency: ``OnePass.__call__``
  (onepass/app.py) around every request, the bare-ASGI token endpoint included,
  counted in plain Python and flushed into the metrics before each scrape and every
  second (``HttpMetrics``), to keep the token endpoint's hot path cheap.
- Tokens issued by grant type, token errors by error code: the token endpoint.
- Webhook deliveries by outcome: ``Dispatcher.record_results``, in the dispatcher's
  process (an embedded dispatcher is a server worker; a separate ``onepass webhooks
  dispatch`` on the same machine and multiprocess directory is scraped with the server).
- The outbox gauges (pending, dead per RP, age of the oldest due entry): read from the
  database at scrape time with index-only queries (``outbox_snapshot``).
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.webhooks import outbox_queries

__all__ = ["CONTENT_TYPE_LATEST", "HTTP", "TOKENS", "OutboxSnapshot", "flush_all", "render"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Our metrics live in their own registry (not prometheus-client's default one, which
# also carries process and platform collectors that multiprocess mode cannot add up).
REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets, in seconds: fine below 100 ms where the token endpoint lives, and 2 s
# (the playbook's sev2 p95) as a bucket boundary.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))

HTTP_REQUESTS = Counter(
    "onepass_http_requests",
    "HTTP requests answered, by route template and status class.",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "onepass_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKENS_ISSUED = Counter(
    "onepass_tokens_issued",
    "Token responses (POST /token answered 200), by grant type.",
    ["grant_type"],
    registry=REGISTRY,
)
TOKEN_ERRORS = Counter(
    "onepass_token_errors",
    "Token requests refused, by OAuth error code (RFC 6749 section 5.2).",
    ["error"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "onepass_webhook_deliveries",
    "Webhook delivery attempts recorded, by outcome (delivered, retry, dead, discarded).",
    ["outcome"],
    registry=REGISTRY,
)

# Routes no route matched (404s, scanners): one label value, whatever the path.
UNMATCHED = "unmatched"
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    index = status // 100 - 1
    return _STATUS_CLASSES[index] if 0 <= index < len(_STATUS_CLASSES) else "5xx"


def route_template(scope: dict[str, Any] | Any) -> str:
    """The matched route's template (``/webhooks/{client_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class HttpMetrics:
    """Per-request counting, cheap enough for the token endpoint's hot path.

    A request only adds to plain Python numbers (a dict entry per route and status:
    a count, a sum and a bucket found by ``bisect``); ``flush`` moves them into
    prometheus-client's metrics. ``flush_all`` runs before every scrape and, in each
    server process, every ``FLUSH_INTERVAL`` (``run_flusher``), so another worker's
    requests reach a multiprocess scrape within a second. Measured on the token
    endpoint in-process: about 1.4 µs a request with the timing, against about 4.4 µs
    when every request incremented a counter and observed a histogram (their locks
    and, in multiprocess mode, memory-mapped writes cost more).
    """

    def __init__(self) -> None:
        # (route, status) -> [count, sum of seconds, per-bucket counts]
        self._pending: dict[tuple[str, int], list[Any]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        entry = self._pending.get((route, status))
        if entry is None:
            entry = self._pending[(route, status)] = [0, 0.0, [0] * len(_BOUNDS)]
        entry[0] += 1
        entry[1] += seconds
        entry[2][bisect_left(_BOUNDS, seconds)] += 1

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for (route, status), (count, total, buckets) in pending.items():
            HTTP_REQUESTS.labels(route, status_class(status)).inc(count)
            _add_observations(HTTP_DURATION.labels(route), buckets, total)


def _add_observations(child: Any, buckets: list[int], total: float) -> None:
    # prometheus-client's Histogram has no public way to add many observations at
    # once; its per-bucket values (non-cumulative, as observe() keeps them) and sum
    # are what observe() increments (prometheus-client 0.26, pinned). The unit tests
    # compare the result with observe()'s.
    for index, n in enumerate(buckets):
        if n:
            child._buckets[index].inc(n)
    child._sum.inc(total)


class TokenMetrics:
    """Tokens issued and token errors, for ``TokenEndpoint``; flushed like ``HttpMetrics``."""

    def __init__(self) -> None:
        self._issued: dict[str, int] = {}
        self._errors: dict[str, int] = {}

    def issued(self, grant_type: str) -> None:
        self._issued[grant_type] = self._issued.get(grant_type, 0) + 1

    def error(self, code: str) -> None:
        self._errors[code] = self._errors.get(code, 0) + 1

    def flush(self) -> None:
        issued, self._issued = self._issued, {}
        errors, self._errors = self._errors, {}
        for grant_type, n in issued.items():
            TOKENS_ISSUED.labels(grant_type).inc(n)
        for code, n in errors.items():
            TOKEN_ERRORS.labels(code).inc(n)


# This process's counts not yet in prometheus-client's metrics.
HTTP = HttpMetrics()
TOKENS = TokenMetrics()
FLUSH_INTERVAL = 1.0


def flush_all() -> None:
    HTTP.flush()
    TOKENS.flush()


async def run_flusher(interval: float = FLUSH_INTERVAL) -> None:
    """Flush every ``interval`` seconds until cancelled, then once more."""
    try:
        while True:
            await asyncio.sleep(interval)
            flush_all()
    finally:
        flush_all()


def count_deliveries(outcomes: dict[str, int]) -> None:
    """Add a recorded batch's outcomes (``Dispatcher.record_results``)."""
    for outcome, n in outcomes.items():
        if n:
            WEBHOOK_DELIVERIES.labels(outcome).inc(n)


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
    registry.register(_Families(outbox_families(snapshot)))
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
