"""Triage's checks of this environment's configuration: settings whose absence breaks
no request but leaves a step of the playbook undone."""

from __future__ import annotations

from onepass.ops.triage.report import CheckResult
from onepass.settings import Settings


def check_escalation(settings: Settings) -> CheckResult:
    """``onepass incidents escalate`` pages through ONEPASS_ESCALATION_WEBHOOK_URL; without
    it a sev1 is recorded and logged but nobody is paged. Not a severity: nothing is
    broken for users, but the check fails so the table shows it."""
    if settings.escalation_webhook_url:
        return CheckResult("escalation", True, "configured", "incidents escalate pages there")
    return CheckResult(
        "escalation",
        False,
        "not configured",
        "ONEPASS_ESCALATION_WEBHOOK_URL is not set: `incidents escalate` notifies nobody",
    )
