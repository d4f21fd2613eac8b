"""``onepass clients initial-token …``: the initial access tokens of Dynamic Client
Registration (RFC 7591 §3), through ``playbook.registration``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from onepass.cli.common import CommandError, JsonOption, print_json, print_table, run
from onepass.durations import parse_duration
from onepass.operators.audit import Actor
from onepass.playbook import registration as playbook
from onepass.runtime import Runtime

app = typer.Typer(
    help="Initial access tokens: who may register clients at /register (RFC 7591).",
    no_args_is_help=True,
)

COLUMNS = ("id", "prefix", "state", "uses", "max_uses", "created_by", "expires_at", "last_used_at")


@app.command("create")
def create(
    ttl: str = typer.Option(
        "24h", "--ttl", help="How long the token works (e.g. 1h, 7d; at most 365d)."
    ),
    max_uses: int | None = typer.Option(
        None, "--max-uses", min=1, help="How many clients it may register (default: no limit)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create an initial access token (shown this once): send it as
    `Authorization: Bearer` to POST /register."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        try:
            lifetime = timedelta(seconds=parse_duration(ttl))
        except ValueError as exc:
            raise CommandError(f"--ttl: {exc}") from None
        return await playbook.create_initial_token(
            runtime, Actor.cli(), ttl=lifetime, max_uses=max_uses
        )

    data = run(action)
    if as_json:
        print_json(data)
        return
    typer.echo(f"token:    {data['token']}")
    typer.echo(f"id:       {data['id']}")
    typer.echo(f"expires:  {data['expires_at'].isoformat()}")
    typer.echo(f"max uses: {data['max_uses'] if data['max_uses'] is not None else 'no limit'}")
    typer.echo("Shown this once.")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Initial access tokens (never the tokens: their first characters), with their uses."""
    rows = run(playbook.list_initial_tokens)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS, title="initial access tokens")


@app.command("revoke")
def revoke(token_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JsonOption) -> None:
    """Revoke an initial access token at once (the clients it registered stay)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.revoke_initial_token(runtime, Actor.cli(), token_id)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"revoked initial access token {data['id']} ({data['prefix']}…)")
