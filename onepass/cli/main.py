from __future__ import annotations

import typer

from onepass import __version__
from onepass.cli import admin, clients, db, identity, keys, ops, serve, users, webhooks

app = typer.Typer(
    name="onepass",
    help="1pass: an OpenID Connect provider, and the operator's playbook as commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"onepass {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """1pass: an OpenID Connect provider, and the operator's playbook as commands."""


app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(clients.app, name="clients")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(identity.identity_app, name="identity")
app.add_typer(identity.cache_app, name="cache")
app.add_typer(admin.app, name="admin")
webhooks.app.command("backfill-links")(identity.backfill_links)
app.command("triage")(ops.triage_command)
app.add_typer(ops.incidents_app, name="incidents")


def main() -> None:
    app()
