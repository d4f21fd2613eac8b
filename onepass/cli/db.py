from __future__ import annotations

import typer

from onepass.cli.common import run
from onepass.db import migrate
from onepass.runtime import Runtime

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration."""

    async def action(runtime: Runtime) -> None:
        await migrate.upgrade(runtime.database)

    run(action, check_schema=False)
    typer.echo("database is up to date")
