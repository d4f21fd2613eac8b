"""What every command shares: settings, a runtime, JSON or table output, errors."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from onepass.crypto import DecryptionError
from onepass.db.engine import UnsupportedDatabase
from onepass.db.errors import is_unavailable
from onepass.db.migrate import schema_is_current
from onepass.logs import configure_logging
from onepass.refusals import Refusal
from onepass.runtime import Runtime
from onepass.settings import ConfigError, load_settings

T = TypeVar("T")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


class CommandError(Exception):
    """A failure to report on stderr with a non-zero exit, without a traceback."""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"onepass: {message}", err=True)
    raise typer.Exit(code)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, default=_json_default, indent=2))


# Columns printed whole on one line, never folded or cut: identifiers an operator
# copies into the next command (a kid, a client_id).
WHOLE_COLUMNS = frozenset(
    {"kid", "client_id", "revoked_kid", "activated_kid", "retired_kid", "next_kid"}
)
# The narrowest a wrapped column gets before columns are left out: a date and its time
# on two lines ("2026-01-31", "12:00:00Z").
NARROWEST = 10


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Iterable[str],
    title: str | None = None,
    *,
    whole: Iterable[str] = WHOLE_COLUMNS,
) -> None:
    """Rows as a table that fits the terminal (``COLUMNS``; 80 when not a terminal).
    The ``whole`` columns keep their values on one line; the others wrap (a long word
    folded, never cut); when even that does not fit, columns are left out (empty ones
    first, then the last ones) and a note says so (``--json`` has them all). No rows:
    the title and "none"."""
    columns = list(columns)
    if not rows:
        typer.echo(f"{title}: none" if title else "none")
        return
    keep = set(whole)
    cells = {c: ["" if row.get(c) is None else _cell(row.get(c)) for row in rows] for c in columns}
    natural = {
        c: max(cell_len(c), *(cell_len(line) for v in cells[c] for line in v.splitlines() or [""]))
        for c in columns
    }
    console = Console()
    shown = list(columns)
    while True:
        widths = _fit(shown, natural, keep, console.width)
        droppable = [c for c in shown if c not in keep]
        if widths is not None or len(shown) == 1 or not droppable:
            break
        # Columns with nothing in them go first, then the last ones.
        empty = [c for c in droppable if not any(cells[c])]
        shown.remove((empty or droppable)[-1])
    table = Table(title=title)
    for column in shown:
        width = widths[column] if widths is not None else None
        if column in keep:
            table.add_column(column, no_wrap=True, width=width, overflow="ignore")
        else:
            table.add_column(column, width=width, overflow="fold")
    for index in range(len(rows)):
        table.add_row(*(cells[c][index] for c in shown))
    console.print(table)
    left_out = [c for c in columns if c not in shown]
    if left_out:
        console.print(f"(not shown at this width: {', '.join(left_out)}; --json has every field)")


def _fit(
    columns: list[str], natural: dict[str, int], keep: set[str], total: int
) -> dict[str, int] | None:
    """Each column's width so that the table (a border and two spaces of padding per
    column, one border more) is at most ``total`` wide: ``keep`` columns at their
    natural width, the others narrowed, widest first, down to ``NARROWEST``. None when
    that is not enough."""
    widths = {c: natural[c] for c in columns}
    room = total - 3 * len(columns) - 1
    excess = sum(widths.values()) - room
    while excess > 0:
        shrinkable = [c for c in columns if c not in keep and widths[c] > NARROWEST]
        if not shrinkable:
            return None
        widest = max(shrinkable, key=lambda c: widths[c])
        widths[widest] -= 1
        excess -= 1
    return widths


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def run(action: Callable[[Runtime], Awaitable[T]], *, check_schema: bool = True) -> T:
    """Build a runtime from the environment, run ``action``, close it; report errors.

    With ``check_schema``, a database that is not migrated is reported as such
    instead of as the first missing table.
    """
    configure_logging("warning")
    try:
        settings = load_settings()
        settings.check()
    except ConfigError as exc:
        fail(str(exc), 2)

    async def go() -> T:
        runtime = Runtime.build(settings)
        try:
            if check_schema and not await schema_is_current(runtime.database):
                raise CommandError(
                    "the database schema is not up to date: run `onepass db upgrade` "
                    "(or start `onepass serve`, which migrates)"
                )
            if check_schema:
                await runtime.load_installation_secrets()
            return await action(runtime)
        finally:
            owed = getattr(runtime.cache, "lost_writes", 0)
            if owed:
                typer.echo(
                    f"onepass: warning: Redis did not answer and {owed} cache invalidation(s) "
                    "could not be made there; once it answers, run "
                    "`onepass cache invalidate-canonical --all`",
                    err=True,
                )
            await runtime.close()

    try:
        return asyncio.run(go())
    except (CommandError, Refusal, ConfigError, DecryptionError, UnsupportedDatabase) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        # A database or Redis that does not answer is reported; anything else (a plain
        # ValueError, an IntegrityError that means nothing) is a bug: its traceback.
        if is_unavailable(exc) or type(exc).__module__.startswith("redis"):
            fail(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        raise


PasswordOption = typer.Option(
    None, "--password", help="The password (visible in shell history: prefer --password-stdin)."
)
PasswordStdinOption = typer.Option(
    False, "--password-stdin", help="Read the password from standard input."
)


def password_given(password: str | None, password_stdin: bool) -> str:
    """The password of ``--password`` or ``--password-stdin`` (exactly one)."""
    if password_stdin == (password is not None):
        fail("give exactly one of --password-stdin or --password", 2)
    return read_password_stdin() if password_stdin else password or ""


def read_password_stdin() -> str:
    value = sys.stdin.readline().rstrip("\n")
    if not value:
        fail("no password on standard input")
    return value
