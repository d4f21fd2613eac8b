"""Triage against the real app and database: each line of the severity table."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import text

from onepass.app import OnePass
from onepass.cache import RedisCache
from onepass.clock import Clock, FrozenClock, SystemClock
from onepass.db import Database
from onepass.ops import releases
from onepass.ops.releases import beat, run_heartbeat
from onepass.ops.severity import Severity
from onepass.ops.triage import Report, Thresholds, triage
from onepass.release import Release, current
from onepass.runtime import Runtime
from tests.conftest import database_stopped
from tests.e2e.server import free_port
from tests.smtp import SmtpServer
from tests.webhook_helpers import Receiver, dispatch_once, enqueue, make_webhook_app, status

CHECKS = [
    "up",
    "discovery",
    "jwks",
    "token_endpoint",
    "latency_p95",
    "database",
    "webhook_deliveries",
    "webhook_dispatchers",
    "webhook_backlog",
    "webhook_dead_letters",
    "mail",
    "releases",
    "redis",
]


async def run_triage(
    http: httpx.AsyncClient, database: Database, clock: Clock | None = None, **thresholds: object
) -> Report:
    values: dict[str, object] = {"rounds": 2, "timeout": 3.0}
    values.update(thresholds)
    async with database.sessionmaker() as session:
        return await triage(http, session, clock or SystemClock(), Thresholds(**values))  # type: ignore[arg-type]


def check(report: Report, name: str) -> dict[str, object]:
    return next(c for c in report.as_json()["checks"] if c["name"] == name)


async def test_triage_of_a_healthy_server_is_ok(http: httpx.AsyncClient, runtime: Runtime) -> None:
    report = await run_triage(http, runtime.database)
    data = report.as_json()
    assert data["severity"] == "ok" and report.exit_code == 0
    assert data["reasons"] == []
    assert [c["name"] for c in data["checks"]] == CHECKS
    assert all(set(c) == {"name", "ok", "value", "detail"} for c in data["checks"])
    assert all(c["ok"] for c in data["checks"]), data["checks"]
    assert check(report, "jwks")["value"] >= 2  # RS256 and ES256
    assert check(report, "token_endpoint")["value"] == 401


async def test_triage_is_sev1_when_up_fails_naming_the_check(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.database.session() as session:
        await session.execute(text("DELETE FROM signing_keys"))
    report = await run_triage(http, runtime.database)
    assert report.severity is Severity.SEV1 and report.exit_code == 1
    up = check(report, "up")
    assert up["ok"] is False and up["value"] == 503
    assert "signing_keys: no active key" in str(up["detail"])
    assert any(
        r.startswith("sev1: GET http://testserver/up answered 503") and "signing_keys" in r
        for r in report.reasons
    )


async def test_triage_is_sev1_when_the_database_is_down_and_says_token_requests_fail(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    database = app.services.runtime.database
    async with database_stopped(database):
        report = await run_triage(http, database)
    assert report.severity is Severity.SEV1
    assert check(report, "up")["ok"] is False
    assert "database: unreachable" in str(check(report, "up")["detail"])
    token = check(report, "token_endpoint")
    assert token["ok"] is False and token["value"] == 503
    assert any("every token request fails" in r for r in report.reasons)
    assert check(report, "database")["ok"] is False
    assert any(r.startswith("sev2: triage could not read the database") for r in report.reasons)
    assert "Traceback" not in "".join(report.reasons)


async def test_triage_of_a_server_that_does_not_answer_is_sev1(runtime: Runtime) -> None:
    port = free_port()  # nothing listens there
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        report = await run_triage(http, runtime.database, rounds=3)
    assert report.severity is Severity.SEV1
    for name in ("up", "discovery", "jwks", "token_endpoint"):
        assert check(report, name)["ok"] is False and check(report, name)["value"] is None
    assert check(report, "latency_p95")["detail"] == "not measured: no request was answered"
    assert report.reasons[0].startswith(f"sev1: GET http://127.0.0.1:{port}/up gets no answer")
    # The database checks still ran.
    assert check(report, "database")["ok"] is True


async def test_triage_of_something_else_answering_404_is_sev1(
    runtime: Runtime, receiver: Receiver
) -> None:
    receiver.default = status(404, body=b"not found")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{receiver.port}") as http:
        report = await run_triage(http, runtime.database)
    assert report.severity is Severity.SEV1
    assert "answered 404: this is not 1pass" in report.reasons[0]
    assert check(report, "token_endpoint")["value"] == 404


async def test_triage_is_sev2_when_p95_latency_is_over_the_limit(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    report = await run_triage(http, runtime.database, latency_p95=0.000001)
    assert report.severity is Severity.SEV2 and report.exit_code == 2
    latency = check(report, "latency_p95")
    assert latency["ok"] is False and latency["value"] > 0
    assert report.reasons[0].startswith("sev2: the server is slow: p95 latency")


async def test_triage_is_sev3_for_dead_letters_naming_each_rp(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    receiver.routes["/gone"] = status(410)
    receiver.routes["/bad"] = status(400)
    first = await make_webhook_app(runtime, receiver.url("/gone"), name="first")
    second = await make_webhook_app(runtime, receiver.url("/bad"), name="second")
    healthy = await make_webhook_app(runtime, receiver.url("/ok"), name="healthy")
    for _ in range(3):
        await enqueue(runtime, first.id)
    await enqueue(runtime, second.id)
    for _ in range(5):
        await enqueue(runtime, healthy.id)
    stats = await dispatch_once(runtime)
    assert (stats.dead, stats.delivered) == (4, 5)
    report = await run_triage(http, runtime.database)
    assert report.severity is Severity.SEV3 and report.exit_code == 3
    dead = check(report, "webhook_dead_letters")
    assert dead["ok"] is False and dead["value"] == 4
    assert report.reasons == [
        f"sev3: 3 dead-lettered webhook(s) for RP {first.client_id}: see why with `onepass "
        f"webhooks list --status dead --app {first.client_id}`; once the RP is fixed, "
        f"`onepass webhooks replay-dlq {first.client_id}`.",
        f"sev3: 1 dead-lettered webhook(s) for RP {second.client_id}: see why with `onepass "
        f"webhooks list --status dead --app {second.client_id}`; once the RP is fixed, "
        f"`onepass webhooks replay-dlq {second.client_id}`.",
    ]
    # 4 failed attempts out of 9: not "across the board" (sev2), though two RPs fail.
    assert check(report, "webhook_deliveries")["ok"] is True


async def test_triage_is_sev2_when_deliveries_fail_for_several_rps(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    receiver.routes["/a"] = status(503)
    receiver.routes["/b"] = status(502)
    a = await make_webhook_app(runtime, receiver.url("/a"), name="a")
    b = await make_webhook_app(runtime, receiver.url("/b"), name="b")
    for app_id in (a.id, a.id, b.id, b.id):
        await enqueue(runtime, app_id)
    assert (await dispatch_once(runtime)).retrying == 4
    report = await run_triage(http, runtime.database)
    assert report.severity is Severity.SEV2
    deliveries = check(report, "webhook_deliveries")
    assert deliveries["ok"] is False and deliveries["value"] == 1.0
    reason = report.reasons[0]
    assert reason.startswith("sev2: webhook deliveries are failing across the board: 100% of 4")
    assert a.client_id in reason and b.client_id in reason
    assert "most common error: http_status" in reason


async def test_triage_is_sev2_when_entries_are_overdue_and_nothing_is_delivered(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url(), name="waiting")
    for _ in range(2):
        await enqueue(runtime, app.id)
    later = FrozenClock(runtime.clock.now() + timedelta(minutes=20))
    report = await run_triage(http, runtime.database, later)
    assert report.severity is Severity.SEV2
    assert check(report, "webhook_dispatchers")["ok"] is False
    assert check(report, "webhook_dispatchers")["value"] == 2
    assert check(report, "webhook_backlog")["ok"] is False
    assert 1190 <= check(report, "webhook_backlog")["value"] <= 1210
    assert any(
        r.startswith("sev2: the webhook dispatchers look down: 2 deliveries are due")
        and "no delivery was ever attempted" in r
        for r in report.reasons
    )
    assert any(r.startswith("sev2: the webhook backlog is behind") for r in report.reasons)

    # Not yet overdue: ok.
    assert (await run_triage(http, runtime.database)).severity is Severity.OK


async def test_triage_backlog_with_dispatchers_working_is_sev2_for_the_backlog_only(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url(), name="busy")
    await enqueue(runtime, app.id)
    assert (await dispatch_once(runtime)).delivered == 1  # a delivery just now
    late = await enqueue(runtime, app.id)
    async with runtime.database.session() as session:
        await session.execute(
            text("UPDATE webhook_outbox_entries SET due_at = :due WHERE id = :id"),
            {"due": runtime.clock.now() - timedelta(minutes=15), "id": late},
        )
    report = await run_triage(http, runtime.database)
    assert report.severity is Severity.SEV2
    assert check(report, "webhook_dispatchers")["ok"] is True
    assert "dispatchers are working" in str(check(report, "webhook_dispatchers")["detail"])
    assert check(report, "webhook_backlog")["ok"] is False
    assert [r[:40] for r in report.reasons] == ["sev2: the webhook backlog is behind: the"]


async def test_triage_reports_a_database_without_schema_without_a_traceback(
    http: httpx.AsyncClient, tmp_path
) -> None:
    database = Database(f"sqlite:///{tmp_path}/empty.db")
    try:
        report = await run_triage(http, database)
    finally:
        await database.close()
    assert check(report, "database")["ok"] is False
    assert "no such table" in str(check(report, "database")["detail"])
    assert "is the schema migrated" in str(check(report, "database")["detail"])
    assert report.severity is Severity.SEV2


async def test_triage_says_sev2_when_redis_does_not_answer(
    http: httpx.AsyncClient, runtime: Runtime, redis_url: str | None
) -> None:
    down = RedisCache(f"redis://127.0.0.1:{free_port()}/0")
    up = RedisCache(redis_url) if redis_url else None
    try:
        async with runtime.database.sessionmaker() as session:
            thresholds = Thresholds(rounds=1, timeout=3.0)  # type: ignore[call-arg]
            report = await triage(http, session, SystemClock(), thresholds, redis=down)
            healthy = await triage(http, session, SystemClock(), thresholds, redis=up)
    finally:
        await down.close()
        if up is not None:
            await up.close()
    assert report.severity is Severity.SEV2 and report.exit_code == 2
    assert check(report, "redis") == {
        "name": "redis",
        "ok": False,
        "value": False,
        "detail": "does not answer",
    }
    assert any("invalidate-canonical --all" in r for r in report.reasons)
    assert healthy.severity is Severity.OK
    assert check(healthy, "redis")["ok"] is True


async def test_triage_is_sev3_when_mail_does_not_get_through(
    http: httpx.AsyncClient, runtime: Runtime, smtp: SmtpServer
) -> None:
    from onepass.mail import outbox
    from onepass.mail.delivery import MailDelivery

    mail = outbox.compose(
        "password_changed", "ada@example.com", "en", {"name": None, "when": "now"}
    )
    async with runtime.database.session() as session:
        await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=None)
    smtp.reply = "550 5.7.1 Relaying denied"
    settings = runtime.settings.model_copy(update={"smtp_url": smtp.url})
    await MailDelivery(settings, runtime.database, runtime.box, runtime.clock).deliver_due()
    report = await run_triage(http, runtime.database)
    assert report.severity is Severity.SEV3
    mail_check = check(report, "mail")
    assert mail_check["ok"] is False and mail_check["value"] == 1
    assert "Relaying denied" in str(mail_check["detail"])
    [reason] = report.reasons
    assert reason.startswith("sev3: mail is not getting through") and "onepass mail list" in reason


async def test_triage_names_processes_running_different_releases(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The playbook's "which deploys are recent?": two hosts mid-deploy, one process gone
    quiet long ago (not counted)."""
    now = runtime.clock.now()
    old = Release("0.1.0", "a" * 40, "0019")
    new = Release("0.2.0", "b" * 40, "0020")
    async with runtime.database.session() as session:
        for name, release, seen in [
            ("api-1:10", old, now),
            ("api-1:11", old, now - timedelta(seconds=5)),
            ("api-2:10", new, now),
            ("api-3:10", Release("0.0.9", None, "0018"), now - timedelta(minutes=10)),
        ]:
            await beat(session, name=name, kind="serve", release=release, started=now, now=seen)
    report = await run_triage(http, runtime.database, FrozenClock(now))
    assert report.severity is Severity.SEV3
    releases = check(report, "releases")
    assert releases["ok"] is False
    assert [(r["version"], r["processes"], r["hosts"]) for r in releases["value"]] == [
        ("0.1.0", 2, ["api-1"]),
        ("0.2.0", 1, ["api-2"]),
    ]
    (reason,) = report.reasons
    assert "different releases" in reason and "api-2" in reason and "api-3" not in reason


async def test_a_heartbeat_runs_until_stopped_and_then_removes_its_row(runtime: Runtime) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_heartbeat(runtime.database, runtime.clock, current(), "dispatch", stop)
    )
    for _ in range(100):
        async with runtime.database.session() as session:
            rows = await releases.running(session, runtime.clock.now())
        if rows:
            break
        await asyncio.sleep(0.02)
    assert [(r.release, [p.kind for p in r.processes]) for r in rows] == [(current(), ["dispatch"])]
    stop.set()
    await asyncio.wait_for(task, 10)
    async with runtime.database.session() as session:
        assert await releases.running(session, runtime.clock.now()) == []
