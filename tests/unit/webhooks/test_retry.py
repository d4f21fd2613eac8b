"""The delivery policy and retry schedule, as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from onepass.durations import parse_duration, parse_schedule
from onepass.webhooks.retry import (
    Outcome,
    RetryPolicy,
    TransportFailure,
    decide,
    parse_retry_after,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = TransportFailure("timeout", "no response within 10 s", True)


def test_default_schedule_is_svix_like_about_27_hours_over_8_attempts() -> None:
    policy = RetryPolicy.default()
    assert policy.schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert policy.max_attempts == 8
    assert 27 * 3600 < sum(policy.schedule) < 28 * 3600
    assert policy.jitter == 0.2


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered_without_error(status: int) -> None:
    decision = decide(RetryPolicy.default(), attempt=1, status=status)
    assert decision.outcome is Outcome.DELIVERED and decision.reason is None


def test_409_is_delivered_and_says_why_even_on_the_last_attempt() -> None:
    policy = RetryPolicy.default()
    decision = decide(policy, attempt=policy.max_attempts, status=409)
    assert decision.outcome is Outcome.DELIVERED
    assert "409" in decision.reason and "already processed" in decision.reason


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408, 429])
def test_retryable_statuses_follow_the_schedule_with_jitter(status: int) -> None:
    policy = RetryPolicy.default()
    rng = random.Random(7)
    for attempt, step in enumerate(policy.schedule, start=1):
        decision = decide(policy, attempt=attempt, status=status, rng=rng)
        assert decision.outcome is Outcome.RETRY
        assert step * 0.8 <= decision.delay <= step * 1.2
        assert f"HTTP {status}" in decision.reason
        assert f"attempt {attempt + 1} of 8" in decision.reason


def test_jitter_spreads_delays_across_the_window() -> None:
    policy = RetryPolicy((100.0,))
    rng = random.Random(1)
    delays = [decide(policy, attempt=1, status=503, rng=rng).delay for _ in range(500)]
    assert min(delays) < 85 and max(delays) > 115
    assert all(80 <= d <= 120 for d in delays)


def test_exhausted_schedule_dead_letters_with_the_reason() -> None:
    policy = RetryPolicy.default()
    decision = decide(policy, attempt=8, status=503)
    assert decision.outcome is Outcome.DEAD
    assert "HTTP 503" in decision.reason and "gave up after 8 attempts" in decision.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 413, 422])
def test_other_4xx_dead_letter_at_once(status: int) -> None:
    decision = decide(RetryPolicy.default(), attempt=1, status=status)
    assert decision.outcome is Outcome.DEAD
    assert f"HTTP {status}" in decision.reason and "not retried" in decision.reason


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_dead_letter_saying_they_are_not_followed(status: int) -> None:
    decision = decide(RetryPolicy.default(), attempt=1, status=status)
    assert decision.outcome is Outcome.DEAD and "redirects are not followed" in decision.reason


def test_transport_failures_retry_or_not_as_they_say() -> None:
    policy = RetryPolicy((5.0,))
    retry = decide(policy, attempt=1, status=None, failure=TIMEOUT, rng=random.Random(0))
    assert retry.outcome is Outcome.RETRY and "no response within 10 s" in retry.reason
    dead = decide(policy, attempt=2, status=None, failure=TIMEOUT)
    assert dead.outcome is Outcome.DEAD and "gave up after 2 attempts" in dead.reason
    refused = TransportFailure("unsafe_target", "127.0.0.1 is a loopback address", False)
    now_dead = decide(policy, attempt=1, status=None, failure=refused)
    assert now_dead.outcome is Outcome.DEAD and "loopback" in now_dead.reason


def test_retry_after_longer_than_the_step_is_honoured() -> None:
    policy = RetryPolicy((5.0, 300.0), jitter=0.0)
    decision = decide(policy, attempt=1, status=429, retry_after=120.0)
    assert decision.delay == 120.0 and "Retry-After" in decision.reason


def test_retry_after_never_shortens_the_step() -> None:
    policy = RetryPolicy((300.0,), jitter=0.0)
    assert decide(policy, attempt=1, status=503, retry_after=1.0).delay == 300.0


def test_retry_after_is_clamped_to_the_maximum() -> None:
    policy = RetryPolicy((5.0,), jitter=0.0, retry_after_max=600.0)
    decision = decide(policy, attempt=1, status=503, retry_after=10**9)
    assert decision.delay == 600.0 and "clamped" in decision.reason


def test_retry_after_is_ignored_for_a_4xx_that_is_not_retried() -> None:
    decision = decide(RetryPolicy.default(), attempt=1, status=400, retry_after=60.0)
    assert decision.outcome is Outcome.DEAD and decision.delay is None


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    later = format_datetime(NOW + timedelta(minutes=3), usegmt=True)
    assert parse_retry_after(later, NOW) == 180.0
    past = format_datetime(NOW - timedelta(minutes=3), usegmt=True)
    assert parse_retry_after(past, NOW) == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-5", "1.5", "9" * 40, "Mon, 99 Foo 2026", "²", "١٢"]
)
def test_parse_retry_after_ignores_what_it_cannot_read(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("250ms", 0.25),
        ("5s", 5),
        ("30m", 1800),
        ("72h", 259200),
        ("3d", 259200),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5 weeks", "-1s", "1e3", "72hours"])
def test_parse_duration_refuses_nonsense_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30s, 5m, 72h"):
        parse_duration(text)


def test_parse_schedule() -> None:
    assert parse_schedule("5s, 5m,30m") == (5.0, 300.0, 1800.0)
    assert parse_schedule("") == ()
    with pytest.raises(ValueError):
        parse_schedule("5s,soon")


@pytest.mark.parametrize("status", [200, 204])
def test_a_back_channel_logout_is_delivered_by_200_or_204_only(status: int) -> None:
    decision = decide(RetryPolicy.default(), attempt=1, status=status, success={200, 204})
    assert decision.outcome is Outcome.DELIVERED and decision.reason is None


@pytest.mark.parametrize("status", [201, 202, 299, 409, 400, 401])
def test_a_back_channel_logout_answered_otherwise_dies_at_once(status: int) -> None:
    decision = decide(RetryPolicy.default(), attempt=1, status=status, success={200, 204})
    assert decision.outcome is Outcome.DEAD
    assert f"HTTP {status}" in (decision.reason or "")


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_a_back_channel_logout_answered_5xx_is_retried_like_a_webhook(status: int) -> None:
    decision = decide(
        RetryPolicy.default(), attempt=1, status=status, success={200, 204}, rng=random.Random(1)
    )
    assert decision.outcome is Outcome.RETRY
