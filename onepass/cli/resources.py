"""``onepass resources …``: resource servers (RFC 8707), through ``playbook.resources``."""

from __future__ import annotations

from typing import Any

import typer

from onepass.cli.common import JsonOption, fail, print_json, print_table, run
from onepass.clients import resources as service
from onepass.durations import parse_duration
from onepass.operators.audit import Actor
from onepass.playbook import resources as playbook
from onepass.runtime import Runtime

app = typer.Typer(help="Resource servers (RFC 8707 resource indicators).", no_args_is_help=True)

LIST_COLUMNS = ("id", "identifier", "name", "scopes", "access_token_ttl", "signing_alg")


def _ttl(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(parse_duration(text))
    except ValueError as exc:
        fail(f"--access-token-ttl: {exc}", 2)


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
    else:
        print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))


@app.command("create")
def create(
    identifier: str = typer.Option(
        ..., "--identifier", help="An absolute URI without a fragment: the tokens' aud."
    ),
    scope: list[str] = typer.Option(
        ..., "--scope", help="A scope this resource server defines (repeatable)."
    ),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the URI)."),
    access_token_ttl: str | None = typer.Option(
        None,
        "--access-token-ttl",
        help="Lifetime of its access tokens, e.g. 15m (default ONEPASS_ACCESS_TOKEN_TTL).",
    ),
    signing_alg: str | None = typer.Option(
        None,
        "--signing-alg",
        help="ES256, RS256, PS256 or EdDSA, one of ONEPASS_SIGNING_ALGS "
        "(default ONEPASS_ACCESS_TOKEN_ALG).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register a resource server."""
    ttl = _ttl(access_token_ttl)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.create(
            runtime,
            Actor.cli(),
            identifier=identifier,
            scopes=scope,
            name=name,
            access_token_ttl=ttl,
            signing_alg=signing_alg,
        )

    _show(run(action), as_json)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List every resource server."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            return [service.describe_resource(r) for r in await service.list_resources(session)]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, LIST_COLUMNS, title="resource servers")


@app.command("show")
def show(
    resource: str = typer.Argument(..., metavar="RESOURCE", help="Its identifier or id."),
    as_json: bool = JsonOption,
) -> None:
    """Show one resource server."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            return service.describe_resource(await service.find_resource(session, resource))

    _show(run(action), as_json)


@app.command("update")
def update(
    resource: str = typer.Argument(..., metavar="RESOURCE", help="Its identifier or id."),
    name: str | None = typer.Option(None, "--name", help="New display name."),
    scope: list[str] = typer.Option(
        [], "--scope", help="The scopes it defines (repeatable; replaces)."
    ),
    access_token_ttl: str | None = typer.Option(
        None, "--access-token-ttl", help="Lifetime of its access tokens, e.g. 15m."
    ),
    signing_alg: str | None = typer.Option(
        None, "--signing-alg", help="ES256, RS256, PS256 or EdDSA (one of ONEPASS_SIGNING_ALGS)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a resource server (its identifier stays)."""
    ttl = _ttl(access_token_ttl)
    if name is None and not scope and ttl is None and signing_alg is None:
        fail("nothing to change: give at least one option (see --help)", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.update(
            runtime,
            Actor.cli(),
            resource,
            name=name,
            scopes=scope or None,
            access_token_ttl=ttl,
            signing_alg=signing_alg,
        )

    _show(run(action), as_json)


@app.command("delete")
def delete(
    resource: str = typer.Argument(..., metavar="RESOURCE", help="Its identifier or id."),
    as_json: bool = JsonOption,
) -> None:
    """Delete a resource server; clients lose it from their allowed resources."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.delete(runtime, Actor.cli(), resource)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"{data['identifier']}: deleted")
