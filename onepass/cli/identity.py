"""Canonical resolution: `identity enforce-check`, `cache invalidate-canonical`."""

from __future__ import annotations

from typing import Any

import typer

from onepass.cli.common import JsonOption, fail, print_json, print_table, run
from onepass.identity import enforcement
from onepass.identity.canonical import CanonicalResolver
from onepass.operators.audit import Actor
from onepass.playbook import cache
from onepass.runtime import Runtime

identity_app = typer.Typer(
    help="Account merges and the canonical-resolution switch.", no_args_is_help=True
)
cache_app = typer.Typer(help="The cache (Redis or in-process).", no_args_is_help=True)


def resolver_for(runtime: Runtime) -> CanonicalResolver:
    return CanonicalResolver(runtime.cache, runtime.settings.canonical_cache_ttl)


@identity_app.command("enforce-check")
def enforce_check(as_json: bool = JsonOption) -> None:
    """Per RP: links it has not received (never enqueued, pending, dead). Exit 1 if any."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            return [s.to_dict() for s in await enforcement.link_delivery_state(session)]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            (
                "oauth_application_id",
                "client_name",
                "links",
                "delivered",
                "missing",
                "never_enqueued",
                "pending",
                "dead",
            ),
            title="identity links per RP",
        )
    if any(row["missing"] for row in rows):
        if not as_json:
            typer.echo(
                "Not safe to enable ENFORCE_CANONICAL_RESOLUTION: run `onepass webhooks backfill-links --all`.",
                err=True,
            )
        raise typer.Exit(1)


@cache_app.command("invalidate-canonical")
def invalidate_canonical(
    user: str | None = typer.Option(
        None, "--user", metavar="USER_ID", help="One user (id, sub or email)."
    ),
    all_users: bool = typer.Option(False, "--all", help="Every cached resolution."),
    as_json: bool = JsonOption,
) -> None:
    """Drop cached canonical-user resolutions (the next request reads identity_links)."""
    if (user is None) == (not all_users):
        fail("give exactly one of --user USER_ID or --all", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await cache.invalidate_canonical(
            runtime, resolver_for(runtime), Actor.cli(), None if all_users else user
        )

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"deleted {data['deleted']} cached resolution(s)")
        if data["cache"] == "in-process":
            typer.echo(
                "note: without ONEPASS_REDIS_URL each server process keeps its own cache, "
                "for a few seconds only"
            )
