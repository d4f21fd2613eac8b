from __future__ import annotations

import typer

from onepass.cli import clients, db, keys, serve, users

app = typer.Typer(
    name="onepass",
    help="1pass: an OpenID Connect provider, and the operator's playbook as commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(clients.app, name="clients")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")


def main() -> None:
    app()
