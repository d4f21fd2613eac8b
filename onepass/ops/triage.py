"""``onepass triage``: the playbook's first-line checks, and the severity they add up to.

Two kinds of checks, classified by the severity table (``severity.py``):

- against the running server, over HTTP (``http``: an ``httpx.AsyncClient`` whose
  ``base_url`` is the server's): ``GET /up``, the discovery document, the JWKS, and the
  token endpoint. Triage holds no client secret, so it checks token issuance the way
  an RP with a wrong secret would: ``POST /token`` for a client that cannot exist must
  answer a well-formed ``401 invalid_client`` at once. That answer needs the server to
  parse the request, look the client up in the database (or its cache) and run the
  constant-time secret check; a 5xx (``503 temporarily_unavailable``: the client
  registry is unreachable) or no answer means every RP's token requests fail too. A
  missing signing key, the other way issuance fails, is ``/up``'s ``signing_keys``.
  Every probe runs ``rounds`` times; their p95 latency is the sev2 latency check.
- against the database (``session``): webhook deliveries failing across RPs, the
  dispatchers' liveness, the backlog, and the dead-letter queue per RP.

The service takes the HTTP client, the session and a clock so that tests run it
against a real app and database with a frozen clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.cache import RedisCache
from onepass.clock import Clock
from onepass.oauth.models import OAuthApplication
from onepass.ops.severity import (
    Finding,
    Severity,
    assess_deliveries,
    classify,
    duration_text,
    name_list,
    p95,
)
from onepass.settings import Settings
from onepass.webhooks import outbox
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry

# A client_id that cannot exist: 1pass generates client ids of letters and digits only.
PROBE_CLIENT_ID = "onepass-triage-probe"
UP_PATH = "/up"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/token"
# At most this many recent attempts are read for the delivery check: enough for a
# ratio, cheap however busy the dispatchers are (the newest first, through the index
# on started_at).
DELIVERY_SAMPLE = 10_000


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


async def triage(
    http: httpx.AsyncClient,
    session: AsyncSession | None,
    clock: Clock,
    thresholds: Thresholds,
    *,
    database_problem: str | None = None,
    timer: Callable[[], float] = time.perf_counter,
    redis: RedisCache | None = None,
) -> Report:
    """Run every check; ``session`` None (with ``database_problem`` saying why) skips
    the database checks and reports the database check as failed. ``redis``: the
    server's Redis (``ONEPASS_REDIS_URL``), when it has one."""
    checks = await http_checks(http, thresholds, timer=timer)
    if session is None:
        checks.append(_database_failed(database_problem or "no database session"))
    else:
        checks.extend(await database_checks(session, clock.now(), thresholds))
    checks.append(await check_redis(redis, thresholds.timeout))
    return report_of(checks)


async def check_redis(redis: RedisCache | None, within: float) -> CheckResult:
    """Redis down is sev2: requests go on, on each process's own cache (RedisCache)."""
    if redis is None:
        return CheckResult("redis", True, None, "not configured: each process caches alone")
    try:
        async with asyncio.timeout(within):
            answers = await redis.ping()
    except TimeoutError:
        answers = False
    if answers:
        return CheckResult("redis", True, True, "answers")
    return CheckResult(
        "redis",
        False,
        False,
        "does not answer",
        [
            Finding(
                Severity.SEV2,
                "Redis (ONEPASS_REDIS_URL) does not answer: logins, tokens and merges go on, "
                "each server process on its own cache (login throttling per process, "
                "canonical-user answers kept 5 s). Bring Redis back, then run "
                "`onepass cache invalidate-canonical --all` once.",
            )
        ],
    )


# -- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    status: int | None  # None: no answer
    elapsed: float
    body: Any = None  # the parsed JSON body, if any
    error: str | None = None  # why there was no answer


async def probe(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    wait: float,
    timer: Callable[[], float] = time.perf_counter,
    **options: Any,
) -> Probe:
    """One request; ``wait``: seconds before giving up on an answer."""
    started = timer()
    try:
        # Both bounds: httpx's for the network, asyncio's for any transport.
        async with asyncio.timeout(wait):
            response = await http.request(method, path, timeout=wait, **options)
    except (TimeoutError, httpx.TimeoutException):
        return Probe(None, timer() - started, error=f"no answer within {wait:g} s")
    except httpx.HTTPError as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else "no answer"
        return Probe(None, timer() - started, error=f"{type(exc).__name__}: {detail}")
    except OSError as exc:
        return Probe(None, timer() - started, error=f"{type(exc).__name__}: {exc}"[:200])
    elapsed = timer() - started
    try:
        body = response.json()
    except ValueError:
        body = None
    return Probe(response.status_code, elapsed, body)


def _requests() -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        "up": ("GET", UP_PATH, {}),
        "discovery": ("GET", DISCOVERY_PATH, {}),
        "jwks": ("GET", JWKS_PATH, {}),
        "token_endpoint": (
            "POST",
            TOKEN_PATH,
            {
                "data": {"grant_type": "client_credentials"},
                "auth": (PROBE_CLIENT_ID, "not-a-secret"),
                "headers": {"accept": "application/json"},
            },
        ),
    }


async def http_checks(
    http: httpx.AsyncClient,
    thresholds: Thresholds,
    *,
    timer: Callable[[], float] = time.perf_counter,
) -> list[CheckResult]:
    """The four probes, ``thresholds.rounds`` times each (a probe that got no answer
    is not retried: one timeout is enough to know), then the latency check."""
    requests = _requests()
    probes: dict[str, list[Probe]] = {name: [] for name in requests}
    for round_ in range(thresholds.rounds):
        names = [n for n in requests if round_ == 0 or probes[n][0].status is not None]
        if not names:
            break
        results = await asyncio.gather(
            *(
                probe(
                    http,
                    requests[n][0],
                    requests[n][1],
                    thresholds.timeout,
                    timer,
                    **requests[n][2],
                )
                for n in names
            )
        )
        for name, result in zip(names, results, strict=True):
            probes[name].append(result)
    base = str(http.base_url).rstrip("/")
    checks = [
        _check_up(probes["up"], base),
        _check_discovery(probes["discovery"], base),
        _check_jwks(probes["jwks"], base),
        _check_token(probes["token_endpoint"], base),
    ]
    samples = [p.elapsed for results in probes.values() for p in results if p.status is not None]
    checks.append(_check_latency(samples, thresholds.latency_p95))
    return checks


def _first_failure(probes: list[Probe], ok: Callable[[Probe], bool]) -> tuple[Probe | None, str]:
    failures = [p for p in probes if not ok(p)]
    if not failures:
        return None, ""
    tally = "" if len(probes) == 1 else f" ({len(failures)} of {len(probes)} requests)"
    return failures[0], tally


def _answer(p: Probe) -> str:
    if p.status is None:
        return f"no answer ({p.error})"
    error = p.body.get("error") if isinstance(p.body, dict) else None
    return f"HTTP {p.status}" + (f" {error}" if isinstance(error, str) else "")


def _check_up(probes: list[Probe], base: str) -> CheckResult:
    bad, tally = _first_failure(probes, lambda p: p.status == 200)
    if bad is None:
        return CheckResult("up", True, 200, "200: database, signing keys and key ring healthy")
    url = f"{base}{UP_PATH}"
    if bad.status is None:
        detail = f"no answer: {bad.error}{tally}"
        reason = (
            f"GET {url} gets no answer ({bad.error}): the server is down or unreachable and "
            "every RP's login is down. Check the processes and the load balancer; if a deploy "
            "just happened, roll back to the last green release."
        )
    else:
        checks = bad.body.get("checks") if isinstance(bad.body, dict) else None
        failing = (
            [f"{k}: {v}" for k, v in checks.items() if v != "ok"]
            if isinstance(checks, dict)
            else []
        )
        said = f" ({'; '.join(failing)})" if failing else ""
        detail = f"HTTP {bad.status}{said}{tally}"
        if bad.status == 404:
            reason = (
                f"GET {url} answered 404: this is not 1pass or a proxy route is missing, and "
                "RPs cannot log in. Check --base-url / ONEPASS_ISSUER and the load balancer."
            )
        else:
            reason = (
                f"GET {url} answered {bad.status}{said}: every RP's login is down. "
                "docs/operations.md, 'First-line triage', says what each check means."
            )
    return CheckResult("up", False, bad.status, detail, [Finding(Severity.SEV1, reason)])


def _check_discovery(probes: list[Probe], base: str) -> CheckResult:
    def ok(p: Probe) -> bool:
        return (
            p.status == 200
            and isinstance(p.body, dict)
            and isinstance(p.body.get("issuer"), str)
            and isinstance(p.body.get("jwks_uri"), str)
        )

    bad, tally = _first_failure(probes, ok)
    if bad is None:
        return CheckResult("discovery", True, 200, "200 with issuer and jwks_uri")
    answer = _answer(bad) if bad.status != 200 else "HTTP 200 without issuer and jwks_uri"
    return CheckResult(
        "discovery",
        False,
        bad.status,
        f"{answer}{tally}",
        [
            Finding(
                Severity.SEV1,
                f"the discovery document ({base}{DISCOVERY_PATH}) gives {answer}: RP "
                "libraries that read it cannot start a login.",
            )
        ],
    )


def _check_jwks(probes: list[Probe], base: str) -> CheckResult:
    def keys(p: Probe) -> int:
        found = p.body.get("keys") if isinstance(p.body, dict) else None
        return len(found) if isinstance(found, list) else 0

    bad, tally = _first_failure(probes, lambda p: p.status == 200 and keys(p) > 0)
    if bad is None:
        n = min(keys(p) for p in probes)
        return CheckResult("jwks", True, n, f"200 with {n} key(s)")
    answer = _answer(bad) if bad.status != 200 else "HTTP 200 with no key"
    return CheckResult(
        "jwks",
        False,
        keys(bad) if bad.status == 200 else bad.status,
        f"{answer}{tally}",
        [
            Finding(
                Severity.SEV1,
                f"the JWKS ({base}{JWKS_PATH}) gives {answer}: RPs cannot verify any token, "
                "so every RP's login is down. Check `onepass keys list`.",
            )
        ],
    )


def _check_token(probes: list[Probe], base: str) -> CheckResult:
    def ok(p: Probe) -> bool:
        return (
            p.status == 401 and isinstance(p.body, dict) and p.body.get("error") == "invalid_client"
        )

    bad, tally = _first_failure(probes, ok)
    if bad is None:
        return CheckResult(
            "token_endpoint", True, 401, "an unknown client gets 401 invalid_client, as it should"
        )
    url = f"{base}{TOKEN_PATH}"
    description = bad.body.get("error_description") if isinstance(bad.body, dict) else None
    said = f": {description}" if isinstance(description, str) and description else ""
    answer = _answer(bad)
    if bad.status is None or bad.status >= 500:
        reason = (
            f"POST {url} gives {answer}{said} instead of 401 invalid_client to an unknown "
            "client: every token request fails, so every RP's login is down."
        )
        if bad.status == 503:
            reason += " 503 means the client registry (the database) or the signing keys are unavailable: see /up."
    else:
        reason = (
            f"POST {url} answered {answer}{said} to an unknown client instead of 401 "
            "invalid_client: the token endpoint is not working as it should (a proxy in "
            "front of it, or another server at this URL?); RPs' token requests are likely failing."
        )
    return CheckResult(
        "token_endpoint",
        False,
        bad.status,
        f"{answer}{said}{tally}",
        [Finding(Severity.SEV1, reason)],
    )


def _check_latency(samples: list[float], limit: float) -> CheckResult:
    value = p95(samples)
    if value is None:
        return CheckResult("latency_p95", False, None, "not measured: no request was answered")
    shown = round(value, 3)
    detail = f"p95 {shown} s over {len(samples)} requests (limit {limit:g} s)"
    if value <= limit:
        return CheckResult("latency_p95", True, shown, detail)
    return CheckResult(
        "latency_p95",
        False,
        shown,
        detail,
        [
            Finding(
                Severity.SEV2,
                f"the server is slow: p95 latency {shown} s over triage's {len(samples)} requests "
                f"(limit {limit:g} s). If it lasts (run triage again, or look at "
                "onepass_http_request_duration_seconds in /metrics), check CPU, the database "
                "and the number of workers.",
            )
        ],
    )


# -- database ----------------------------------------------------------------------------


def _database_failed(problem: str) -> CheckResult:
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
            return checks
    except Exception as exc:
        # Nothing here is worth a traceback at 3 a.m.: say what failed and go on.
        with contextlib.suppress(Exception):
            await session.rollback()
        if isinstance(exc, TimeoutError):
            return [_database_failed(f"no answer within {thresholds.timeout:g} s")]
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        if "no such table" in first or "does not exist" in first:
            first += " (is the schema migrated? is ONEPASS_DATABASE_URL the server's?)"
        return [_database_failed(f"{type(exc).__name__}: {first}".rstrip(": "))]


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
    entries = WebhookOutboxEntry
    stall = timedelta(seconds=thresholds.dispatcher_stall)
    overdue, oldest = (
        await session.execute(
            select(func.count(), func.min(entries.due_at)).where(
                entries.delivered_at.is_(None),
                entries.dlq_at.is_(None),
                entries.due_at <= now - stall,
                entries.lease_expires_at.is_(None) | (entries.lease_expires_at <= now),
            )
        )
    ).one()
    last = await session.scalar(select(func.max(WebhookDeliveryAttempt.started_at)))
    overdue = int(overdue or 0)
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
    entries = WebhookOutboxEntry
    due, oldest = (
        await session.execute(
            select(func.count(), func.min(entries.due_at)).where(
                entries.delivered_at.is_(None), entries.dlq_at.is_(None), entries.due_at <= now
            )
        )
    ).one()
    due = int(due or 0)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
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
    counts = await outbox.dead_counts(session)
    if not counts:
        return CheckResult("webhook_dead_letters", True, 0, "no dead-lettered webhook")
    names = dict(
        (
            await session.execute(
                select(OAuthApplication.id, OAuthApplication.client_id).where(
                    OAuthApplication.id.in_([app_id for app_id, _ in counts])
                )
            )
        ).all()
    )
    total = sum(n for _, n in counts)
    per_app = [(names.get(app_id, f"#{app_id}"), n) for app_id, n in counts]
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
