"""The ``onepass`` command: the root, and where each command group lives.

A group's module is imported only when the group is used (``onepass users list``
imports ``onepass.cli.users`` and nothing of ``onepass.cli.admin``), because every
command is a new process and importing all of them cost about a second each time.
``onepass --help`` lists every group, so it imports them all.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperGroup

from onepass import __version__

if TYPE_CHECKING:
    # Typer carries its own copy of Click (typer._click); these are its classes.
    from typer._click import Command, Context

# Every top-level command and group: name -> "module:attribute", a function for a
# command, a Typer for a group. The order is the order of `onepass --help` (Typer
# lists a group's commands before its sub-groups).
COMMANDS: dict[str, str] = {
    "serve": "onepass.cli.serve:serve",
    "triage": "onepass.cli.ops:triage_command",
    "db": "onepass.cli.db:app",
    "clients": "onepass.cli.clients:app",
    "resources": "onepass.cli.resources:app",
    "keys": "onepass.cli.keys:app",
    "users": "onepass.cli.users:app",
    "webhooks": "onepass.cli.webhooks:app",
    "mail": "onepass.cli.mail:app",
    "identity": "onepass.cli.identity:identity_app",
    "cache": "onepass.cli.identity:cache_app",
    "admin": "onepass.cli.admin:app",
    "incidents": "onepass.cli.ops:incidents_app",
    "secrets": "onepass.cli.secrets:app",
}


def _same(command: Command) -> Command:
    return command


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class LazyCommands(MutableMapping[str, "Command"]):
    """A group's commands by name, each built (and its module imported) on first use.

    Iterating gives the names without loading anything, so the group's help needs
    every command but choosing one, and "did you mean" suggestions, need none.
    """

    def __init__(self, loaders: dict[str, Callable[[], Command]]) -> None:
        self._loaders = dict(loaders)
        self._loaded: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._loaded:
            self._loaded[name] = self._loaders[name]()
        return self._loaded[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._loaders.setdefault(name, functools.partial(_same, command))
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaders[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


class LazyGroup(TyperGroup):
    """The root group: the commands of `COMMANDS`, loaded as they are used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        loaders: dict[str, Callable[[], Command]] = {
            name: functools.partial(_load, name) for name in COMMANDS
        }
        for name, command in self.commands.items():
            loaders[name] = functools.partial(_same, command)
        self.commands = LazyCommands(loaders)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)


app = typer.Typer(
    name="onepass",
    help="1pass: an OpenID Connect provider, and the operator's playbook as commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)


def _load(name: str) -> Command:
    """The Click command Typer would build for ``name`` registered on `app`."""
    target = _resolve(COMMANDS[name])
    holder = typer.Typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
        return typer.main.get_group_from_info(
            holder.registered_groups[0],
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=app.suggest_commands,
            rich_markup_mode=app.rich_markup_mode,
        )
    holder.command(name)(target)
    return typer.main.get_command_from_info(
        holder.registered_commands[0],
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
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


def main() -> None:
    app()
