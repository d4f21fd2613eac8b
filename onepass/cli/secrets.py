"""``onepass secrets``: rotate ONEPASS_SECRET_KEY (``onepass.playbook.secrets``)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from onepass.cli.common import JsonOption, fail, print_json, run
from onepass.operators.audit import Actor
from onepass.runtime import Runtime

app = typer.Typer(
    help="ONEPASS_SECRET_KEY: rotate it, and see what each key seals.", no_args_is_help=True
)


@app.command("rotate")
def rotate(
    new_key_stdin: bool = typer.Option(
        False,
        "--new-key-stdin",
        help="Read the new key from standard input (one line) and re-seal every stored "
        "secret under it. Without it, re-seal under the current ONEPASS_SECRET_KEY.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Re-seal even though running processes do not report accepting the new key.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Re-seal private signing keys, webhook secrets, TOTP secrets and queued mail under a
    new key, in one transaction, keeping stored hashes valid (docs/deploying.md)."""
    from onepass.playbook import secrets

    new_key = None
    if new_key_stdin:
        new_key = sys.stdin.readline().strip()
        if not new_key:
            fail("no key on standard input", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await secrets.rotate(runtime, Actor.cli(), new_key, force=force)

    result = run(action)
    if as_json:
        print_json(result)
        return
    typer.echo(f"re-sealed under the key of fingerprint {result['fingerprint']}:")
    for label, n in result["resealed"].items():
        typer.echo(f"  {label}: {n}")
    typer.echo(f"next: {result['next']}")


@app.command("status")
def status(as_json: bool = JsonOption) -> None:
    """How many stored secrets the current key seals, and how many still need a fallback
    key; exits 1 while any needs one or does not decrypt at all."""
    from onepass.playbook import secrets

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await secrets.status(runtime)

    result = run(action)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"ONEPASS_SECRET_KEY: fingerprint {result['primary_fingerprint']}")
        for fp in result["fallback_fingerprints"]:
            typer.echo(f"fallback: fingerprint {fp}")
        typer.echo(f"hashing key: {result['hashing_key']}")
        for label, counts in result["tables"].items():
            typer.echo(
                f"  {label}: {counts['primary']} primary, {counts['fallback']} fallback, "
                f"{counts['undecryptable']} undecryptable"
            )
        typer.echo(
            "some secrets still need a fallback key: run `onepass secrets rotate`"
            if result["needs_fallbacks"]
            else "nothing needs a fallback key"
        )
    if result["needs_fallbacks"] or result["undecryptable"]:
        raise typer.Exit(1)
