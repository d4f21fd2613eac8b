from __future__ import annotations

from typing import Any

import typer

from onepass.cli.common import JsonOption, print_json, run
from onepass.db import migrate
from onepass.logs import configure_logging
from onepass.runtime import Runtime

app = typer.Typer(help="The database schema.", no_args_is_help=True)

# `db upgrade --check`'s exit status, for a deploy script.
SAFE, CONTRACT, REVIEW = 0, 1, 3


@app.command("upgrade")
def upgrade(
    check: bool = typer.Option(
        False,
        "--check",
        help="Apply nothing: say whether the pending migrations are safe to run while the "
        "previous release serves (exit 0), need a person's review (3), or must wait until "
        "no process runs the previous release (1).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Apply every pending migration (each logged as a JSON line on stderr at
    ONEPASS_LOG_LEVEL info)."""
    if check:
        _check(as_json)
        return

    async def action(runtime: Runtime) -> None:
        configure_logging(runtime.settings.log_level)
        await migrate.upgrade(runtime.database)

    run(action, check_schema=False)
    typer.echo("database is up to date")


def _check(as_json: bool) -> None:
    from onepass.db import live
    from onepass.ops.health import applied_revision
    from onepass.release import head_revision

    async def action(runtime: Runtime) -> str | None:
        try:
            return await applied_revision(runtime.database)
        except Exception as exc:
            text = str(exc)
            if "alembic_version" in text and ("no such table" in text or "does not exist" in text):
                return None  # an empty database: every migration is pending
            raise

    applied = run(action, check_schema=False)
    assessments = live.pending(applied)
    worst = max((a.verdict for a in assessments), key=lambda v: v.rank, default=live.Verdict.EXPAND)
    if applied is None:
        worst = live.Verdict.EXPAND  # an empty database: no release serves on it yet
    report: dict[str, Any] = {
        "applied": applied,
        "head": head_revision(),
        "pending": [a.describe() for a in assessments],
        "verdict": worst.value,
        "safe_live": worst is live.Verdict.EXPAND,
    }
    code = {live.Verdict.EXPAND: SAFE, live.Verdict.REVIEW: REVIEW, live.Verdict.CONTRACT: CONTRACT}
    if as_json:
        print_json(report)
    else:
        if applied is None:
            typer.echo("the database is empty: no release serves on it yet")
        elif not assessments:
            typer.echo(f"database is at {applied}: no migration is pending")
        for a in assessments:
            typer.echo(f"{a.revision} {a.path.name}: {a.verdict.value}")
            for reason in a.reasons:
                typer.echo(f"  {reason}")
        typer.echo(
            {
                live.Verdict.EXPAND: "safe to run while the previous release serves",
                live.Verdict.REVIEW: "safe for the previous release; review the notes above "
                "before running it under load",
                live.Verdict.CONTRACT: "NOT safe live: run it only once no process runs a "
                "release that needs what it removes (docs/deploying.md)",
            }[worst]
        )
    if worst is not live.Verdict.EXPAND:
        raise typer.Exit(code[worst])
