"""`onepass admin …`: administrators, their second factor, admin API tokens, the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

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
from onepass.operators import audit, service
from onepass.operators.audit import Actor
from onepass.operators.models import AdminToken
from onepass.playbook import admins
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
        return await admins.create_admin(runtime, Actor.cli(), email=email, password=secret or "")

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
        return await admins.enroll_totp(runtime, Actor.cli(), email=email)

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
        return await admins.create_token(
            runtime, Actor.cli(), email=email, scopes=scopes, ttl=lifetime
        )

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
        return await admins.revoke_token(runtime, Actor.cli(), token_id)

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


def _say_ended(data: dict[str, Any]) -> str:
    return (
        f"{data.get('sessions_ended', 0)} console session(s) ended, "
        f"{data.get('nonces_voided', 0)} unspent nonce(s) voided"
    )


@app.command("disable")
def disable(
    email: str = typer.Option(..., "--email", help="The administrator's email."),
    as_json: bool = JsonOption,
) -> None:
    """Disable an administrator: console sessions end, admin tokens and unspent step-up
    nonces are void (enabling again needs new tokens)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await admins.set_disabled(runtime, Actor.cli(), email=email, disabled=True)

    data = run(action)
    if as_json:
        print_json(data)
    elif not data["changed"]:
        typer.echo(f"administrator {data['email']} was already disabled")
    else:
        typer.echo(
            f"disabled administrator {data['email']}: {_say_ended(data)}, "
            f"{data['tokens_revoked']} admin token(s) revoked"
        )


@app.command("enable")
def enable(
    email: str = typer.Option(..., "--email", help="The administrator's email."),
    as_json: bool = JsonOption,
) -> None:
    """Enable a disabled administrator again (create new admin tokens for them)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await admins.set_disabled(runtime, Actor.cli(), email=email, disabled=False)

    data = run(action)
    if as_json:
        print_json(data)
    elif not data["changed"]:
        typer.echo(f"administrator {data['email']} was not disabled")
    else:
        typer.echo(f"enabled administrator {data['email']}")
        typer.echo(f"next: onepass admin tokens create --email {data['email']} --scope …")


@app.command("reset-totp")
def reset_totp(
    email: str = typer.Option(..., "--email", help="The administrator's email."),
    as_json: bool = JsonOption,
) -> None:
    """Remove an administrator's second factor (a lost or leaked authenticator): unspent
    nonces are void and console sessions end until `admin enroll-totp`."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await admins.reset_totp(runtime, Actor.cli(), email=email)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"removed the second factor of {data['email']}: {_say_ended(data)}")
        typer.echo(f"next: onepass admin enroll-totp --email {data['email']}")


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
