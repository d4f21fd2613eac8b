"""Delivery policy and retry schedule: what a delivery's outcome means, and when to try again.

Pure functions (no I/O, no clock of their own), after the operations playbook:

- 2xx: delivered.
- 409: the RP had already processed this ``webhook-id`` (idempotency key): delivered,
  never dead-lettered.
- 5xx, 408, 429, timeouts and connection errors: retried on the schedule, with jitter,
  honouring ``Retry-After`` (RFC 9110 §10.2.3) clamped to ``[step, retry_after_max]``;
  once the schedule is exhausted, dead-lettered.
- any other 4xx, and 3xx (redirects are not followed): dead-lettered at once.

A back-channel logout (``logout_tokens``) counts only 200 and 204 as success (OpenID
Connect Back-Channel Logout 1.0 §2.8, ``success=``): any other 2xx, and 409, is
dead-lettered at once like a 4xx; the rest as above.

The default schedule is Svix's: an immediate first attempt, then 5 s, 5 min, 30 min,
2 h, 5 h, 10 h and 10 h (8 attempts over about 27.6 hours), each delay ±20 %.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from onepass.durations import format_duration, parse_schedule

DEFAULT_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"
DEFAULT_JITTER = 0.2
DEFAULT_RETRY_AFTER_MAX = 24 * 3600.0


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class TransportFailure:
    """A delivery attempt that got no HTTP status: timeout, connection error, refusal."""

    kind: str  # "timeout", "connection", "dns", "unsafe_target", "no_signing_key", …
    message: str
    retryable: bool


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    # Seconds until the next attempt (RETRY only).
    delay: float | None
    # Why: stored as ``last_error`` (None only for a plain 2xx).
    reason: str | None


@dataclass(frozen=True)
class RetryPolicy:
    # Delay after the 1st, 2nd, … failed attempt; its length + 1 attempts in all.
    schedule: tuple[float, ...]
    jitter: float = DEFAULT_JITTER
    retry_after_max: float = DEFAULT_RETRY_AFTER_MAX

    @classmethod
    def default(cls) -> RetryPolicy:
        return cls(parse_schedule(DEFAULT_SCHEDULE))

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if any(step < 0 or not math.isfinite(step) for step in self.schedule):
            raise ValueError("retry delays must be finite and not negative")


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for, or None if unusable.

    RFC 9110 §10.2.3: either delta-seconds or an HTTP-date.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is true, float("²") raises
        return float(value) if len(value) <= 12 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    status: int | None,
    failure: TransportFailure | None = None,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    success: Collection[int] | None = None,
) -> Decision:
    """What to do after attempt number ``attempt`` (1-based) ended with ``status`` or ``failure``.

    ``retry_after`` (seconds, from ``parse_retry_after``) is honoured for retryable
    statuses, never below the schedule's (jittered) step nor above ``retry_after_max``.
    ``success``: the only statuses that deliver (a back-channel logout's 200 and 204);
    any other 2xx and 409 are then refusals, dead-lettered at once.
    """
    if status is not None and success is not None:
        if status in success:
            return Decision(Outcome.DELIVERED, None, None)
        if 200 <= status < 300 or status == 409:
            expected = " or ".join(str(s) for s in sorted(success))
            return Decision(
                Outcome.DEAD,
                None,
                f"HTTP {status}: a back-channel logout endpoint answers {expected} "
                "(OpenID Connect Back-Channel Logout 1.0 §2.8); not retried",
            )
    if status is not None:
        if 200 <= status < 300:
            return Decision(Outcome.DELIVERED, None, None)
        if status == 409:
            return Decision(
                Outcome.DELIVERED,
                None,
                "HTTP 409: the endpoint had already processed this webhook-id; counted as delivered",
            )
        if 300 <= status < 400:
            return Decision(
                Outcome.DEAD,
                None,
                f"HTTP {status}: redirects are not followed; "
                "set the webhook URL to the final address",
            )
        if not is_retryable_status(status):
            return Decision(
                Outcome.DEAD,
                None,
                f"HTTP {status}: a client error other than 408, 409 and 429 is not retried",
            )
        what = f"HTTP {status}"
    elif failure is not None:
        if not failure.retryable:
            return Decision(Outcome.DEAD, None, f"{failure.message}; not retried")
        what = failure.message
        retry_after = None
    else:
        raise ValueError("an attempt ends with a status or a failure")

    if attempt >= policy.max_attempts:
        return Decision(
            Outcome.DEAD,
            None,
            f"{what}; gave up after {attempt} attempt{'s' if attempt != 1 else ''} "
            "(retry schedule exhausted)",
        )
    step = policy.schedule[attempt - 1]
    uniform = rng.uniform if rng is not None else random.uniform
    delay = step * uniform(1 - policy.jitter, 1 + policy.jitter)
    note = ""
    if retry_after is not None:
        cap = max(policy.retry_after_max, delay)
        if retry_after > cap:
            note = f" (Retry-After {format_duration(retry_after)} clamped to the maximum)"
        elif retry_after > delay:
            note = " (as Retry-After asked)"
        delay = max(delay, min(retry_after, cap))
    return Decision(
        Outcome.RETRY,
        delay,
        f"{what}; attempt {attempt + 1} of {policy.max_attempts} in {format_duration(delay)}{note}",
    )
