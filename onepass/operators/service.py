"""Administrators, their TOTP second factor, admin API tokens and step-up nonces.

An administrator is a user account of its own (``users.is_admin``), never an ordinary
user's account promoted: `onepass admin create` refuses an email already in use.

Admin API tokens (``opa_…``) are bearer tokens limited to scopes and to a lifetime;
only their keyed hash is stored. Reads need a token with the right scope. Every action
that changes something also needs a step-up: the administrator proves a fresh second
factor (a TOTP code) to ``POST /api/v1/admin/step-up`` for one action on one target,
and gets an ``action_request_nonce``: single-use, short-lived (``ONEPASS_ADMIN_STEP_UP_TTL``,
5 minutes), bound to that administrator, that action and that target. The action spends
it before it runs, whatever its outcome.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import passkeys, totp
from onepass.accounts.models import Passkey, User
from onepass.accounts.passwords import PasswordHasher
from onepass.accounts.service import (
    AccountError,
    EmailInUse,
    create_user,
    normalize_email,
    revoke_user_sessions,
)
from onepass.cache import Cache
from onepass.clock import Clock
from onepass.crypto import KeyedHasher, SecretBox
from onepass.operators.errors import (
    AdminTokenNotFound,
    InsufficientScope,
    InvalidAdminToken,
    InvalidScope,
    InvalidTtl,
    StepUpRequired,
    TotpLocked,
    TotpNotEnrolled,
    WrongPasskey,
    WrongTotp,
)
from onepass.operators.models import ActionRequestNonce, AdminToken
from onepass.refusals import NotFound

log = structlog.get_logger("onepass.admin")

TOKEN_PREFIX = "opa_"
NONCE_PREFIX = "arn_"

# What each scope allows. Reads need the scope; changes need it and a step-up.
SCOPES = {
    "webhooks:read": "list and inspect webhook outbox entries, dead-letter counts",
    "webhooks:write": "retry and replay dead-lettered webhooks",
    "keys:write": "rotate the JWKS signing keys and RPs' webhook keys, revoke a leaked webhook key",
    "users:write": (
        "merge users, invalidate canonical-user resolutions; update, disable, enable and "
        "delete users, set their password, end their sessions, revoke their consents"
    ),
    "audit:read": "read the audit log",
    # Clients (RPs)
    "clients:read": "list and inspect OAuth applications (never their secrets)",
    "clients:write": "update, disable, enable, delete OAuth applications, rotate their secrets",
    # Day-2 management of users and administrators.
    "users:read": "search users, see a user's links, sessions and consents",
    "admins:read": "list administrators",
    "admins:write": "disable and enable administrators, reset their second factor",
}


class NotAnAdmin(AccountError, NotFound):
    pass


@dataclass(frozen=True)
class Enrollment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once
    record: AdminToken


@dataclass(frozen=True)
class Authenticated:
    token: AdminToken
    user: User

    def require(self, scope: str) -> None:
        if scope not in self.token.scopes:
            raise InsufficientScope(scope)


# -- administrators -------------------------------------------------------------------


async def create_admin(
    session: AsyncSession, passwords: PasswordHasher, clock: Clock, *, email: str, password: str
) -> User:
    existing = await session.scalar(
        select(User.id).where(User.email_normalized == normalize_email(email))
    )
    if existing is not None:
        raise EmailInUse(
            f"a user with the email {email.strip()!r} already exists; an administrator is an "
            "account of its own: use another address"
        )
    user = await create_user(
        session, passwords, clock, email=email, password=password, email_verified=True
    )
    user.is_admin = True
    await session.flush()
    return user


async def find_admin(session: AsyncSession, email: str) -> User:
    user = await session.scalar(select(User).where(User.email_normalized == normalize_email(email)))
    if user is None or not user.is_admin:
        raise NotAnAdmin(
            f"no administrator with the email {email.strip()[:80]!r} "
            "(create one with `onepass admin create`)"
        )
    return user


async def list_admins(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).where(User.is_admin).order_by(User.id)))


async def enroll_totp(
    session: AsyncSession, box: SecretBox, clock: Clock, user: User
) -> Enrollment:
    """A new TOTP secret (replacing any earlier one); nonces issued before are void and
    the administrator's console sessions end."""
    secret = totp.new_secret()
    user.totp_secret_encrypted = box.encrypt(secret.encode(), totp.box_context(user.id))
    user.totp_last_step = None
    user.updated_at = clock.now()
    await session.execute(
        update(ActionRequestNonce)
        .where(ActionRequestNonce.user_id == user.id, ActionRequestNonce.used_at.is_(None))
        .values(used_at=clock.now())
    )
    await revoke_user_sessions(session, clock, user.id)
    return Enrollment(secret, totp.provisioning_uri(secret, user.email))


async def _void_nonces(session: AsyncSession, clock: Clock, user_id: int) -> int:
    result = await session.execute(
        update(ActionRequestNonce)
        .where(ActionRequestNonce.user_id == user_id, ActionRequestNonce.used_at.is_(None))
        .values(used_at=clock.now())
        .returning(ActionRequestNonce.id)
    )
    return len(result.all())


@dataclass(frozen=True)
class Ended:
    """What ending an administrator's access voided."""

    nonces: int
    sessions: int
    tokens: int = 0


async def set_admin_disabled(
    session: AsyncSession, clock: Clock, user: User, disabled: bool
) -> Ended | None:
    """Disable an administrator (their console sessions end, their unspent nonces and
    admin tokens are void: enabling again needs new tokens) or enable them again; None
    when nothing changed."""
    if (user.disabled_at is not None) == disabled:
        return None
    now = clock.now()
    user.disabled_at = now if disabled else None
    user.updated_at = now
    if not disabled:
        return Ended(0, 0)
    tokens = await session.execute(
        update(AdminToken)
        .where(AdminToken.user_id == user.id, AdminToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(AdminToken.id)
    )
    return Ended(
        await _void_nonces(session, clock, user.id),
        await revoke_user_sessions(session, clock, user.id),
        len(tokens.all()),
    )


async def reset_totp(session: AsyncSession, clock: Clock, user: User) -> Ended:
    """Remove an administrator's second factor (a lost or leaked authenticator): the
    TOTP secret and their passkeys go, their unspent nonces are void and their console
    sessions end; until `onepass admin enroll-totp`, they can neither sign in to the
    console nor step up."""
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    await session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    user.updated_at = clock.now()
    return Ended(
        await _void_nonces(session, clock, user.id),
        await revoke_user_sessions(session, clock, user.id),
    )


# -- tokens ---------------------------------------------------------------------------


def check_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidScope("give at least one scope: " + ", ".join(SCOPES))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise InvalidScope(
            f"unknown scope {unknown[0][:60]!r}; the scopes are: " + ", ".join(SCOPES),
        )
    return sorted(set(scopes))


async def create_token(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    user: User,
    scopes: list[str],
    ttl: timedelta,
    *,
    max_ttl: timedelta,
) -> NewToken:
    if not user.is_admin or user.disabled_at is not None:
        raise NotAnAdmin(f"{user.email} is not an active administrator")
    if ttl <= timedelta(0) or ttl > max_ttl:
        raise InvalidTtl(
            f"an admin token lives between 1 s and {max_ttl.total_seconds():.0f} s "
            "(ONEPASS_ADMIN_TOKEN_MAX_TTL)",
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    record = AdminToken(
        token_hash=hasher.hash(raw),
        prefix=raw[:12],
        user_id=user.id,
        scopes=check_scopes(scopes),
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(record)
    await session.flush()
    return NewToken(raw, record)


async def list_tokens(session: AsyncSession, user: User | None = None) -> list[AdminToken]:
    query = select(AdminToken).order_by(AdminToken.id)
    if user is not None:
        query = query.where(AdminToken.user_id == user.id)
    return list(await session.scalars(query))


async def revoke_token(session: AsyncSession, clock: Clock, token_id: int) -> AdminToken:
    record = await session.get(AdminToken, token_id)
    if record is None:
        raise AdminTokenNotFound(f"no admin token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = clock.now()
    return record


async def authenticate(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, raw: str
) -> Authenticated:
    """The token and its administrator; ``InvalidAdminToken`` for anything else, without
    saying which check failed beyond what the holder of the token may know."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        raise InvalidAdminToken("not an admin token")
    record = await session.scalar(
        select(AdminToken).where(AdminToken.token_hash == hasher.hash(raw))
    )
    if record is None:
        raise InvalidAdminToken("unknown admin token")
    now = clock.now()
    if record.revoked_at is not None:
        raise InvalidAdminToken("this admin token was revoked")
    if record.expires_at <= now:
        raise InvalidAdminToken("this admin token expired; create a new one")
    user = await session.get(User, record.user_id)
    if user is None or not user.is_admin or user.disabled_at is not None:
        raise InvalidAdminToken("the administrator of this token is no longer active")
    # Written at most once a minute: reads stay reads.
    if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
        record.last_used_at = now
    return Authenticated(record, user)


# -- step-up --------------------------------------------------------------------------


def _throttle_key(user_id: int) -> str:
    return f"admin:totp:fail:{user_id}"


async def count_totp_attempt(
    cache: Cache, user_id: int, *, max_failures: int, failure_window: int
) -> None:
    """Count a TOTP check of administrator ``user_id`` before it runs; raise
    ``TotpLocked`` once ``max_failures`` codes within ``failure_window`` seconds were
    wrong (counted before checking, so concurrent guesses cannot all be checked).

    One counter per administrator for every place a code is checked: the API's and
    the console's step-up and the console sign-in. Only the right code of that
    administrator resets it (``totp_succeeded``), never a password sign-in anywhere.
    """
    if await cache.incr(_throttle_key(user_id), failure_window) > max_failures:
        raise TotpLocked(failure_window)


async def totp_succeeded(cache: Cache, user_id: int) -> None:
    await cache.delete(_throttle_key(user_id))


@dataclass(frozen=True)
class PasskeyProof:
    """An administrator's passkey answering the console's step-up challenge."""

    rp: passkeys.RelyingParty
    answer: passkeys.Answer


async def _check_passkey(
    session: AsyncSession, box: SecretBox, clock: Clock, user: User, proof: PasskeyProof
) -> None:
    """``WrongPasskey`` unless the answer is one of ``user``'s passkeys, verified on the
    device, to a step-up challenge made for them, and not given before."""
    try:
        challenge = passkeys.unseal(
            box, passkeys.Purpose.STEP_UP, proof.answer.state, clock.timestamp()
        )
        if challenge.user_id != user.id:
            raise passkeys.PasskeyRefused("challenge of another administrator")
        await passkeys.verify_assertion(
            session, proof.rp, clock, passkeys.Purpose.STEP_UP, challenge, proof.answer.credential
        )
    except passkeys.PasskeyRefused as exc:
        log.info("admin.step_up_passkey_refused", user_id=user.id, reason=exc.reason)
        raise WrongPasskey(
            "the passkey's answer was not accepted (another key, too late, or used "
            "already); try again"
        ) from None


async def issue_action_nonce(
    session: AsyncSession,
    hasher: KeyedHasher,
    box: SecretBox,
    clock: Clock,
    cache: Cache,
    user_id: int,
    *,
    token_id: int | None,
    code: str,
    action: str,
    target: str,
    ttl: timedelta,
    max_failures: int,
    failure_window: int,
    passkey: PasskeyProof | None = None,
) -> tuple[str, datetime]:
    """Check administrator ``user_id``'s TOTP code, or the answer of one of their
    passkeys (``passkey``, from the console: verified on the device, the answer taken
    once); issue a nonce for ``action`` on ``target`` (``token_id``: the admin token
    asking, None from the console).

    Wrong codes and refused answers count per administrator (``count_totp_attempt``:
    ``max_failures`` within ``failure_window`` seconds, then 429). The caller commits; a
    wrong code raises, its attempt counted in the cache.
    """
    # This session's row, locked: two step-ups racing with one code, one wins.
    user = await session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise InvalidAdminToken("the administrator of this token is no longer active")
    if user.totp_secret_encrypted is None:
        raise TotpNotEnrolled(
            "this administrator has no second factor yet: `onepass admin enroll-totp --email E`"
        )
    await count_totp_attempt(
        cache, user.id, max_failures=max_failures, failure_window=failure_window
    )
    if passkey is not None:
        await _check_passkey(session, box, clock, user, passkey)
    else:
        secret = box.decrypt(user.totp_secret_encrypted, totp.box_context(user.id)).decode()
        step = totp.matching_step(secret, code, clock.timestamp(), user.totp_last_step)
        if step is None:
            raise WrongTotp(
                "the code is wrong, expired, or was already used; enter the current code"
            )
        user.totp_last_step = step
    await totp_succeeded(cache, user.id)
    raw = NONCE_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    expires_at = now + ttl
    session.add(
        ActionRequestNonce(
            nonce_hash=hasher.hash(raw),
            user_id=user.id,
            admin_token_id=token_id,
            action=action,
            target=target,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return raw, expires_at


async def spend_nonce(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    user: User,
    raw: str | None,
    *,
    action: str,
    target: str,
    token_id: int | None,
) -> None:
    """Spend the nonce for this action on this target, asked for through this admin
    token (None: the console), or raise ``StepUpRequired`` saying why. One statement:
    two requests racing with one nonce, one wins; a revoked token's nonces die with it."""
    how = (
        f"prove a fresh second factor first: POST /api/v1/admin/step-up with "
        f'{{"totp_code": …, "action": "{action}", "target": "{target}"}}, then send the '
        '"action_request_nonce" it returns'
    )
    if not raw:
        raise StepUpRequired(f"this action needs a step-up; {how}")
    if not raw.startswith(NONCE_PREFIX) or len(raw) > 200:
        raise StepUpRequired(f"action_request_nonce is not a nonce; {how}")
    digest = hasher.hash(raw)
    now = clock.now()
    table = ActionRequestNonce
    spent = await session.execute(
        update(table)
        .where(
            table.nonce_hash == digest,
            table.user_id == user.id,
            table.action == action,
            table.target == target,
            table.admin_token_id == token_id
            if token_id is not None
            else table.admin_token_id.is_(None),
            table.used_at.is_(None),
            table.expires_at > now,
        )
        .values(used_at=now)
        .returning(table.id)
    )
    if spent.first() is not None:
        return
    found = await session.scalar(select(table).where(table.nonce_hash == digest))
    if found is None or found.user_id != user.id:
        why = "unknown action_request_nonce"
    elif found.admin_token_id != token_id:
        why = "this action_request_nonce was issued through another admin token or the console"
    elif found.used_at is not None:
        why = "this action_request_nonce was already used"
    elif found.expires_at <= now:
        why = "this action_request_nonce expired"
    else:
        why = (
            f"this action_request_nonce was issued for {found.action!r} on {found.target!r}, "
            f"not {action!r} on {target!r}"
        )
    raise StepUpRequired(f"{why}; {how}")
