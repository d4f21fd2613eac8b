from __future__ import annotations

from typing import Any

import typer

from onepass.accounts import service
from onepass.accounts.models import User
from onepass.accounts.passwords import PasswordHasher
from onepass.cli.common import (
    JsonOption,
    PasswordOption,
    PasswordStdinOption,
    password_given,
    print_json,
    print_table,
    run,
)
from onepass.identity.canonical import CanonicalResolver, canonical_user_id
from onepass.operators.audit import Actor
from onepass.playbook import merges
from onepass.runtime import Runtime

app = typer.Typer(help="End users.", no_args_is_help=True)

COLUMNS = ("id", "sub", "email", "email_verified", "name", "created_at", "disabled_at")


def describe(user: User) -> dict[str, Any]:
    return {column: getattr(user, column) for column in (*COLUMNS, "updated_at")}


@app.command("create")
def create(
    email: str = typer.Option(
        ..., "--email", help="The user's email (unique, case-insensitively)."
    ),
    password: str | None = PasswordOption,
    password_stdin: bool = PasswordStdinOption,
    name: str | None = typer.Option(None, "--name", help="Display name."),
    verified: bool = typer.Option(False, "--email-verified", help="Mark the email as verified."),
    as_json: bool = JsonOption,
) -> None:
    """Create a user with a password (argon2id)."""
    secret = password_given(password, password_stdin)

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            user = await service.create_user(
                session,
                PasswordHasher(runtime.settings),
                runtime.clock,
                email=email,
                password=secret,
                name=name,
                email_verified=verified,
            )
            return {"id": user.id, "sub": user.sub, "email": user.email}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"created user {data['id']} ({data['email']}), sub {data['sub']}")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List users (the first 1000)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            return [describe(u) for u in await service.list_users(session)]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS, title="users")


@app.command("show")
def show(
    user_ref: str = typer.Argument(..., metavar="ID", help="Id, sub or email."),
    as_json: bool = JsonOption,
) -> None:
    """Show one user."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            user = await service.find_user(session, user_ref)
            return {**describe(user), "canonical_id": await canonical_user_id(session, user.id)}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))


@app.command("merge")
def merge_command(
    source: str = typer.Argument(
        ..., metavar="SOURCE_ID", help="The user merged away (id, sub or email)."
    ),
    target: str = typer.Argument(
        ..., metavar="TARGET_ID", help="The user kept (id, sub or email)."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in identity_links)."),
    actor: str = typer.Option("cli", "--actor", help="Who asks (kept in identity_links)."),
    as_json: bool = JsonOption,
) -> None:
    """Merge SOURCE into TARGET: one transaction, then every subscribed RP is told."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await merges.merge_by_reference(
            runtime,
            CanonicalResolver(runtime.cache, runtime.settings.canonical_cache_ttl),
            Actor.cli(),
            source,
            target,
            reason=reason,
            link_actor=actor,
        )

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"merged user {data['source_id']} into {data['target_id']} (link {data['link_id']}); "
            f"{data['webhooks_enqueued']} RP webhook(s) enqueued"
        )
