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


ALGS_HELP = (
    "Only this algorithm (RS256, PS256, ES256 or EdDSA; one of ONEPASS_SIGNING_ALGS). "
    "Repeat for several."
)


@app.command("list")
def list_(
    algs: list[str] = typer.Option([], "--alg", help="Only this algorithm's keys. Repeatable."),
    as_json: bool = JsonOption,
) -> None:
    """Every signing key with its algorithm, state and dates."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            keys = await service.list_keys(session)
        return [describe(k) for k in keys if not algs or k.alg in algs]

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
    algs: list[str] = typer.Option([], "--alg", help=ALGS_HELP),
    as_json: bool = JsonOption,
) -> None:
    """Promote next → active, keep the old key published as retired, create a new next key
    (for every algorithm of ONEPASS_SIGNING_ALGS, or the ones --alg names)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        return await keys_playbook.rotate_signing_keys(runtime, Actor.cli(), force=force, algs=algs)

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
