"""The actions that need a step-up, and the step-up itself.

``ACTIONS`` names the playbook's changes that the admin API and console offer: an
``action_request_nonce`` is issued for one action on one target, the target written in
its canonical form (``canonical_target``), so a nonce asked for with a client_id works
for the same application's internal id. ``grant_step_up`` checks the administrator's
TOTP code and issues the nonce; ``record_refusal`` writes the audit row of a request
the admin API or console refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import service as accounts
from onepass.accounts.models import User
from onepass.clients.registry import find_client
from onepass.operators import audit, service
from onepass.operators.audit import Actor
from onepass.refusals import Invalid
from onepass.runtime import Runtime


class UnknownAction(Invalid):
    pass


class InvalidTarget(Invalid):
    pass


@dataclass(frozen=True)
class Action:
    scope: str
    target: str  # what the target is, for error messages and docs


RETRY = "webhook_outbox.retry"
REPLAY_DLQ = "webhook_outbox.replay_dlq"
ROTATE_WEBHOOK_KEY = "webhook_keys.rotate"
COMPROMISE_WEBHOOK_KEY = "webhook_keys.compromise"
ROTATE_SIGNING_KEYS = "signing_keys.rotate"
ROTATE_SECRET_KEY = "secret_key.rotate"  # audited; the CLI's only (it is given the key)
MERGE_USERS = "users.merge"
INVALIDATE_CANONICAL = "cache.invalidate_canonical"
# Users and administrators (day-2 management).
UPDATE_USER = "users.update"
DISABLE_USER = "users.disable"
ENABLE_USER = "users.enable"
DELETE_USER = "users.delete"
SET_PASSWORD = "users.set_password"
REVOKE_SESSIONS = "users.revoke_sessions"
REVOKE_CONSENT = "users.revoke_consent"
DISABLE_ADMIN = "admins.disable"
ENABLE_ADMIN = "admins.enable"
RESET_TOTP = "admins.reset_totp"
# An administrator's own passkeys, for step-up (the console only: it runs WebAuthn).
ADD_ADMIN_PASSKEY = "admins.add_passkey"
REMOVE_ADMIN_PASSKEY = "admins.remove_passkey"
USER_ACTIONS = (
    UPDATE_USER,
    DISABLE_USER,
    ENABLE_USER,
    DELETE_USER,
    SET_PASSWORD,
    REVOKE_SESSIONS,
)
ADMIN_ACTIONS = (DISABLE_ADMIN, ENABLE_ADMIN, RESET_TOTP, ADD_ADMIN_PASSKEY, REMOVE_ADMIN_PASSKEY)

# Clients (RPs): ``playbook.clients``.
UPDATE_CLIENT = "clients.update"
ROTATE_CLIENT_SECRET = "clients.rotate_secret"
DISABLE_CLIENT = "clients.disable"
ENABLE_CLIENT = "clients.enable"
DELETE_CLIENT = "clients.delete"
CLIENT_ACTIONS = (UPDATE_CLIENT, ROTATE_CLIENT_SECRET, DISABLE_CLIENT, ENABLE_CLIENT, DELETE_CLIENT)
CREATE_CLIENT = "clients.create"  # audited; the CLI's only (it prints the new secret)
# Resource servers (RFC 8707): ``playbook.resources``; audited, the CLI's only.
CREATE_RESOURCE = "resources.create"
UPDATE_RESOURCE = "resources.update"
DELETE_RESOURCE = "resources.delete"

ACTIONS = {
    RETRY: Action("webhooks:write", "an outbox entry id"),
    REPLAY_DLQ: Action("webhooks:write", "an application (client_id or id)"),
    ROTATE_WEBHOOK_KEY: Action("keys:write", "an application (client_id or id)"),
    COMPROMISE_WEBHOOK_KEY: Action("keys:write", "APP/KID (an application and its key's kid)"),
    ROTATE_SIGNING_KEYS: Action("keys:write", '"jwks"'),
    MERGE_USERS: Action("users:write", "SOURCE->TARGET (users by id, sub or email)"),
    INVALIDATE_CANONICAL: Action("users:write", 'a user (id, sub or email), or "*" for all'),
    # Clients (RPs)
    **{
        name: Action("clients:write", "an application (client_id or id)") for name in CLIENT_ACTIONS
    },
    **{name: Action("users:write", "a user (id, sub or email)") for name in USER_ACTIONS},
    REVOKE_CONSENT: Action(
        "users:write", "USER/CLIENT_ID (a user by id, sub or email, an application)"
    ),
    **{name: Action("admins:write", "an administrator's email") for name in ADMIN_ACTIONS},
}


def action_named(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        raise UnknownAction(f"unknown action {name[:60]!r}; the actions are: " + ", ".join(ACTIONS))
    return action


# action_request_nonces.target and audit_log.target are String(300).
MAX_TARGET = 300


async def canonical_target(session: AsyncSession, action: str, target: str) -> str:
    """``target`` as the action names it when it spends a nonce; refuses what does not
    name an existing thing of the right kind."""
    spec = action_named(action)
    target = target.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        raise InvalidTarget(f"the target of {action} is {spec.target}")
    canonical = await _canonical_target(session, action, spec, target)
    if len(canonical) > MAX_TARGET:
        raise InvalidTarget(f"the target of {action} is {spec.target}")
    return canonical


async def _canonical_target(session: AsyncSession, action: str, spec: Action, target: str) -> str:
    if action == RETRY:
        # An outbox entry id fits in 64 bits.
        if not (target.isascii() and target.isdigit() and len(target) <= 18):
            raise InvalidTarget(f"the target of {action} is {spec.target}")
        return str(int(target))
    if action in (REPLAY_DLQ, ROTATE_WEBHOOK_KEY):
        return (await find_client(session, target)).client_id
    if action in CLIENT_ACTIONS:
        return (await find_client(session, target)).client_id
    if action == COMPROMISE_WEBHOOK_KEY:
        app_ref, _, kid = target.rpartition("/")
        if not app_ref or not kid:
            raise InvalidTarget(f"the target of {action} is {spec.target}")
        return f"{(await find_client(session, app_ref)).client_id}/{kid}"
    if action == ROTATE_SIGNING_KEYS:
        if target != "jwks":
            raise InvalidTarget(f'the target of {action} is "jwks"')
        return "jwks"
    if action == MERGE_USERS:
        # Exactly one arrow: "a->b->c" would name two different merges, and a nonce
        # asked for one must not serve the other.
        source, arrow, into = target.partition("->")
        if not arrow or "->" in into or not source.strip() or not into.strip():
            raise InvalidTarget(f"the target of {action} is {spec.target}")
        source_user = await accounts.find_user(session, source.strip())
        target_user = await accounts.find_user(session, into.strip())
        return f"{source_user.id}->{target_user.id}"
    if action == REVOKE_CONSENT:
        user_ref, _, app_ref = target.rpartition("/")
        if not user_ref.strip() or not app_ref.strip():
            raise InvalidTarget(f"the target of {action} is {spec.target}")
        user = await accounts.find_user(session, user_ref.strip())
        return f"{user.id}/{(await find_client(session, app_ref.strip())).client_id}"
    if action in ADMIN_ACTIONS:
        return (await service.find_admin(session, target)).email_normalized
    if target == "*" and action == INVALIDATE_CANONICAL:
        return "*"
    return str((await accounts.find_user(session, target)).id)


async def grant_step_up(
    session: AsyncSession,
    runtime: Runtime,
    actor: Actor,
    user_id: int,
    *,
    token_id: int | None,
    action: str,
    target: str,
    code: str,
    passkey: service.PasskeyProof | None = None,
) -> tuple[str, datetime]:
    """The step-up of the API and the console, in the caller's transaction: check
    ``code`` (or, from the console, ``passkey``), issue a nonce for ``action`` on the
    canonical ``target``, audit it. Returns the nonce and when it expires."""
    settings = runtime.settings
    nonce, expires_at = await service.issue_action_nonce(
        session,
        runtime.hasher,
        runtime.box,
        runtime.clock,
        runtime.cache,
        user_id,
        token_id=token_id,
        code=code,
        action=action,
        target=target,
        ttl=timedelta(seconds=settings.admin_step_up_ttl),
        max_failures=settings.admin_totp_max_failures,
        failure_window=settings.login_failure_window,
        passkey=passkey,
    )
    audit.add(
        session,
        runtime.clock,
        actor,
        f"step_up:{action}",
        target,
        detail={"with": "passkey" if passkey is not None else "totp"},
    )
    return nonce, expires_at


async def spend_nonce(
    session: AsyncSession,
    runtime: Runtime,
    user: User,
    raw: str | None,
    *,
    action: str,
    target: str,
    token_id: int | None,
) -> None:
    """Spend administrator ``user``'s step-up nonce for ``action`` on the canonical
    ``target`` (``operators.service.spend_nonce``), in the caller's transaction."""
    await service.spend_nonce(
        session,
        runtime.hasher,
        runtime.clock,
        user,
        raw,
        action=action,
        target=target,
        token_id=token_id,
    )


async def record_refusal(
    runtime: Runtime,
    actor: Actor,
    action: str,
    target: str | None,
    *,
    denied: bool,
    message: str,
) -> None:
    """The audit row of a request refused (``denied``: not allowed; otherwise failed),
    in a transaction of its own. The database being away is logged, not raised: the
    caller reports the refusal."""
    await audit.record_refusal(
        runtime.database,
        runtime.clock,
        actor,
        action,
        target,
        outcome=audit.DENIED if denied else audit.FAILED,
        message=message,
    )
