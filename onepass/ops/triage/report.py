"""Triage's checks and their verdict: what each check found, and the severity the
findings add up to (``severity.classify``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from onepass.ops.severity import Finding, Severity, classify
from onepass.settings import Settings


@dataclass(frozen=True)
class Thresholds:
    """When a check fails; from ``ONEPASS_TRIAGE_*`` (see docs/operations.md)."""

    timeout: float = 5.0
    rounds: int = 3
    latency_p95: float = 2.0
    webhook_window: float = 900.0
    webhook_failure_ratio: float = 0.5
    backlog_max_age: float = 600.0
    dispatcher_stall: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            timeout=settings.triage_timeout,
            rounds=settings.triage_probe_rounds,
            latency_p95=settings.triage_latency_p95,
            webhook_window=settings.triage_webhook_window,
            webhook_failure_ratio=settings.triage_webhook_failure_ratio,
            backlog_max_age=settings.triage_backlog_max_age,
            dispatcher_stall=settings.triage_dispatcher_stall,
        )


@dataclass
class CheckResult:
    name: str
    ok: bool
    value: Any
    detail: str
    findings: list[Finding] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "value": self.value, "detail": self.detail}


@dataclass
class Report:
    severity: Severity
    checks: list[CheckResult]
    reasons: list[str]

    @property
    def exit_code(self) -> int:
        return self.severity.number

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "checks": [c.as_json() for c in self.checks],
            "reasons": self.reasons,
        }


def report_of(checks: list[CheckResult]) -> Report:
    severity, reasons = classify(f for c in checks for f in c.findings)
    return Report(severity, checks, reasons)
