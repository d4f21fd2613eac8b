"""`onepass admin …`: administrators, their second factor, admin API tokens, the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from onepass.accounts.passwords import PasswordHasher
from onepass.admin import audit, service
from onepass.admin.audit import Actor
from onepass.admin.models import AdminToken
from onepass.cli.common import (
    CommandError,
    JsonOption,
    PasswordOption,
    PasswordStdinOption,
    password_given,
    print_json,
    print_table,
    run,
)
from onepass.durations import parse_duration
from onepass.runtime import Runtime

app = typer.Typer(
    help="Administrators, their TOTP second factor, admin API tokens, the audit log.",
    no_args_is_help=True,
)
tokens_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")

TOKEN_COLUMNS = (
    "id",
    "prefix",
    "email",
    "scopes",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


def _describe_token(token: AdminToken, email: str) -> dict[str, Any]:
    return {
        "id": token.id,
        "prefix": token.prefix,
        "user_id": token.user_id,
        "email": email,
        "scopes": token.scopes,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


@app.command("create")
def create(
    email: str = typer.Option(..., "--email", help="The administrator's email (a new account)."),
    password: str | None = PasswordOption,
    password_stdin: bool = PasswordStdinOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an administrator: an account of its own, never an existing user's."""
    secret = password_given(password, password_stdin)

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            user = await service.create_admin(
                session,
                PasswordHasher(runtime.settings),
                runtime.clock,
                email=email,
                password=secret or "",
            )
            audit.add(session, runtime.clock, Actor.cli(), "admin.create", user.email)
            return {"id": user.id, "sub": user.sub, "email": user.email}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"created administrator {data['id']} ({data['email']})")
        typer.echo(f"next: onepass admin enroll-totp --email {data['email']}")


@app.command("enroll-totp")
def enroll_totp(
    email: str = typer.Option(..., "--email", help="The administrator's email."),
    as_json: bool = JsonOption,
) -> None:
    """Give an administrator a new TOTP secret (step-up's second factor), replacing any
    earlier one. The secret is printed this once: add it to an authenticator app."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            user = await service.find_admin(session, email)
            enrollment = await service.enroll_totp(session, runtime.box, runtime.clock, user)
            audit.add(session, runtime.clock, Actor.cli(), "admin.enroll_totp", user.email)
            return {"otpauth_uri": enrollment.otpauth_uri, "secret": enrollment.secret}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"secret:      {data['secret']}")
        typer.echo(f"otpauth URI: {data['otpauth_uri']}")
        typer.echo(
            "Shown this once. Add it to an authenticator app (most read the URI as a QR code)."
        )


@tokens_app.command("create")
def tokens_create(
    email: str = typer.Option(..., "--email", help="The administrator who holds the token."),
    scopes: list[str] = typer.Option(
        ...,
        "--scope",
        help="What the token may do; repeat for several: " + ", ".join(service.SCOPES) + ".",
    ),
    ttl: str = typer.Option("1h", "--ttl", help="How long the token lives (e.g. 30m, 1h, 7d)."),
    as_json: bool = JsonOption,
) -> None:
    """Create an admin API token (shown this once). Changes also need a step-up with the
    administrator's TOTP code."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        try:
            lifetime = timedelta(seconds=parse_duration(ttl))
        except ValueError as exc:
            raise CommandError(f"--ttl: {exc}") from None
        async with runtime.database.session() as session:
            user = await service.find_admin(session, email)
            new = await service.create_token(
                session,
                runtime.hasher,
                runtime.clock,
                user,
                scopes,
                lifetime,
                max_ttl=timedelta(seconds=runtime.settings.admin_token_max_ttl),
            )
            audit.add(
                session,
                runtime.clock,
                Actor.cli(),
                "admin.token_create",
                user.email,
                detail={"token_id": new.record.id, "scopes": new.record.scopes},
            )
            return {
                "token": new.token,
                "id": new.record.id,
                "scopes": new.record.scopes,
                "expires_at": new.record.expires_at,
            }

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"token:   {data['token']}")
        typer.echo(f"scopes:  {' '.join(data['scopes'])}")
        typer.echo(f"expires: {data['expires_at'].isoformat()}")
        typer.echo("Shown this once.")


@tokens_app.command("list")
def tokens_list(
    email: str | None = typer.Option(None, "--email", help="Only this administrator's."),
    as_json: bool = JsonOption,
) -> None:
    """Admin tokens (never the tokens themselves: their first characters)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            admins = await service.list_admins(session)
            emails = {a.id: a.email for a in admins}
            user = await service.find_admin(session, email) if email else None
            tokens = await service.list_tokens(session, user)
            return [_describe_token(t, emails.get(t.user_id, "")) for t in tokens]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, TOKEN_COLUMNS, title="admin tokens")


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JsonOption
) -> None:
    """Revoke an admin token at once."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            token = await service.revoke_token(session, runtime.clock, token_id)
            audit.add(session, runtime.clock, Actor.cli(), "admin.token_revoke", str(token_id))
            return {"id": token.id, "prefix": token.prefix, "revoked_at": token.revoked_at}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"revoked admin token {data['id']} ({data['prefix']}…)")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Administrators."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            return [
                {
                    "id": u.id,
                    "email": u.email,
                    "totp_enrolled": u.totp_secret_encrypted is not None,
                    "created_at": u.created_at,
                    "disabled_at": u.disabled_at,
                }
                for u in await service.list_admins(session)
            ]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            ("id", "email", "totp_enrolled", "created_at", "disabled_at"),
            title="administrators",
        )


@app.command("audit")
def audit_log(
    limit: int = typer.Option(50, "--limit", min=1, max=10000, help="How many, newest first."),
    action_name: str | None = typer.Option(None, "--action", help="Only this action."),
    as_json: bool = JsonOption,
) -> None:
    """The audit log: who did what, through the admin API, the console or the CLI."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            entries = await audit.entries(session, limit=limit, action=action_name)
            return [audit.describe(e) for e in entries]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            ("id", "at", "actor", "via", "action", "target", "outcome"),
            title="audit log",
        )
