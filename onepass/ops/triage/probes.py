"""Triage's HTTP probes against the running server: ``GET /up``, the discovery
document, the JWKS and the token endpoint, ``rounds`` times each, and their p95 latency.

Triage holds no client secret, so it checks token issuance the way an RP with a wrong
secret would: ``POST /token`` for a client that cannot exist must answer a well-formed
``401 invalid_client`` at once. That answer needs the server to parse the request, look
the client up in the database (or its cache) and run the constant-time secret check; a
5xx (``503 temporarily_unavailable``: the client registry is unreachable) or no answer
means every RP's token requests fail too. A missing signing key, the other way
issuance fails, is ``/up``'s ``signing_keys``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from onepass.ops.severity import Finding, Severity, p95
from onepass.ops.triage.report import CheckResult, Thresholds

# A client_id that cannot exist: 1pass generates client ids of letters and digits only.
PROBE_CLIENT_ID = "onepass-triage-probe"
UP_PATH = "/up"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/token"


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
