from __future__ import annotations

from typing import Any

import typer

from onepass.accounts import service
from onepass.cli.common import (
    JsonOption,
    PasswordOption,
    PasswordStdinOption,
    fail,
    password_given,
    print_json,
    print_table,
    run,
)
from onepass.i18n import LANGUAGES
from onepass.identity.canonical import CanonicalResolver
from onepass.oauth import consents
from onepass.operators.audit import Actor
from onepass.playbook import merges, users
from onepass.runtime import Runtime

app = typer.Typer(help="End users.", no_args_is_help=True)

COLUMNS = users.COLUMNS
UserRef = typer.Argument(..., metavar="ID", help="Id, sub or email.")


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
        return await users.create_user(
            runtime, Actor.cli(), email=email, password=secret, name=name, email_verified=verified
        )

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"created user {data['id']} ({data['email']}), sub {data['sub']}")


@app.command("invite")
def invite(
    email: str = typer.Option(..., "--email", help="The address to invite."),
    language: str = typer.Option(
        "en", "--language", help="The language of the invitation mail: en or ko."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Mail a single-use invitation to create an account (ONEPASS_SIGNUP=invite); the
    link is printed too. It works once, for ONEPASS_INVITE_TTL (7 days)."""
    if language not in LANGUAGES:
        fail(f"--language must be one of {', '.join(LANGUAGES)}", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.invite_user(runtime, Actor.cli(), email, language=language)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"invited {data['email']} (until {data['expires_at']}): {data['link']}")


@app.command("reset-second-factor")
def reset_second_factor(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """Turn a user's two-step verification off (they lost the authenticator app and the
    recovery codes; check who they are first). Their sessions end; they can set it up
    again from /account."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.reset_second_factor(runtime, Actor.cli(), user_ref)

    data = run(action)
    if as_json:
        print_json(data)
    elif data["had_second_factor"]:
        typer.echo(f"two-step verification is off for user {data['id']}")
    else:
        typer.echo(f"user {data['id']} had no two-step verification; nothing changed")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List users (the first 1000)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            return [users.describe(u) for u in await service.list_users(session)]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, COLUMNS, title="users")


@app.command("show")
def show(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """Show one user: canonical user, identity links, live sessions, consents."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session(readonly=True) as session:
            return await users.show(session, runtime.clock, user_ref)

    data = run(action)
    if as_json:
        print_json(data)
        return
    lists = ("links", "sessions", "consents")
    print_table(
        [{"field": k, "value": v} for k, v in data.items() if k not in lists], ("field", "value")
    )
    typer.echo(
        f"{len(data['links'])} identity link(s), {len(data['sessions'])} live session(s), "
        f"{len(data['consents'])} consent(s): see `users sessions` and `users consents`"
    )


@app.command("update")
def update(
    user_ref: str = UserRef,
    email: str | None = typer.Option(
        None, "--email", help="A new email (unverified unless --email-verified)."
    ),
    name: str | None = typer.Option(None, "--name", help='A new display name ("" removes it).'),
    verified: bool | None = typer.Option(
        None, "--email-verified/--no-email-verified", help="Whether the email is verified."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a user's email, name or email_verified (RPs get user.updated)."""
    if email is None and name is None and verified is None:
        fail("give at least one of --email, --name, --email-verified/--no-email-verified", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.update_user(
            runtime, Actor.cli(), user_ref, email=email, name=name, email_verified=verified
        )

    data = run(action)
    if as_json:
        print_json(data)
    elif data["changed"]:
        typer.echo(f"updated user {data['id']}: {', '.join(data['changed'])}")
    else:
        typer.echo(f"user {data['id']} unchanged")


@app.command("disable")
def disable(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """Disable a user: no sign-in, sessions ended, tokens revoked (RPs get user.disabled)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.disable_user(runtime, Actor.cli(), user_ref)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"user {data['id']} {'disabled' if data['changed'] else 'was already disabled'}: "
            f"{data['sessions_ended']} session(s) ended, "
            f"{data['refresh_tokens_revoked']} refresh token(s) revoked"
        )


@app.command("enable")
def enable(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """Enable a disabled user again (RPs get user.enabled)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.enable_user(runtime, Actor.cli(), user_ref)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"user {data['id']} {'enabled' if data['changed'] else 'was not disabled'}")


@app.command("delete")
def delete(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """Delete a user: personal data erased, an anonymised row kept for identity links
    and the audit log, every session, consent and token gone (RPs get user.deleted)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.delete_user(runtime, Actor.cli(), user_ref)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"deleted user {data['id']} (sub {data['sub']}, now {data['email']}); "
            f"{data['webhooks_enqueued']} RP webhook(s) enqueued"
        )


@app.command("set-password")
def set_password(
    user_ref: str = UserRef,
    password: str | None = PasswordOption,
    password_stdin: bool = PasswordStdinOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a user a new password; their sessions end."""
    secret = password_given(password, password_stdin)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.set_password(runtime, Actor.cli(), user_ref, secret)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"new password for user {data['id']}; {data['sessions_ended']} session(s) ended")


@app.command("sessions")
def sessions(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """A user's live login sessions, newest first."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            user = await service.find_user(session, user_ref)
            found = await service.live_sessions(session, runtime.clock, user.id)
            return [users.describe_session(s) for s in found]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows, ("id", "created_at", "last_seen_at", "expires_at", "ip_address"), title="sessions"
        )


@app.command("revoke-sessions")
def revoke_sessions(
    user_ref: str = UserRef,
    session_ref: str | None = typer.Option(
        None,
        "--session",
        metavar="ID",
        help="Only this live session (its id or sid, from `users sessions`).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """End every login session of a user, or one (they sign in again); the RPs that had
    them get a back-channel logout."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.revoke_sessions(runtime, Actor.cli(), user_ref, session_ref=session_ref)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"user {data['id']}: {data['sessions_ended']} session(s) ended, "
            f"{data['logouts_enqueued']} back-channel logout(s) enqueued"
        )


@app.command("consents")
def consents_(user_ref: str = UserRef, as_json: bool = JsonOption) -> None:
    """The applications a user consented to or that hold a refresh token for them."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session(readonly=True) as session:
            user = await service.find_user(session, user_ref)
            return [
                c.to_dict() for c in await consents.list_consents(session, runtime.clock, user.id)
            ]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            ("client_id", "client_name", "scopes", "granted_at", "refresh_tokens"),
            title="consents",
        )


@app.command("revoke-consent")
def revoke_consent(
    user_ref: str = UserRef,
    app_ref: str = typer.Argument(
        ..., metavar="CLIENT_ID", help="The application (client_id or id)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Forget a user's consent to an application and revoke the refresh tokens it holds
    for them: it asks again at the next sign-in."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await users.revoke_consent(runtime, Actor.cli(), user_ref, app_ref)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(
            f"user {data['id']}, {data['client_id']}: consent "
            f"{'removed' if data['consent_removed'] else 'was not stored'}, "
            f"{data['refresh_tokens_revoked']} refresh token(s) revoked"
        )


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
