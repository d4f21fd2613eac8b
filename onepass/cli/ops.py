"""``onepass triage`` and ``onepass incidents …``: the playbook's severity, triage and escalation."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import typer

from onepass.cache import RedisCache
from onepass.cli.common import JsonOption, fail, print_json, print_table, run
from onepass.clock import SystemClock
from onepass.db import Database
from onepass.db.engine import UnsupportedDatabase
from onepass.logs import configure_logging
from onepass.ops import incidents as service
from onepass.ops.triage import CheckResult, Report, Thresholds, triage
from onepass.playbook import incidents as playbook
from onepass.runtime import Runtime
from onepass.settings import ConfigError, load_settings

incidents_app = typer.Typer(
    help="Incidents: open, update, acknowledge, resolve, list, and escalation (cron).",
    no_args_is_help=True,
)

LIST_TABLE = ("id", "sev", "status", "title", "opened_at", "acknowledged_at", "resolved_at")
ActorOption = typer.Option("cli", "--actor", help="Who does this (kept on the timeline).")


# -- triage -------------------------------------------------------------------------------


def triage_command(
    base_url: str | None = typer.Option(
        None, "--base-url", metavar="URL", help="The server to check (default ONEPASS_ISSUER)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """The playbook's first-line checks, and the severity they add up to.

    Checks the server (/up, discovery, JWKS, token endpoint, latency) and the database
    (webhook deliveries, dispatchers, backlog, dead letters). Exit status: 0 ok, else
    the sev number (1, 2, 3)."""
    configure_logging("error")
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(str(exc), 2)
    url = (base_url or settings.issuer).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        fail(f"--base-url must be an http(s) URL such as https://id.example.com, not {url!r}", 2)
    thresholds = Thresholds.from_settings(settings)

    async def go() -> Report:
        database: Database | None = None
        problem = None
        sqlite = settings.sqlite_path()
        if sqlite is not None and not sqlite.exists():
            # Connecting would create an empty file: say what is wrong instead.
            problem = f"no SQLite database at {sqlite} (is ONEPASS_DATABASE_URL the server's?)"
        else:
            try:
                database = Database(settings.database_url)
            except UnsupportedDatabase as exc:
                problem = str(exc)
        redis = RedisCache(settings.redis_url) if settings.redis_url else None
        try:
            async with httpx.AsyncClient(base_url=url, follow_redirects=False) as http:
                if database is None:
                    return await triage(
                        http,
                        None,
                        SystemClock(),
                        thresholds,
                        database_problem=problem,
                        redis=redis,
                        settings=settings,
                    )
                try:
                    async with database.sessionmaker() as session:
                        return await triage(
                            http, session, SystemClock(), thresholds, redis=redis, settings=settings
                        )
                finally:
                    await database.close()
        finally:
            if redis is not None:
                await redis.close()

    try:
        report = asyncio.run(go())
    except KeyboardInterrupt:
        fail("interrupted", 130)
    if as_json:
        print_json(report.as_json())
    else:
        rows = [{**c.as_json(), "ok": _verdict(c), "value": _value(c.value)} for c in report.checks]
        print_table(rows, ("name", "ok", "value", "detail"), title=f"triage of {url}")
        typer.echo(f"severity: {report.severity.value}")
        for reason in report.reasons:
            typer.echo(f"- {reason}")
    raise typer.Exit(report.exit_code)


def _verdict(check: CheckResult) -> str:
    """FAIL for a check that adds to the severity; warn for one that does not (a
    missing setting)."""
    if check.ok:
        return "ok"
    return "FAIL" if check.findings else "warn"


def _value(value: Any) -> str:
    return "" if value is None else str(value)


# -- incidents ----------------------------------------------------------------------------


@incidents_app.command("open")
def open_command(
    sev: int = typer.Option(..., "--sev", min=1, max=3, help="1, 2 or 3 (docs/operations.md)."),
    title: str = typer.Option(..., "--title", help="What is wrong; a sev1's title is public."),
    actor: str = ActorOption,
    as_json: bool = JsonOption,
) -> None:
    """Open an incident. A sev1 shows on /status at once and is escalated by
    `onepass incidents escalate` until acknowledged."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.open_incident(runtime, sev=sev, title=title, actor=actor)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"incident {data['id']} opened (sev{data['sev']}): {data['title']}")


@incidents_app.command("update")
def update_command(
    incident_id: int = typer.Argument(..., metavar="ID"),
    message: str = typer.Option(..., "--message", "-m", help="The note."),
    public: bool = typer.Option(
        False, "--public", help="Show it on the status page (sev1 only; write it for RPs)."
    ),
    actor: str = ActorOption,
    as_json: bool = JsonOption,
) -> None:
    """Add a note to an incident's timeline."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.add_update(
            runtime, incident_id, message=message, actor=actor, public=public
        )

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"incident {incident_id} updated")


@incidents_app.command("ack")
def ack_command(
    incident_id: int = typer.Argument(..., metavar="ID"),
    actor: str = ActorOption,
    as_json: bool = JsonOption,
) -> None:
    """Acknowledge an incident: someone is on it, escalation to the second line stops."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.acknowledge(runtime, incident_id, actor=actor)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"incident {incident_id} acknowledged by {data['acknowledged_by']}")


@incidents_app.command("resolve")
def resolve_command(
    incident_id: int = typer.Argument(..., metavar="ID"),
    message: str | None = typer.Option(
        None, "--message", "-m", help="What fixed it (public: shown with the incident)."
    ),
    actor: str = ActorOption,
    as_json: bool = JsonOption,
) -> None:
    """Resolve an incident: escalation stops and the status page no longer shows it."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.resolve(runtime, incident_id, actor=actor, message=message)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"incident {incident_id} resolved")


@incidents_app.command("list")
def list_command(
    open_only: bool = typer.Option(False, "--open", help="Only those not resolved."),
    as_json: bool = JsonOption,
) -> None:
    """Incidents, oldest first."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            return [
                service.describe_incident(i)
                for i in await service.list_incidents(session, open_only=open_only)
            ]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, LIST_TABLE, title="incidents")


@incidents_app.command("show")
def show_command(
    incident_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JsonOption
) -> None:
    """One incident and its timeline (notes, acknowledgement, escalation steps)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session(readonly=True) as session:
            data = service.describe_incident(await service.get_incident(session, incident_id))
            data["updates"] = [
                service.describe_update(u) for u in await service.timeline(session, incident_id)
            ]
            return data

    data = run(action)
    if as_json:
        print_json(data)
        return
    updates = data.pop("updates")
    print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))
    print_table(
        updates,
        ("created_at", "kind", "actor", "public", "message", "notified_at"),
        title="timeline",
    )


@incidents_app.command("escalate")
def escalate_command(as_json: bool = JsonOption) -> None:
    """Take the escalation steps that are due (run it from cron every minute; idempotent):
    a sev1 pages the first line at once, the second line after 15 minutes without an
    acknowledgement, and asks to tell RPs directly after 30 minutes open. Each step is
    recorded on the incident, logged (incidents.escalated) and POSTed to
    ONEPASS_ESCALATION_WEBHOOK_URL when set. Exit 1 when a notice could not be sent, or
    when a step was due and nobody was notified (ONEPASS_ESCALATION_WEBHOOK_URL unset)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        configure_logging(runtime.settings.log_level)  # JSON lines, for cron's mail or a collector
        result = await playbook.run_escalation(
            runtime.database,
            runtime.clock,
            webhook_url=runtime.settings.escalation_webhook_url,
            notify_timeout=runtime.settings.escalation_webhook_timeout,
        )
        return result.as_json()

    data = run(action)
    if as_json:
        print_json(data)
    else:
        for e in data["escalations"]:
            unsent = " (NOT SENT: no escalation target)" if data["nobody_notified"] else ""
            typer.echo(f"incident {e['incident_id']}: {e['message']}{unsent}")
        if not data["escalations"]:
            typer.echo("nothing to escalate")
        if data["notified"] or data["notify_failed"]:
            typer.echo(f"notices sent: {data['notified']}, failed: {data['notify_failed']}")
    if data["notify_failed"]:
        typer.echo(
            "onepass: escalation notices failed (retried by the next run): "
            + "; ".join(sorted(set(data["notify_errors"]))),
            err=True,
        )
        raise typer.Exit(1)
    if data["nobody_notified"]:
        # Cron mails a failing run's stderr: the one way a person hears of it.
        typer.echo(
            "onepass: nobody was notified: ONEPASS_ESCALATION_WEBHOOK_URL is not set. "
            "Page the people above yourself, and set it (docs/operations.md, Paging).",
            err=True,
        )
        raise typer.Exit(1)
