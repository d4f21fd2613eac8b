from __future__ import annotations

import typer

from onepass.cli.common import run
from onepass.db import migrate
from onepass.logs import configure_logging
from onepass.runtime import Runtime

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration (each logged as a JSON line on stderr at
    ONEPASS_LOG_LEVEL info)."""

    async def action(runtime: Runtime) -> None:
        configure_logging(runtime.settings.log_level)
        await migrate.upgrade(runtime.database)

    run(action, check_schema=False)
    typer.echo("database is up to date")
