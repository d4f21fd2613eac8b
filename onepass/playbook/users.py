"""The playbook's users chapter: create, update, disable, enable and delete users, set
their password, end their sessions, revoke their consents; each audited in the
transaction of the change, and the ``user.*`` webhooks enqueued in it too
(``identity.user_events``). The rules are ``onepass.accounts.service``'s (the user),
``onepass.oauth.revocation`` and ``onepass.oauth.consents``'s (their tokens).

What disabling means, and what deleting keeps:

- disabled: the user cannot sign in (nor can any account merged into them, with
  canonical resolution on), their login sessions end, their refresh tokens (and the
  access tokens issued with them) are revoked, and /userinfo and /introspect refuse
  every access token issued for them;
- deleted: their email, name, password and second factor are erased; the row stays,
  disabled, with its id and ``sub`` (identity links and the audit log keep naming
  it) and the email ``deleted-ID@deleted.invalid``; their sessions and consents are
  deleted and every token revoked.

``show`` and ``describe`` are reads (what `users show` prints and the admin API
answers), kept here so the CLI and the API describe a user alike.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import invitations, passkeys, second_factor
from onepass.accounts import service as accounts
from onepass.accounts.models import LoginSession, User
from onepass.accounts.passwords import PasswordHasher, password_problem
from onepass.clients.registry import find_client
from onepass.clients.subjects import subject_for
from onepass.clock import Clock
from onepass.identity import user_events
from onepass.identity.canonical import canonical_user_id
from onepass.identity.service import links_of
from onepass.oauth import backchannel, consents
from onepass.oauth.revocation import revoke_user_refresh_tokens
from onepass.oauth.ssf import signals as ssf
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook import actions
from onepass.refusals import Conflict, NotFound
from onepass.runtime import Runtime
from onepass.webhooks import outbox as webhook_outbox
from onepass.webhooks import secevents
from onepass.webhooks.events import EventType
from onepass.webhooks.outbox import timestamp_text

CREATE = "users.create"
INVITE = "users.invite"
RESET_SECOND_FACTOR = "users.reset_second_factor"
ADD_SECOND_FACTOR = "users.second_factor_added"
REMOVE_SECOND_FACTOR = "users.second_factor_removed"
NEW_RECOVERY_CODES = "users.recovery_codes_replaced"

COLUMNS = ("id", "sub", "email", "email_verified", "name", "created_at", "disabled_at")


def describe(user: User) -> dict[str, Any]:
    """A user as `users list/show --json` print it."""
    return {
        **{column: getattr(user, column) for column in (*COLUMNS, "updated_at")},
        "disabled": user.disabled_at is not None,
        "deleted": user.deleted_at is not None,
        "deleted_at": user.deleted_at,
    }


def describe_session(login: LoginSession) -> dict[str, Any]:
    return {
        "id": login.id,
        "sid": login.sid,
        "created_at": login.created_at,
        "last_seen_at": login.last_seen_at,
        "expires_at": login.expires_at,
        "acr": login.acr,
        "ip_address": login.ip_address,
        "user_agent": login.user_agent,
    }


async def show(session: AsyncSession, clock: Clock, user_ref: str) -> dict[str, Any]:
    """`users show`: the user, their canonical user, links, live sessions, consents."""
    user = await accounts.find_user(session, user_ref)
    canonical_id = await canonical_user_id(session, user.id)
    canonical = user if canonical_id == user.id else await session.get(User, canonical_id)
    return {
        **describe(user),
        "canonical_id": canonical_id,
        "canonical_sub": canonical.sub if canonical is not None else None,
        "is_admin": user.is_admin,
        "links": await links_of(session, user.id),
        "sessions": [
            describe_session(s) for s in await accounts.live_sessions(session, clock, user.id)
        ],
        "consents": [c.to_dict() for c in await consents.list_consents(session, clock, user.id)],
    }


async def _locked(session: AsyncSession, user_ref: str) -> User:
    """The user, its row locked for the rest of the transaction (PostgreSQL)."""
    found = await accounts.find_user(session, user_ref)
    user = await session.get(User, found.id, with_for_update=True, populate_existing=True)
    assert user is not None, "the row was just read"
    return user


async def create_user(
    runtime: Runtime,
    actor: Actor,
    *,
    email: str,
    password: str | None,
    name: str | None = None,
    email_verified: bool = False,
) -> dict[str, Any]:
    """A user with a password (argon2id)."""
    async with runtime.database.session() as session:
        user = await accounts.create_user(
            session,
            PasswordHasher(runtime.settings),
            runtime.clock,
            email=email,
            password=password,
            name=name,
            email_verified=email_verified,
        )
        audit.add(session, runtime.clock, actor, CREATE, str(user.id))
        return {"id": user.id, "sub": user.sub, "email": user.email}


async def invite_user(
    runtime: Runtime, actor: Actor, email: str, *, language: str = "en"
) -> dict[str, Any]:
    """Mail ``email`` a single-use invitation to create an account (``ONEPASS_SIGNUP=
    invite``); the link is printed too, for the operator to pass on by other means."""
    if runtime.settings.signup != "invite":
        raise accounts.InvalidAccount(
            f"ONEPASS_SIGNUP is {runtime.settings.signup!r}: invitations need ONEPASS_SIGNUP=invite"
        )
    async with runtime.database.session() as session:
        link, row = await invitations.invite(
            session, runtime, email, language=language, invited_by=actor.name
        )
        audit.add(session, runtime.clock, actor, INVITE, row.email)
        return {"email": row.email, "link": link, "expires_at": timestamp_text(row.expires_at)}


async def update_user(
    runtime: Runtime,
    actor: Actor,
    user_ref: str,
    *,
    email: str | None = None,
    name: str | None = None,
    email_verified: bool | None = None,
) -> dict[str, Any]:
    """Change a user's email, name or email_verified; ``user.updated`` names the fields
    that changed (not their values: an RP may not hold the consent to see them)."""
    clock = runtime.clock
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        changed = await accounts.update_user(
            session, clock, user, email=email, name=name, email_verified=email_verified
        )
        enqueued = 0
        if changed:
            enqueued = await user_events.notify(
                session,
                clock,
                user,
                EventType.USER_UPDATED,
                {"changed": changed, "updated_at": timestamp_text(user.updated_at)},
            )
        if "email" in changed:
            # RISC identifier-changed without ``new-value``: as ``user.updated``, the RP
            # may not hold the consent to see the address (it reads /userinfo).
            await _signal(
                runtime, session, user, secevents.IDENTIFIER_CHANGED, ssf.timestamped(clock)
            )
        audit.add(
            session, clock, actor, actions.UPDATE_USER, str(user.id), detail={"changed": changed}
        )
        return {**describe(user), "changed": changed, "webhooks_enqueued": enqueued}


async def _logout(runtime: Runtime, session: AsyncSession, user: User, reason: str) -> int:
    """Tell the RPs that had a session of the user that every one ends (Back-Channel
    Logout, through the outbox), before the sessions and tokens that say who they are
    end."""
    return await backchannel.logout_user(
        session,
        runtime.clock,
        user.id,
        enforce=runtime.settings.enforce_canonical_resolution,
        reason=reason,
    )


async def _signal(
    runtime: Runtime, session: AsyncSession, user: User, event: str, body: dict[str, Any]
) -> int:
    """Tell the Shared Signals streams that asked for ``event`` about the user (CAEP,
    RISC: ``oauth.ssf.signals``), in the transaction of the change."""
    return await ssf.tell(session, runtime.clock, runtime.settings, user.id, event, body)


def _initiator(actor: Actor) -> str:
    """CAEP's ``initiating_entity``: the person (from /account) or an operator."""
    return "user" if actor.user_id is not None and actor.via == "account" else "admin"


async def _credential_change(
    runtime: Runtime, session: AsyncSession, actor: Actor, user: User, kind: str, change: str
) -> int:
    body = ssf.credential_change(runtime.clock, kind, change, _initiator(actor))
    return await _signal(runtime, session, user, secevents.CREDENTIAL_CHANGE, body)


async def _end_access(
    session: AsyncSession, clock: Clock, user: User, reason: str
) -> dict[str, int]:
    return {
        "sessions_ended": await accounts.revoke_user_sessions(session, clock, user.id),
        "refresh_tokens_revoked": await revoke_user_refresh_tokens(session, clock, user.id, reason),
    }


async def disable_user(runtime: Runtime, actor: Actor, user_ref: str) -> dict[str, Any]:
    """The user can no longer sign in; their sessions end and their tokens are revoked."""
    clock = runtime.clock
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        changed = await accounts.set_disabled(session, clock, user, True)
        logouts = await _logout(runtime, session, user, backchannel.USER_DISABLED)
        if changed:
            await _signal(
                runtime, session, user, secevents.ACCOUNT_DISABLED, ssf.timestamped(clock)
            )
        ended = await _end_access(session, clock, user, "user_disabled")
        enqueued = 0
        if changed:
            enqueued = await user_events.notify(
                session,
                clock,
                user,
                EventType.USER_DISABLED,
                {"disabled_at": timestamp_text(clock.now())},
            )
        audit.add(session, clock, actor, actions.DISABLE_USER, str(user.id), detail=dict(ended))
        return {
            "id": user.id,
            "sub": user.sub,
            "disabled": True,
            "changed": changed,
            **ended,
            "webhooks_enqueued": enqueued,
            "logouts_enqueued": logouts,
        }


async def enable_user(runtime: Runtime, actor: Actor, user_ref: str) -> dict[str, Any]:
    """A disabled user may sign in again (their revoked tokens stay revoked)."""
    clock = runtime.clock
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        changed = await accounts.set_disabled(session, clock, user, False)
        enqueued = 0
        if changed:
            enqueued = await user_events.notify(session, clock, user, EventType.USER_ENABLED)
            await _signal(runtime, session, user, secevents.ACCOUNT_ENABLED, ssf.timestamped(clock))
        audit.add(session, clock, actor, actions.ENABLE_USER, str(user.id))
        return {
            "id": user.id,
            "sub": user.sub,
            "disabled": False,
            "changed": changed,
            "webhooks_enqueued": enqueued,
        }


async def delete_user(runtime: Runtime, actor: Actor, user_ref: str) -> dict[str, Any]:
    """Erase the user's personal data, keep the anonymised row, revoke everything, and
    tell subscribed RPs (``user.deleted``), all in one transaction."""
    clock = runtime.clock
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        accounts.check_manageable(user)
        logouts = await _logout(runtime, session, user, backchannel.USER_DELETED)
        await _signal(runtime, session, user, secevents.ACCOUNT_PURGED, ssf.timestamped(clock))
        ended = await _end_access(session, clock, user, "user_deleted")
        forgotten = await consents.forget_user(session, user.id)
        await accounts.erase_user(session, clock, user)
        enqueued = await user_events.notify(
            session,
            clock,
            user,
            EventType.USER_DELETED,
            {"deleted_at": timestamp_text(clock.now())},
        )
        audit.add(
            session,
            clock,
            actor,
            actions.DELETE_USER,
            str(user.id),
            detail={**ended, "consents_deleted": forgotten},
        )
        return {
            "id": user.id,
            "sub": user.sub,
            "deleted": True,
            "email": user.email,
            **ended,
            "consents_deleted": forgotten,
            "webhooks_enqueued": enqueued,
            "logouts_enqueued": logouts,
        }


async def set_password(
    runtime: Runtime, actor: Actor, user_ref: str, password: str
) -> dict[str, Any]:
    """A new password (the same rules as `users create`); the user's sessions end."""
    problem = password_problem(password)
    if problem:
        raise accounts.InvalidAccount(problem)
    async with runtime.database.session(readonly=True) as session:
        accounts.check_manageable(await accounts.find_user(session, user_ref))
    # argon2 runs off the event loop and outside the write transaction.
    hashed = await asyncio.to_thread(PasswordHasher(runtime.settings).hash, password)
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        accounts.check_manageable(user)
        logouts = await _logout(runtime, session, user, backchannel.PASSWORD_SET)
        await _credential_change(runtime, session, actor, user, secevents.PASSWORD, "update")
        ended = await accounts.set_password_hash(session, runtime.clock, user, hashed)
        audit.add(session, runtime.clock, actor, actions.SET_PASSWORD, str(user.id))
        return {
            "id": user.id,
            "sub": user.sub,
            "sessions_ended": ended,
            "logouts_enqueued": logouts,
        }


Also = Callable[[AsyncSession, User], Awaitable[None]]


class FactorExists(Conflict):
    """A sign-in's enrolment (the account's first factor) met an account that has one."""


async def enrol_totp(
    runtime: Runtime,
    actor: Actor,
    user_ref: str,
    secret: str,
    step: int,
    *,
    also: Also,
    first_only: bool = False,
) -> list[str]:
    """Turn two-step verification on with an authenticator's ``secret`` (a code of
    ``step`` was just entered): the new recovery codes, shown once. ``also`` runs in
    the same transaction (the mail that tells the person)."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        accounts.check_manageable(user)
        first = not (await second_factor.factors_of(session, user)).any
        if first_only and not first:
            raise FactorExists("two-step verification is already on for this account")
        await second_factor.enrol_totp(session, runtime.box, user, secret, step)
        await _credential_change(runtime, session, actor, user, secevents.APP, "create")
        codes = await second_factor.replace_recovery_codes(
            session, runtime.hasher, runtime.clock, user.id
        )
        await also(session, user)
        audit.add(
            session,
            runtime.clock,
            actor,
            ADD_SECOND_FACTOR,
            str(user.id),
            detail={"factor": "totp", "first": first},
        )
        return codes


async def add_passkey(
    runtime: Runtime,
    actor: Actor,
    user_ref: str,
    rp: passkeys.RelyingParty,
    challenge: passkeys.Challenge,
    credential: str,
    name: str,
    *,
    also: Also,
    first_only: bool = False,
) -> list[str] | None:
    """Register the passkey the browser created (``passkeys.register``; raises
    ``PasskeyRefused``). The recovery codes, shown once, when it is the account's first
    second factor (None otherwise: the codes it has stand). ``also`` runs in the same
    transaction (the mail that tells the person)."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        accounts.check_manageable(user)
        first = not (await second_factor.factors_of(session, user)).any
        if first_only and not first:
            raise FactorExists("two-step verification is already on for this account")
        passkey = await passkeys.register(
            session, rp, runtime.clock, user, challenge, credential, name
        )
        await _credential_change(runtime, session, actor, user, secevents.FIDO2_PLATFORM, "create")
        codes = None
        if first or not await second_factor.remaining_recovery_codes(session, user.id):
            codes = await second_factor.replace_recovery_codes(
                session, runtime.hasher, runtime.clock, user.id
            )
        await also(session, user)
        audit.add(
            session,
            runtime.clock,
            actor,
            ADD_SECOND_FACTOR,
            str(user.id),
            detail={"factor": "passkey", "passkey_id": passkey.id, "first": first},
        )
        return codes


async def remove_passkey(
    runtime: Runtime, actor: Actor, user_ref: str, passkey_id: int, *, also: Also
) -> bool:
    """Remove one of the user's passkeys (with the recovery codes when it was the last
    factor); False if there is no such passkey of theirs."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        accounts.check_manageable(user)
        if not await second_factor.remove_passkey(session, user, passkey_id):
            return False
        await _credential_change(runtime, session, actor, user, secevents.FIDO2_PLATFORM, "delete")
        await also(session, user)
        audit.add(
            session,
            runtime.clock,
            actor,
            REMOVE_SECOND_FACTOR,
            str(user.id),
            detail={"factor": "passkey", "passkey_id": passkey_id},
        )
        return True


async def reset_second_factor(
    runtime: Runtime,
    actor: Actor,
    user_ref: str,
    *,
    action: str = RESET_SECOND_FACTOR,
    also: Also | None = None,
) -> dict[str, Any]:
    """Turn a user's two-step verification off: by an operator (authenticator app,
    passkeys and recovery codes all lost, identity checked out of band: every factor
    goes and their sessions end; their password alone signs in again), or by the
    person from /account (``action`` ``users.second_factor_removed``: the authenticator
    app only, their passkeys and sessions stay)."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        accounts.check_manageable(user)
        ended = 0
        if action == RESET_SECOND_FACTOR:
            had = (await second_factor.factors_of(session, user)).any
            await second_factor.remove_every_factor(session, user)
            await _logout(runtime, session, user, backchannel.SECOND_FACTOR_RESET)
            if had:
                await _credential_change(runtime, session, actor, user, secevents.APP, "delete")
            ended = await accounts.revoke_user_sessions(session, runtime.clock, user.id)
        else:
            had = second_factor.has_totp(user)
            await second_factor.remove_totp(session, user)
            if had:
                await _credential_change(runtime, session, actor, user, secevents.APP, "delete")
        if also is not None:
            await also(session, user)
        audit.add(
            session,
            runtime.clock,
            actor,
            action,
            str(user.id),
            detail={"had_second_factor": had, "sessions_ended": ended},
        )
        return {"id": user.id, "sub": user.sub, "had_second_factor": had, "sessions_ended": ended}


async def replace_recovery_codes(runtime: Runtime, actor: Actor, user_ref: str) -> list[str]:
    """New recovery codes for the user (the old ones stop working), shown once."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        codes = await second_factor.replace_recovery_codes(
            session, runtime.hasher, runtime.clock, user.id
        )
        audit.add(session, runtime.clock, actor, NEW_RECOVERY_CODES, str(user.id))
        return codes


class SessionNotFound(NotFound):
    """No live login session of the user by that id or sid."""


async def revoke_sessions(
    runtime: Runtime, actor: Actor, user_ref: str, *, session_ref: str | None = None
) -> dict[str, Any]:
    """End every login session of the user (they sign in again; tokens stay valid), or
    only the live one ``session_ref`` names (its id or sid, as `users sessions` lists
    them). The RPs of the ended sessions are told (back-channel logout)."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        if session_ref is not None:
            return await _revoke_one(runtime, session, actor, user, session_ref)
        logouts = await _logout(runtime, session, user, backchannel.SESSIONS_REVOKED)
        await _signal(
            runtime,
            session,
            user,
            secevents.SESSION_REVOKED,
            ssf.timestamped(runtime.clock, initiating_entity="admin"),
        )
        ended = await accounts.revoke_user_sessions(session, runtime.clock, user.id)
        audit.add(
            session,
            runtime.clock,
            actor,
            actions.REVOKE_SESSIONS,
            str(user.id),
            detail={"sessions_ended": ended, "logouts_enqueued": logouts},
        )
        return {
            "id": user.id,
            "sub": user.sub,
            "sessions_ended": ended,
            "logouts_enqueued": logouts,
        }


async def _revoke_one(
    runtime: Runtime, session: AsyncSession, actor: Actor, user: User, session_ref: str
) -> dict[str, Any]:
    clock = runtime.clock
    login = next(
        (
            s
            for s in await accounts.live_sessions(session, clock, user.id)
            if session_ref in (str(s.id), s.sid)
        ),
        None,
    )
    if login is None:
        raise SessionNotFound(
            f"user {user.id} has no live session {session_ref[:80]!r} "
            "(see `onepass users sessions USER`)"
        )
    logouts = await backchannel.logout_session(
        session,
        clock,
        login,
        enforce=runtime.settings.enforce_canonical_resolution,
        reason=backchannel.SESSION_REVOKED,
    )
    await _signal(
        runtime,
        session,
        user,
        secevents.SESSION_REVOKED,
        ssf.timestamped(clock, initiating_entity="admin"),
    )
    await accounts.revoke_login_session(session, clock, login.id)
    audit.add(
        session,
        clock,
        actor,
        actions.REVOKE_SESSIONS,
        str(user.id),
        detail={"session_id": login.id, "sessions_ended": 1, "logouts_enqueued": logouts},
    )
    return {"id": user.id, "sub": user.sub, "sessions_ended": 1, "logouts_enqueued": logouts}


async def revoke_consent(
    runtime: Runtime, actor: Actor, user_ref: str, app_ref: str
) -> dict[str, Any]:
    """Forget the user's consent to the application and revoke the refresh tokens it
    holds for the user: its next authorization asks again."""
    async with runtime.database.session() as session:
        user = await _locked(session, user_ref)
        app = await find_client(session, app_ref)
        removed, revoked = await consents.revoke_consent(session, runtime.clock, user.id, app)
        notified = None
        if removed or revoked:
            revoked_at = timestamp_text(runtime.clock.now())
            # The sub this RP knows (a pairwise RP's sector's), in the key (webhook-id) too.
            sub = await subject_for(session, runtime.clock, app, user.id, user.sub)
            notified = await webhook_outbox.enqueue(
                session,
                app,
                EventType.CONSENT_REVOKED.value,
                {"sub": sub, "client_id": app.client_id, "revoked_at": revoked_at},
                f"consent.revoked:{sub}:{secrets.token_urlsafe(9)}",
                clock=runtime.clock,
            )
        audit.add(
            session,
            runtime.clock,
            actor,
            actions.REVOKE_CONSENT,
            f"{user.id}/{app.client_id}",
            detail={"consent_removed": removed, "refresh_tokens_revoked": revoked},
        )
        return {
            "id": user.id,
            "sub": user.sub,
            "client_id": app.client_id,
            "consent_removed": removed,
            "refresh_tokens_revoked": revoked,
            "webhooks_enqueued": 1 if notified is not None else 0,
        }
