"""Triage's checks against the database: webhook deliveries failing across RPs, the
dispatchers' liveness, the backlog, and the dead-letter queue per RP (the outbox's
counts are the read model's, ``webhooks.outbox_queries``); mail dead or retrying."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.mail.models import MailOutboxEntry
from onepass.ops import releases
from onepass.ops.severity import Finding, Severity, assess_deliveries, duration_text, name_list
from onepass.ops.triage.report import CheckResult, Thresholds
from onepass.release import current as current_release
from onepass.webhooks import outbox_queries
from onepass.webhooks.models import WebhookDeliveryAttempt

# At most this many recent attempts are read for the delivery check: enough for a
# ratio, cheap however busy the dispatchers are (the newest first, through the index
# on started_at).
DELIVERY_SAMPLE = 10_000


def database_failed(problem: str) -> CheckResult:
    return CheckResult(
        "database",
        False,
        None,
        problem,
        [
            Finding(
                Severity.SEV2,
                f"triage could not read the database ({problem}), so the webhook checks did "
                "not run. If /up is healthy, check ONEPASS_DATABASE_URL where you ran triage; "
                "otherwise the database is down (see the sev1 above).",
            )
        ],
    )


async def database_checks(
    session: AsyncSession, now: datetime, thresholds: Thresholds
) -> list[CheckResult]:
    """The webhook checks; a database that fails or does not answer is one failed check."""
    try:
        async with asyncio.timeout(thresholds.timeout):
            await session.execute(text("SELECT 1"))
            checks = [CheckResult("database", True, None, "answers")]
            checks.append(await _check_deliveries(session, now, thresholds))
            checks.append(await _check_dispatchers(session, now, thresholds))
            checks.append(await _check_backlog(session, now, thresholds))
            checks.append(await _check_dead_letters(session))
            checks.append(await _check_mail(session, now))
            checks.append(await _check_releases(session, now))
            return checks
    except Exception as exc:
        # Nothing here is worth a traceback at 3 a.m.: say what failed and go on.
        with contextlib.suppress(Exception):
            await session.rollback()
        if isinstance(exc, TimeoutError):
            return [database_failed(f"no answer within {thresholds.timeout:g} s")]
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        if "no such table" in first or "does not exist" in first:
            first += " (is the schema migrated? is ONEPASS_DATABASE_URL the server's?)"
        return [database_failed(f"{type(exc).__name__}: {first}".rstrip(": "))]


async def _check_deliveries(
    session: AsyncSession, now: datetime, thresholds: Thresholds
) -> CheckResult:
    attempts = WebhookDeliveryAttempt
    window = timedelta(seconds=thresholds.webhook_window)
    recent = (
        select(attempts.oauth_application_id, attempts.outcome, attempts.error_class)
        .where(attempts.started_at >= now - window)
        .order_by(attempts.started_at.desc())
        .limit(DELIVERY_SAMPLE)
        .subquery()
    )
    rows = await session.execute(
        select(OAuthApplication.client_id, recent.c.outcome, recent.c.error_class, func.count())
        .select_from(recent)
        .join(OAuthApplication, OAuthApplication.id == recent.c.oauth_application_id)
        .group_by(OAuthApplication.client_id, recent.c.outcome, recent.c.error_class)
    )
    verdict = assess_deliveries(
        [(c, o, e, int(n)) for c, o, e, n in rows.all()], thresholds.webhook_failure_ratio
    )
    span = duration_text(thresholds.webhook_window)
    if not verdict.attempts:
        return CheckResult(
            "webhook_deliveries", True, None, f"no delivery attempt in the last {span}"
        )
    percent = round(100 * verdict.failure_ratio)
    detail = (
        f"{verdict.failed} of {verdict.attempts} attempts in the last {span} failed ({percent}%)"
    )
    if verdict.failing_apps:
        detail += f"; mostly failing: {name_list(verdict.failing_apps)}"
    if verdict.common_error:
        detail += f"; most common error: {verdict.common_error}"
    value = round(verdict.failure_ratio, 3)
    if not verdict.across_the_board:
        return CheckResult("webhook_deliveries", True, value, detail)
    hint = {
        "dns": " The same DNS errors for several RPs point at 1pass's own network or resolver.",
        "connection": " Connection errors for several RPs point at 1pass's own network or egress.",
        "timeout": " Timeouts for several RPs point at 1pass's own network, or overloaded dispatchers.",
        "no_signing_key": " No signing key: check `onepass webhooks keys list APP_ID` and ONEPASS_SECRET_KEY.",
        "no_logout_signing_key": " Logout tokens cannot be signed: check `onepass keys list` and ONEPASS_SECRET_KEY.",
    }.get(verdict.common_error or "", "")
    reason = (
        f"webhook deliveries are failing across the board: {percent}% of {verdict.attempts} "
        f"attempts in the last {span} failed, for {len(verdict.failing_apps)} RPs "
        f"({name_list(verdict.failing_apps)}); most common error: {verdict.common_error}.{hint} "
        "Details: `onepass webhooks list --status pending --app CLIENT_ID`, `onepass webhooks show ENTRY_ID`."
    )
    return CheckResult("webhook_deliveries", False, value, detail, [Finding(Severity.SEV2, reason)])


async def _check_dispatchers(
    session: AsyncSession, now: datetime, thresholds: Thresholds
) -> CheckResult:
    stall = timedelta(seconds=thresholds.dispatcher_stall)
    unclaimed = await outbox_queries.waiting_unclaimed(session, now, stall)
    overdue, oldest = unclaimed.count, unclaimed.oldest_due_at
    last = await session.scalar(select(func.max(WebhookDeliveryAttempt.started_at)))
    last_text = (
        f"last attempt {duration_text((now - last).total_seconds())} ago"
        if last
        else "no attempt ever"
    )
    if not overdue:
        return CheckResult("webhook_dispatchers", True, 0, f"nothing overdue; {last_text}")
    detail = f"{overdue} entries overdue by over {duration_text(thresholds.dispatcher_stall)}; {last_text}"
    if last is not None and last > now - stall:
        return CheckResult(
            "webhook_dispatchers", True, overdue, detail + " (dispatchers are working)"
        )
    waited = duration_text((now - oldest).total_seconds()) if oldest is not None else "?"
    since = (
        f"the last delivery attempt was {duration_text((now - last).total_seconds())} ago"
        if last is not None
        else "no delivery was ever attempted"
    )
    reason = (
        f"the webhook dispatchers look down: {overdue} deliveries are due and unclaimed, the "
        f"oldest for {waited}, and {since}. "
        "On PostgreSQL start `onepass webhooks dispatch` (and look at its logs); on SQLite look "
        "for `webhooks.embedded_dispatcher` in the server's log."
    )
    return CheckResult(
        "webhook_dispatchers", False, overdue, detail, [Finding(Severity.SEV2, reason)]
    )


async def _check_backlog(
    session: AsyncSession, now: datetime, thresholds: Thresholds
) -> CheckResult:
    backlog = await outbox_queries.due_now(session, now)
    due, age = backlog.count, backlog.oldest_age(now)
    limit = duration_text(thresholds.backlog_max_age)
    detail = (
        f"{due} due; the oldest waits for {duration_text(age)} (limit {limit})"
        if due
        else "nothing due"
    )
    if age <= thresholds.backlog_max_age:
        return CheckResult("webhook_backlog", True, int(age), detail)
    reason = (
        f"the webhook backlog is behind: the oldest due delivery has waited {duration_text(age)} "
        f"(limit {limit}) and {due} are due. Are the dispatchers running and keeping up? Add "
        "`--concurrency` or dispatcher processes when RPs are slow."
    )
    return CheckResult("webhook_backlog", False, int(age), detail, [Finding(Severity.SEV2, reason)])


async def _check_dead_letters(session: AsyncSession) -> CheckResult:
    counts = await outbox_queries.dead_by_application(session)
    if not counts:
        return CheckResult("webhook_dead_letters", True, 0, "no dead-lettered webhook")
    total = sum(d.dead_count for d in counts)
    per_app = [(d.client_id or f"#{d.oauth_application_id}", d.dead_count) for d in counts]
    detail = ", ".join(f"{client_id}: {n}" for client_id, n in per_app[:10])
    if len(per_app) > 10:
        detail += f" and {len(per_app) - 10} more RPs"
    findings = [
        Finding(
            Severity.SEV3,
            f"{n} dead-lettered webhook(s) for RP {client_id}: see why with `onepass webhooks "
            f"list --status dead --app {client_id}`; once the RP is fixed, `onepass webhooks "
            f"replay-dlq {client_id}`.",
        )
        for client_id, n in per_app[:10]
    ]
    if len(per_app) > 10:
        findings.append(
            Finding(
                Severity.SEV3,
                f"and {len(per_app) - 10} more RPs with dead letters: `onepass webhooks dead-counts`.",
            )
        )
    return CheckResult("webhook_dead_letters", False, total, detail, findings)


MAIL_WINDOW = timedelta(hours=24)


async def _check_mail(session: AsyncSession, now: datetime) -> CheckResult:
    """Mail that died in the last 24 hours, or is being retried: people asked for a
    reset link (or were told of a change) and did not get it (sev3)."""
    dead = await session.scalar(
        select(func.count()).where(MailOutboxEntry.dead_at >= now - MAIL_WINDOW)
    )
    retrying = await session.scalar(
        select(func.count()).where(
            MailOutboxEntry.sent_at.is_(None),
            MailOutboxEntry.dead_at.is_(None),
            MailOutboxEntry.attempts > 0,
        )
    )
    if not dead and not retrying:
        return CheckResult("mail", True, 0, "no mail dead in 24 h or being retried")
    last_error = await session.scalar(
        select(MailOutboxEntry.last_error)
        .where(MailOutboxEntry.last_error.is_not(None), MailOutboxEntry.sent_at.is_(None))
        .order_by(MailOutboxEntry.id.desc())
        .limit(1)
    )
    detail = f"{dead or 0} dead in 24 h, {retrying or 0} being retried; last error: {last_error}"
    reason = (
        f"mail is not getting through ({detail}): people are not receiving their password "
        "reset links. See `onepass mail list --status dead` (and `--status pending`); check "
        "ONEPASS_SMTP_URL and the SMTP server's answer in the error."
    )
    return CheckResult("mail", False, dead or 0, detail, [Finding(Severity.SEV3, reason)])


async def _check_releases(session: AsyncSession, now: datetime) -> CheckResult:
    """The playbook's "which deploys are recent?": the releases the running server
    workers and dispatchers report (``ops.releases``), and whether they differ."""
    groups = await releases.running(session, now)
    value = [g.describe() for g in groups]
    mine = current_release()
    if not groups:
        return CheckResult(
            "releases",
            True,
            value,
            f"no process has reported in the last {releases.STALE_AFTER.seconds} s "
            f"(this triage runs {mine.label()})",
        )
    parts = [
        f"{len(g.processes)} on {g.release.label()} ({', '.join(sorted({p.host for p in g.processes}))})"
        for g in groups
    ]
    if len(groups) == 1:
        return CheckResult("releases", True, value, f"every process runs one release: {parts[0]}")
    reason = (
        "processes run different releases at once: "
        + "; ".join(parts)
        + ". During a rolling deploy this lasts minutes; if it lasts, a host missed the "
        "deploy or a rollback stopped half-way (docs/deploying.md, rolling back)."
    )
    return CheckResult("releases", False, value, "; ".join(parts), [Finding(Severity.SEV3, reason)])
