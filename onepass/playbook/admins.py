"""The playbook's admins chapter: create an administrator, enrol their TOTP second
factor, create and revoke admin API tokens, disable and enable an administrator, reset
their second factor; each audited in its transaction. The rules are
``onepass.operators.service``'s."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from onepass.accounts import passkeys
from onepass.accounts.models import User
from onepass.accounts.passwords import PasswordHasher
from onepass.operators import audit, service
from onepass.operators.audit import Actor
from onepass.playbook.actions import (
    ADD_ADMIN_PASSKEY,
    DISABLE_ADMIN,
    ENABLE_ADMIN,
    REMOVE_ADMIN_PASSKEY,
    RESET_TOTP,
)
from onepass.refusals import Conflict, Invalid, NotFound
from onepass.runtime import Runtime

CREATE = "admin.create"
ENROLL_TOTP = "admin.enroll_totp"
CREATE_TOKEN = "admin.token_create"
REVOKE_TOKEN = "admin.token_revoke"


async def create_admin(
    runtime: Runtime, actor: Actor, *, email: str, password: str
) -> dict[str, Any]:
    """An administrator: an account of its own, never an existing user's."""
    async with runtime.database.session() as session:
        user = await service.create_admin(
            session, PasswordHasher(runtime.settings), runtime.clock, email=email, password=password
        )
        audit.add(session, runtime.clock, actor, CREATE, user.email)
        return {"id": user.id, "sub": user.sub, "email": user.email}


async def enroll_totp(runtime: Runtime, actor: Actor, *, email: str) -> dict[str, Any]:
    """A new TOTP secret for the administrator, replacing any earlier one (shown once)."""
    async with runtime.database.session() as session:
        user = await service.find_admin(session, email)
        enrollment = await service.enroll_totp(session, runtime.box, runtime.clock, user)
        audit.add(session, runtime.clock, actor, ENROLL_TOTP, user.email)
        return {"otpauth_uri": enrollment.otpauth_uri, "secret": enrollment.secret}


async def create_token(
    runtime: Runtime, actor: Actor, *, email: str, scopes: list[str], ttl: timedelta
) -> dict[str, Any]:
    """An admin API token for the administrator (the token shown once)."""
    async with runtime.database.session() as session:
        user = await service.find_admin(session, email)
        new = await service.create_token(
            session,
            runtime.hasher,
            runtime.clock,
            user,
            scopes,
            ttl,
            max_ttl=timedelta(seconds=runtime.settings.admin_token_max_ttl),
        )
        audit.add(
            session,
            runtime.clock,
            actor,
            CREATE_TOKEN,
            user.email,
            detail={"token_id": new.record.id, "scopes": new.record.scopes},
        )
        return {
            "token": new.token,
            "id": new.record.id,
            "scopes": new.record.scopes,
            "expires_at": new.record.expires_at,
        }


async def revoke_token(runtime: Runtime, actor: Actor, token_id: int) -> dict[str, Any]:
    async with runtime.database.session() as session:
        token = await service.revoke_token(session, runtime.clock, token_id)
        audit.add(session, runtime.clock, actor, REVOKE_TOKEN, str(token_id))
        return {"id": token.id, "prefix": token.prefix, "revoked_at": token.revoked_at}


class OwnAccount(Conflict):
    """An administrator may not disable their own account (another one does)."""


def describe_admin(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "totp_enrolled": user.totp_secret_encrypted is not None,
        "disabled": user.disabled_at is not None,
        "disabled_at": user.disabled_at,
        "created_at": user.created_at,
    }


async def set_disabled(
    runtime: Runtime, actor: Actor, *, email: str, disabled: bool
) -> dict[str, Any]:
    """Disable an administrator (console sessions end; unspent nonces and admin tokens
    are void) or enable them again (they need new admin tokens)."""
    async with runtime.database.session() as session:
        user = await service.find_admin(session, email)
        if disabled and actor.user_id == user.id:
            raise OwnAccount("you cannot disable your own account; another administrator can")
        ended = await service.set_admin_disabled(session, runtime.clock, user, disabled)
        detail = (
            {
                "nonces_voided": ended.nonces,
                "sessions_ended": ended.sessions,
                "tokens_revoked": ended.tokens,
            }
            if ended is not None
            else {}
        )
        action = DISABLE_ADMIN if disabled else ENABLE_ADMIN
        audit.add(session, runtime.clock, actor, action, user.email_normalized, detail=detail)
        return {**describe_admin(user), "changed": ended is not None, **detail}


async def reset_totp(runtime: Runtime, actor: Actor, *, email: str) -> dict[str, Any]:
    """Remove the administrator's second factor: nonces void, console sessions ended;
    `onepass admin enroll-totp` gives a new one."""
    async with runtime.database.session() as session:
        user = await service.find_admin(session, email)
        ended = await service.reset_totp(session, runtime.clock, user)
        detail = {"nonces_voided": ended.nonces, "sessions_ended": ended.sessions}
        audit.add(session, runtime.clock, actor, RESET_TOTP, user.email_normalized, detail=detail)
        return {**describe_admin(user), **detail}


async def add_passkey(
    runtime: Runtime,
    actor: Actor,
    *,
    email: str,
    rp: passkeys.RelyingParty,
    answer: passkeys.Answer,
    name: str,
) -> dict[str, Any]:
    """Register a passkey the administrator's browser created, for the console's
    step-up (raises ``PasskeyRefused``)."""
    async with runtime.database.session() as session:
        user = await service.find_admin(session, email)
        try:
            challenge = passkeys.unseal(
                runtime.box, passkeys.Purpose.REGISTER, answer.state, runtime.clock.timestamp()
            )
            key = await passkeys.register(
                session,
                rp,
                runtime.clock,
                user,
                challenge,
                answer.credential,
                name,
                require_user_verification=True,  # step-up requires it: a key that cannot is useless
            )
        except passkeys.PasskeyRefused as exc:
            raise PasskeyNotAdded(
                "the passkey was not added: the browser's answer did not verify, came too "
                f"late, or is for a passkey already added ({exc.reason}); try again"
            ) from None
        audit.add(
            session,
            runtime.clock,
            actor,
            ADD_ADMIN_PASSKEY,
            user.email_normalized,
            detail={"passkey_id": key.id, "name": key.name},
        )
        return {"id": key.id, "name": key.name}


async def remove_passkey(
    runtime: Runtime, actor: Actor, *, email: str, passkey_id: int
) -> dict[str, Any]:
    """Remove one of the administrator's passkeys (``NotFound`` if it is not theirs)."""
    async with runtime.database.session() as session:
        user = await service.find_admin(session, email)
        key = await passkeys.remove(session, user.id, passkey_id)
        if key is None:
            raise NoSuchPasskey(f"{email} has no passkey {passkey_id}")
        audit.add(
            session,
            runtime.clock,
            actor,
            REMOVE_ADMIN_PASSKEY,
            user.email_normalized,
            detail={"passkey_id": passkey_id, "name": key.name},
        )
        return {"id": passkey_id, "removed": True}


class NoSuchPasskey(NotFound):
    pass


class PasskeyNotAdded(Invalid):
    pass
