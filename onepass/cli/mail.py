"""``onepass mail …``: the mail outbox."""

from __future__ import annotations

from typing import Any

import typer

from onepass.cli.common import JsonOption, print_json, print_table, run
from onepass.mail import outbox
from onepass.mail.outbox import MailStatus
from onepass.runtime import Runtime

app = typer.Typer(help="Mail to the people who sign in: the outbox.", no_args_is_help=True)

COLUMNS = ("id", "kind", "to_address", "status", "attempts", "created_at", "last_error")


@app.command("list")
def list_(
    status: MailStatus | None = typer.Option(
        None, "--status", help="Only pending, sent or dead mail."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="The newest N."),
    as_json: bool = JsonOption,
) -> None:
    """List mail, newest first. Without ONEPASS_SMTP_URL (development) a mail is
    written to the log, and its text, link included, is shown here too."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            entries = await outbox.list_entries(session, status=status, limit=limit)
            return [outbox.describe(runtime.box, e) for e in entries]

    rows = run(action)
    if as_json:
        print_json(rows)
        return
    print_table(rows, COLUMNS, title="mail")
    for row in rows:
        if row.get("text"):
            typer.echo(f"\n--- mail {row['id']} to {row['to_address']}: {row['subject']}\n")
            typer.echo(row["text"])
