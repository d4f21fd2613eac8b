"""``onepass webhooks …``: the dispatcher, and the playbook's webhook and dead-letter procedures."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.cli.common import CommandError, JsonOption, fail, print_json, print_table, run
from onepass.clients.models import OAuthApplication
from onepass.clients.registry import find_client
from onepass.durations import parse_duration
from onepass.identity.backfill import BATCH as BACKFILL_BATCH
from onepass.logs import configure_logging
from onepass.mail.delivery import MailDelivery, delivering
from onepass.operators.audit import Actor
from onepass.playbook import keys as keys_playbook
from onepass.playbook import merges as merges_playbook
from onepass.playbook import webhooks as webhooks_playbook
from onepass.process import settle_gc
from onepass.runtime import Runtime
from onepass.webhooks import keys as key_service
from onepass.webhooks import outbox, outbox_queries
from onepass.webhooks.embedded import DispatcherLock, lock_path
from onepass.webhooks.models import WebhookSigningKey
from onepass.webhooks.outbox_queries import Status

app = typer.Typer(
    help="Webhooks to RPs: dispatcher, outbox, dead letters, signing keys.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Per-application webhook signing keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

KEY_COLUMNS = [c.name for c in WebhookSigningKey.__table__.columns if c.name != "secret_encrypted"]
# Most telling first: at 80 columns the last ones are left out (print_table says which).
LIST_TABLE = (
    "id",
    "client_id",
    "event_type",
    "status",
    "last_status_code",
    "attempts",
    "last_error",
    "next_retry_at",
    "dlq_at",
    "delivered_at",
)


class Scheme(StrEnum):
    v1 = "v1"
    v1a = "v1a"


def describe_key(key: WebhookSigningKey, now: datetime) -> dict[str, Any]:
    data = {column: getattr(key, column) for column in KEY_COLUMNS}
    data["signing"] = key.signs_at(now)
    return data


async def _named(session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entry rows with the application's ``client_id`` and ``client_name`` beside
    ``oauth_application_id`` (what an operator knows the RP by), and the ``status``."""
    names = await outbox_queries.application_names(
        session, (row["oauth_application_id"] for row in rows)
    )
    named = []
    for row in rows:
        client_id, name = names.get(row["oauth_application_id"], (None, None))
        status = outbox_queries.status_of(SimpleNamespace(**row)).value
        first = {"id": row["id"], "client_id": client_id, "client_name": name, "status": status}
        named.append({**first, **row})
    return named


async def _app(runtime: Runtime, app_id: str) -> OAuthApplication:
    async with runtime.database.session() as session:
        return await find_client(session, app_id)


@app.command("dispatch")
def dispatch(
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        max=4096,
        help="Deliveries in flight at once (default ONEPASS_WEBHOOK_CONCURRENCY, 64).",
    ),
    once: bool = typer.Option(
        False, "--once", help="Deliver what is due now, wait for it, and exit."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run a webhook dispatcher, and mail delivery beside it, until SIGTERM or Ctrl-C
    (a second one abandons the deliveries in flight and releases their claims)."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - Windows
        pass

    async def action(runtime: Runtime) -> dict[str, Any]:
        from onepass.webhooks.dispatcher import Dispatcher  # aiohttp: only when dispatching

        configure_logging(runtime.settings.log_level)
        lock = None
        path = lock_path(runtime.settings)
        if path is not None:
            lock = DispatcherLock(path)
            if not lock.acquire():
                raise CommandError(
                    "another webhook dispatcher is running on this SQLite database "
                    f"(lock {path}; `onepass serve` runs one): on SQLite one runs at a time"
                )
        stop, force = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            (force if stop.is_set() else stop).set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            mail_sent = 0
            async with Dispatcher.from_runtime(runtime, concurrency=concurrency) as dispatcher:
                settle_gc()
                if once:
                    stats = await dispatcher.run_once(stop, force=force)
                    mail_sent = await MailDelivery.of(runtime).deliver_all_due()
                else:
                    from onepass.ops.releases import run_heartbeat
                    from onepass.release import current

                    beat_stop = asyncio.Event()
                    beating = asyncio.create_task(
                        run_heartbeat(
                            runtime.database,
                            runtime.clock,
                            current(),
                            "dispatch",
                            beat_stop,
                            runtime.box.fingerprints,
                        )
                    )
                    try:
                        async with delivering(runtime, stop):
                            stats = await dispatcher.run(stop, force=force)
                    finally:
                        beat_stop.set()
                        await beating
            return {"dispatcher": dispatcher.name, **stats.as_json(), "mail_attempted": mail_sent}
        finally:
            if lock is not None:
                lock.release()

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"{data['delivered']} delivered, {data['retrying']} to retry, {data['dead']} dead"
        )


@app.command("ping")
def ping(
    app_id: str = typer.Argument(..., metavar="APP_ID"),
    count: int = typer.Option(
        1, "--count", min=1, max=1_000_000, help="How many test.ping to enqueue (--count N)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Enqueue test.ping events for an application (`--count N` of them, default 1), in
    one transaction."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await webhooks_playbook.ping(runtime, app_id, count)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"enqueued {data['enqueued']} test.ping for {data['client_id']}")


@app.command("list")
def list_(
    status: Status | None = typer.Option(None, "--status", help="pending, delivered or dead."),
    app_id: str | None = typer.Option(None, "--app", metavar="APP_ID", help="One application."),
    event_type: str | None = typer.Option(
        None,
        "--event-type",
        metavar="T",
        help="Only this event type (oidc.backchannel_logout: the back-channel logouts).",
    ),
    limit: int = typer.Option(1000, "--limit", min=0, help="At most this many (0: all)."),
    as_json: bool = JsonOption,
) -> None:
    """Outbox entries, oldest first (dead = the dead-letter queue)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        internal_id = (await _app(runtime, app_id)).id if app_id is not None else None
        async with runtime.database.session() as session:
            entries = await outbox.list_entries(
                session,
                status=status.value if status else None,
                app_id=internal_id,
                limit=limit or None,
                event_type=event_type,
            )
            return await _named(session, [outbox.describe_entry(e) for e in entries])

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, LIST_TABLE, title="webhook outbox")


@app.command("show")
def show(
    entry_id: int = typer.Argument(..., metavar="ENTRY_ID"), as_json: bool = JsonOption
) -> None:
    """One outbox entry and every delivery attempt (status, error, kids that signed it)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            entry = await outbox.get_entry(session, entry_id)
            attempts = await outbox.list_attempts(session, entry_id)
            (data,) = await _named(session, [outbox.describe_entry(entry)])
            data["delivery_attempts"] = [outbox.describe_attempt(a) for a in attempts]
            return data

    data = run(action)
    if as_json:
        print_json(data)
        return
    attempts = data.pop("delivery_attempts")
    print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))
    print_table(
        attempts,
        ("attempt", "started_at", "duration_ms", "status_code", "outcome", "error", "signed_kids"),
        title="attempts",
    )


@app.command("retry")
def retry(
    entry_id: int = typer.Argument(..., metavar="ENTRY_ID"), as_json: bool = JsonOption
) -> None:
    """Send a dead entry again: dlq_at, next_retry_at, attempts and last_error cleared,
    enqueued_at = now; the next dispatcher pass picks it up."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await webhooks_playbook.retry(runtime, Actor.cli(), entry_id)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"entry {data['id']} queued again")


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(
            f"--since {value[:60]!r} is not an ISO 8601 date or time "
            "(e.g. 2026-01-31 or 2026-01-31T12:00:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@app.command("replay-dlq")
def replay_dlq(
    app_id: str = typer.Argument(..., metavar="APP_ID"),
    since: str | None = typer.Option(
        None, "--since", metavar="ISO", help="Only entries dead-lettered at or after this time."
    ),
    event_type: str | None = typer.Option(
        None, "--event-type", metavar="T", help="Only this event type."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the entries that would be sent, change nothing."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send every dead entry of an application again (the bulk form of `retry`)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await webhooks_playbook.replay_dlq(
            runtime,
            Actor.cli(),
            app_id,
            since=_parse_since(since),
            event_type=event_type,
            dry_run=dry_run,
        )

    data = run(action)
    if as_json:
        print_json(data)
    elif dry_run:
        typer.echo(
            f"{data['matched']} dead entries of {data['client_id']} would be sent again (dry run)"
        )
        if data["entry_ids"]:
            typer.echo("entry ids: " + " ".join(str(i) for i in data["entry_ids"]))
    else:
        typer.echo(f"{data['replayed']} dead entries queued again")


@app.command("dead-counts")
def dead_counts(as_json: bool = JsonOption) -> None:
    """Dead-lettered entries per application, most first (the playbook's monitoring query)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            counts = await outbox_queries.dead_by_application(session)
        return [
            {
                "oauth_application_id": c.oauth_application_id,
                "client_id": c.client_id,
                "client_name": c.client_name,
                "dead_count": c.dead_count,
            }
            for c in counts
        ]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ("client_id", "client_name", "dead_count"), title="dead letters")


@keys_app.command("list")
def keys_list(
    app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption
) -> None:
    """An application's signing keys, newest first (never the secrets)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        application = await _app(runtime, app_id)
        async with runtime.database.session() as session:
            keys = await key_service.list_keys(session, application.id)
            now = runtime.clock.now()
            return [describe_key(k, now) for k in keys]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            ("kid", "scheme", "state", "signing", "created_at", "expires_at", "revoked_at"),
            title="webhook signing keys",
        )


@keys_app.command("rotate")
def keys_rotate(
    app_id: str = typer.Argument(..., metavar="APP_ID"),
    grace: str = typer.Option(
        "72h", "--grace", help="How long the previous key keeps signing (e.g. 72h, 30m, 0)."
    ),
    scheme: Scheme | None = typer.Option(
        None, "--scheme", help="v1 (HMAC, default: the current one) or v1a (Ed25519)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a new signing key; the previous one keeps signing for the grace period.
    The new secret is printed this once."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        try:
            grace_period = timedelta(seconds=parse_duration(grace))
        except ValueError as exc:
            raise CommandError(f"--grace: {exc}") from None
        return await keys_playbook.rotate_webhook_key(
            runtime,
            Actor.cli(),
            app_id,
            grace=grace_period,
            scheme=scheme.value if scheme else None,
        )

    data = run(action)
    if as_json:
        print_json(data)
        return
    typer.echo(f"kid:    {data['kid']}")
    if data.get("secret"):
        typer.echo(f"secret: {data['secret']}")
    else:
        typer.echo(f"public key: {data['public_key']}")
    typer.echo("Shown this once. The previous key keeps signing during the grace period.")


@app.command("compromise")
def compromise(
    app_id: str = typer.Argument(..., metavar="APP_ID"),
    kid: str = typer.Argument(..., metavar="KID"),
    as_json: bool = JsonOption,
) -> None:
    """Emergency: revoke a leaked signing key, issue a new one, re-stamp undelivered
    entries and send webhook_key.compromised, in one transaction."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await keys_playbook.compromise_webhook_key(runtime, Actor.cli(), app_id, kid)

    data = run(action)
    if as_json:
        print_json(data)
        return
    typer.echo(f"revoked: {data['revoked_kid']}")
    typer.echo(f"new kid: {data['kid']}")
    if data.get("secret"):
        typer.echo(f"secret:  {data['secret']}")
    else:
        typer.echo(f"public key: {data['public_key']}")
    typer.echo(
        f"{data['restamped_entries']} undelivered entries re-stamped; "
        "webhook_key.compromised enqueued. The secret is shown this once."
    )


@app.command("backfill-links")
def backfill_links(
    app_id: str | None = typer.Argument(None, metavar="APP_ID", help="client_id or id of one RP."),
    all_apps: bool = typer.Option(
        False, "--all", help="Every RP subscribed to identity.link.created."
    ),
    batch_size: int = typer.Option(BACKFILL_BATCH, "--batch-size", min=1, max=50_000),
    as_json: bool = JsonOption,
) -> None:
    """Enqueue identity.link.created for every link an RP has not been sent (idempotent, resumable)."""
    if (app_id is None) == (not all_apps):
        fail("give exactly one of APP_ID or --all", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            disable=as_json,
            transient=False,
        ) as progress:

            def track(client_id: str, links: int) -> Callable[[int], None]:
                task = progress.add_task(client_id, total=links)
                return functools.partial(progress.advance, task)

            return await merges_playbook.backfill_links(
                runtime, Actor.cli(), app_id, batch_size=batch_size, progress=track
            )

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"enqueued {data['enqueued']}, skipped {data['skipped']} (already sent)")
