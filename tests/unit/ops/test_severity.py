"""The severity table and the delivery verdict, as pure functions."""

from __future__ import annotations

import pytest

from onepass.ops.severity import (
    Finding,
    Severity,
    assess_deliveries,
    classify,
    duration_text,
    name_list,
    p95,
)


def test_classify_without_findings_is_ok() -> None:
    assert classify([]) == (Severity.OK, [])


def test_classify_highest_severity_wins_and_reasons_come_worst_first() -> None:
    severity, reasons = classify(
        [
            Finding(Severity.SEV3, "dead letters for rp1"),
            Finding(Severity.SEV1, "the JWKS does not answer"),
            Finding(Severity.SEV2, "slow"),
        ]
    )
    assert severity is Severity.SEV1
    assert reasons == ["sev1: the JWKS does not answer", "sev2: slow", "sev3: dead letters for rp1"]


@pytest.mark.parametrize(
    ("severity", "number"),
    [(Severity.OK, 0), (Severity.SEV1, 1), (Severity.SEV2, 2), (Severity.SEV3, 3)],
)
def test_severity_number_is_the_exit_status(severity: Severity, number: int) -> None:
    assert severity.number == number


def test_severity_of_number_refuses_anything_but_1_2_3() -> None:
    assert Severity.of_number(2) is Severity.SEV2
    with pytest.raises(ValueError, match="1, 2 or 3"):
        Severity.of_number(4)


def test_p95_uses_the_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([0.5]) == 0.5
    assert p95([float(n) for n in range(1, 21)]) == 19.0
    assert p95([0.1] * 11 + [3.0]) == 3.0  # 12 samples: the 95th percentile is the largest


def test_one_rp_failing_alone_is_not_across_the_board() -> None:
    verdict = assess_deliveries(
        [("rp1", "retry", "http_status", 50), ("rp2", "delivered", None, 50)], 0.5
    )
    assert verdict.failing_apps == ["rp1"]
    assert verdict.failure_ratio == 0.5
    assert not verdict.across_the_board


def test_most_attempts_failing_for_several_rps_is_across_the_board() -> None:
    verdict = assess_deliveries(
        [
            ("rp1", "retry", "connection", 40),
            ("rp1", "dead", "connection", 5),
            ("rp2", "retry", "connection", 30),
            ("rp2", "delivered", None, 2),
            ("rp3", "delivered", None, 10),
        ],
        0.5,
    )
    assert verdict.across_the_board
    assert verdict.failing_apps == ["rp1", "rp2"]
    assert verdict.common_error == "connection"
    assert (verdict.failed, verdict.attempts, verdict.active_apps) == (75, 87, 3)


def test_discarded_attempts_do_not_count() -> None:
    verdict = assess_deliveries(
        [("rp1", "discarded", None, 100), ("rp2", "discarded", None, 100)], 0.5
    )
    assert verdict.attempts == 0 and not verdict.across_the_board


def test_failures_below_the_ratio_are_not_across_the_board() -> None:
    verdict = assess_deliveries(
        [
            ("rp1", "retry", "timeout", 6),
            ("rp1", "delivered", None, 5),
            ("rp2", "retry", "timeout", 6),
            ("rp2", "delivered", None, 5),
            ("rp3", "delivered", None, 100),
        ],
        0.5,
    )
    assert verdict.failing_apps == ["rp1", "rp2"] and not verdict.across_the_board


def test_duration_text_reads_well() -> None:
    assert duration_text(45) == "45 s"
    assert duration_text(14 * 60 + 5) == "14 min"
    assert duration_text(3 * 3600 + 20 * 60) == "3 h 20 min"
    assert duration_text(2 * 3600) == "2 h"


def test_name_list_is_short() -> None:
    assert name_list([]) == ""
    assert name_list(["a"]) == "a"
    assert name_list(["a", "b", "c"]) == "a, b and c"
    assert name_list([str(n) for n in range(8)]) == "0, 1, 2, 3, 4 and 3 more"
