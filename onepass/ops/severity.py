"""The playbook's severity table, as pure functions (no HTTP, no database).

| sev  | definition                                                                        | respond        |
| ---- | --------------------------------------------------------------------------------- | -------------- |
| sev1 | ``/up`` 5xx or 404; every token request fails; the JWKS does not answer          | at once        |
| sev2 | some endpoints 5xx; p95 latency over 2 s; webhook deliveries failing everywhere  | within 1 hour  |
| sev3 | dead-lettered webhooks for one RP; a merge race; a single user's incident        | within 24 hours|

``triage`` gathers findings; ``classify`` picks the highest severity (sev1 beats sev2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


class Severity(StrEnum):
    OK = "ok"
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"

    @property
    def number(self) -> int:
        """0 for ok, else the sev number (the exit status of ``onepass triage``)."""
        return 0 if self is Severity.OK else int(self.value[3:])

    @property
    def rank(self) -> int:
        """Higher is worse: ok 0, sev3 1, sev2 2, sev1 3."""
        return 0 if self is Severity.OK else 4 - self.number

    @classmethod
    def of_number(cls, number: int) -> Severity:
        if number not in (1, 2, 3):
            raise ValueError(f"severity must be 1, 2 or 3, not {number}")
        return cls(f"sev{number}")


# How soon each severity must be answered (the playbook's "respond" column).
RESPONSE_TIME = {
    Severity.SEV1: timedelta(0),
    Severity.SEV2: timedelta(hours=1),
    Severity.SEV3: timedelta(hours=24),
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    reason: str


def classify(findings: Iterable[Finding]) -> tuple[Severity, list[str]]:
    """The highest severity among the findings, and every reason, worst first."""
    ordered = sorted(findings, key=lambda f: -f.severity.rank)
    worst = ordered[0].severity if ordered else Severity.OK
    return worst, [f"{f.severity.value}: {f.reason}" for f in ordered]


def p95(samples: Sequence[float]) -> float | None:
    """The 95th percentile (nearest rank) of the samples; None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def duration_text(seconds: float) -> str:
    """``45 s``, ``14 min``, ``3 h 20 min``: for reasons read at 3 a.m."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# -- webhook deliveries across RPs ----------------------------------------------------

FAILED_OUTCOMES = frozenset({"retry", "dead"})
SUCCEEDED_OUTCOMES = frozenset({"delivered"})


@dataclass
class AppDeliveries:
    client_id: str
    failed: int = 0
    succeeded: int = 0
    error_classes: dict[str, int] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        """Most of this RP's attempts failed."""
        return self.failed > self.succeeded


@dataclass(frozen=True)
class DeliveryVerdict:
    attempts: int
    failed: int
    failing_apps: list[str]  # client_ids whose attempts mostly failed
    active_apps: int
    common_error: str | None  # the most frequent error_class among failures
    across_the_board: bool

    @property
    def failure_ratio(self) -> float:
        return self.failed / self.attempts if self.attempts else 0.0


def assess_deliveries(
    rows: Iterable[tuple[str, str, str | None, int]], failure_ratio: float
) -> DeliveryVerdict:
    """Are webhook deliveries failing across the board (sev2)?

    ``rows``: (client_id, outcome, error_class, attempts) over the recent window.
    Across the board means: at least ``failure_ratio`` of all attempts failed (retry
    or dead), and the attempts of more than one RP mostly failed. One RP failing alone
    is that RP's incident (its entries retry, then reach the DLQ: sev3), not ours.
    Attempts whose outcome was discarded (a key compromise, a lost lease) are ignored.
    """
    apps: dict[str, AppDeliveries] = {}
    errors: dict[str, int] = {}
    for client_id, outcome, error_class, count in rows:
        app = apps.setdefault(client_id, AppDeliveries(client_id))
        if outcome in FAILED_OUTCOMES:
            app.failed += count
            key = error_class or "unknown"
            errors[key] = errors.get(key, 0) + count
        elif outcome in SUCCEEDED_OUTCOMES:
            app.succeeded += count
    failed = sum(a.failed for a in apps.values())
    attempts = failed + sum(a.succeeded for a in apps.values())
    failing = sorted(a.client_id for a in apps.values() if a.failing)
    common = max(sorted(errors), key=lambda k: errors[k]) if errors else None
    board = bool(attempts) and failed / attempts >= failure_ratio and len(failing) >= 2
    return DeliveryVerdict(
        attempts=attempts,
        failed=failed,
        failing_apps=failing,
        active_apps=sum(1 for a in apps.values() if a.failed or a.succeeded),
        common_error=common,
        across_the_board=board,
    )


def name_list(names: Sequence[str], limit: int = 5) -> str:
    """``a, b and c``; ``a, b, c, d, e and 3 more``."""
    names = list(names)
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
