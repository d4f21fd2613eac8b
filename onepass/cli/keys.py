from __future__ import annotations

from typing import Any

import typer

from onepass.cli.common import JsonOption, print_json, print_table, run
from onepass.keys import service
from onepass.keys.models import SigningKey
from onepass.operators.audit import Actor
from onepass.playbook import keys as keys_playbook
from onepass.runtime import Runtime

app = typer.Typer(help="OpenID Connect signing keys (the JWKS).", no_args_is_help=True)

COLUMNS = (
    "kid",
    "alg",
    "state",
    "created_at",
    "activated_at",
    "retired_at",
    "remove_after",
    "removed_at",
)


def describe(key: SigningKey) -> dict[str, Any]:
    return {column: getattr(key, column) for column in ("id", *COLUMNS)}


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every signing key with its state and dates."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            return [describe(k) for k in await service.list_keys(session)]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS, title="signing keys")


@app.command("rotate")
def rotate(
    force: bool = typer.Option(
        False, "--force", help="Rotate even if RPs may not have fetched the next key yet."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Promote next → active, keep the old key published as retired, create a new next key."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        return await keys_playbook.rotate_signing_keys(runtime, Actor.cli(), force=force)

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            ("alg", "activated_kid", "retired_kid", "next_kid", "retired_until"),
            title="rotated",
        )
        typer.echo("Every server uses the new keys within a few seconds.")
