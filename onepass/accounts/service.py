"""Users and login sessions."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import AccountToken, LoginSession, Passkey, RecoveryCode, User
from onepass.accounts.passwords import PasswordHasher, password_problem
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.db.engine import Database
from onepass.ids import random_identifier
from onepass.mail.models import MailOutboxEntry
from onepass.refusals import Conflict, Invalid, NotFound, Refusal

# A pragmatic email check: one @, something on each side, a dot in the domain.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
MAX_EMAIL_LENGTH = 320

ACR_PASSWORD = "urn:1pass:acr:pwd"


class AccountError(Refusal):
    """A user operation that cannot be done; the message says why."""


class UserNotFound(AccountError, NotFound):
    pass


class InvalidAccount(AccountError, Invalid):
    """An email address or a password that cannot be used."""


class EmailInUse(AccountError, Conflict):
    """Another account has this email address."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    session: AsyncSession,
    passwords: PasswordHasher,
    clock: Clock,
    *,
    email: str,
    password: str | None,
    name: str | None = None,
    email_verified: bool = False,
    password_hash: str | None = None,
) -> User:
    """A new user; ``password_hash``: one already made (off the event loop, outside
    the transaction) instead of ``password``."""
    email = email.strip()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        raise InvalidAccount(f"{email[:80]!r} is not an email address")
    if password is not None and (problem := password_problem(password)):
        raise InvalidAccount(problem)
    now = clock.now()
    user = User(
        sub=random_identifier(22),
        email=email,
        email_normalized=normalize_email(email),
        email_verified=email_verified,
        name=name,
        password_hash=password_hash
        if password_hash is not None
        else (passwords.hash(password) if password is not None else None),
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise EmailInUse(f"a user with the email {email!r} already exists") from None
    return user


async def find_user(session: AsyncSession, user_ref: str) -> User:
    """By internal id, ``sub`` or email (the CLI's ID)."""
    if "\x00" in user_ref:  # PostgreSQL refuses NUL in text: not found, not an outage
        raise UserNotFound(f"no user with id, sub or email {user_ref[:80]!r}")
    user = None
    # An id fits in 64 bits (SQLite raises OverflowError past them, asyncpg DataError).
    if user_ref.isascii() and user_ref.isdigit() and len(user_ref) <= 18:
        user = await session.get(User, int(user_ref))
    if user is None:
        user = await session.scalar(select(User).where(User.sub == user_ref))
    if user is None:
        user = await session.scalar(
            select(User).where(User.email_normalized == normalize_email(user_ref))
        )
    if user is None:
        raise UserNotFound(f"no user with id, sub or email {user_ref[:80]!r}")
    return user


async def list_users(session: AsyncSession, *, limit: int = 1000) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.id).limit(limit)))


@dataclass(frozen=True)
class PasswordCheck:
    """A password found right by ``check_password``."""

    user_id: int
    matched_hash: str
    new_hash: str | None  # argon2's parameters changed: the password hashed anew


async def check_password(
    database: Database, passwords: PasswordHasher, email: str, password: str
) -> PasswordCheck | None:
    """Whether ``password`` is the password of the user with ``email``; same work
    either way (an unknown email is checked against a dummy hash).

    argon2 takes tens of milliseconds of CPU: it runs off the event loop, and outside
    any transaction. On SQLite a write transaction holds the database's one write
    lock for as long as it lasts, so sign-ins whose passwords were checked inside one
    queued behind each other's argon2 until the busy timeout gave up (503s under 40
    concurrent sign-ins). ``authenticate`` then reads the user in the caller's
    transaction.
    """
    async with database.session(readonly=True) as session:
        row = (
            await session.execute(
                select(User.id, User.password_hash, User.disabled_at).where(
                    User.email_normalized == normalize_email(email[:MAX_EMAIL_LENGTH])
                )
            )
        ).first()
    stored = row.password_hash if row is not None else None
    if not await asyncio.to_thread(passwords.verify, stored, password[:2048]):
        return None
    if row is None or stored is None or row.disabled_at is not None:
        return None
    new_hash = (
        await asyncio.to_thread(passwords.hash, password)
        if passwords.needs_rehash(stored)
        else None
    )
    return PasswordCheck(row.id, stored, new_hash)


async def authenticate(
    session: AsyncSession, clock: Clock, check: PasswordCheck | None
) -> User | None:
    """The user a right password (``check_password``) is for, read in the caller's
    transaction; None if it was not right, or if the user was disabled or given
    another password since. Stores the new hash of a rehash."""
    if check is None:
        return None
    user = await session.get(User, check.user_id)
    if user is None or user.disabled_at is not None or user.password_hash != check.matched_hash:
        return None
    if check.new_hash is not None:
        user.password_hash = check.new_hash
        user.updated_at = clock.now()
    return user


@dataclass(frozen=True)
class NewLoginSession:
    session: LoginSession
    token: str  # for the cookie; only its hash is stored


async def create_login_session(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    user: User,
    *,
    ttl: int,
    amr: list[str],
    acr: str,
    ip_address: str | None,
    user_agent: str | None,
    token_domain: str = "",
) -> NewLoginSession:
    """A login session; its cookie token is hashed with ``token_domain`` in front, so
    that a token of one kind of session (the admin console's) is no token of another."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    login = LoginSession(
        token_hash=hasher.hash(token_domain + token),
        sid=secrets.token_urlsafe(16),
        user_id=user.id,
        auth_time=now,
        amr=amr,
        acr=acr,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=ttl),
        ip_address=(ip_address or "")[:64] or None,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(login)
    await session.flush()
    return NewLoginSession(login, token)


async def session_from_token(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, token: str | None
) -> tuple[LoginSession, User] | None:
    """The live login session behind a cookie value, with its user."""
    if not token or len(token) > 128:
        return None
    row = await session.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == hasher.hash(token))
    )
    found = row.first()
    if found is None:
        return None
    login, user = found
    if login.revoked_at is not None or login.expires_at <= clock.now() or user.disabled_at:
        return None
    return login, user


async def revoke_login_session(session: AsyncSession, clock: Clock, login_id: int) -> None:
    await session.execute(
        update(LoginSession)
        .where(LoginSession.id == login_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


async def revoke_user_sessions(session: AsyncSession, clock: Clock, user_id: int) -> int:
    result = await session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return cast("CursorResult[Any]", result).rowcount or 0


# -- day-2 management (the playbook's users chapter calls these) ------------------------

MAX_NAME_LENGTH = 200
# A deleted user's email: `.invalid` (RFC 2606) is no one's domain, and the id keeps
# it unique; `users create` cannot take it back (the address stays in use).
DELETED_EMAIL_DOMAIN = "deleted.invalid"


class UserDeleted(AccountError, Conflict):
    """The user was deleted: only reads are left."""


class IsAdministrator(AccountError, Conflict):
    """An administrator's account is managed with `onepass admin …`, not `users …`."""


def deleted_email(user_id: int) -> str:
    return f"deleted-{user_id}@{DELETED_EMAIL_DOMAIN}"


def check_manageable(user: User) -> None:
    """Refuse a change to a deleted user or to an administrator's account."""
    if user.deleted_at is not None:
        raise UserDeleted(f"user {user.id} was deleted; nothing is left to change")
    if user.is_admin:
        raise IsAdministrator(
            f"user {user.id} is an administrator: use `onepass admin disable|enable|reset-totp`"
        )


def check_email(email: str) -> str:
    email = email.strip()
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        raise InvalidAccount(f"{email[:80]!r} is not an email address")
    return email


def check_name(name: str) -> str | None:
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidAccount(
            f"a name is at most {MAX_NAME_LENGTH} characters, without control characters"
        )
    return name or None


async def update_user(
    session: AsyncSession,
    clock: Clock,
    user: User,
    *,
    email: str | None = None,
    name: str | None = None,
    email_verified: bool | None = None,
) -> list[str]:
    """Change what is given; return the names of the fields that changed. A new email
    is unverified unless ``email_verified`` says otherwise; an empty name removes it."""
    check_manageable(user)
    changed: list[str] = []
    if email is not None:
        email = check_email(email)
        if email != user.email:
            taken = await session.scalar(
                select(User.id).where(
                    User.email_normalized == normalize_email(email), User.id != user.id
                )
            )
            if taken is not None:
                raise EmailInUse(f"a user with the email {email!r} already exists")
            user.email = email
            user.email_normalized = normalize_email(email)
            changed.append("email")
            if email_verified is None and user.email_verified:
                user.email_verified = False
                changed.append("email_verified")
    if email_verified is not None and email_verified != user.email_verified:
        user.email_verified = email_verified
        changed.append("email_verified")
    if name is not None:
        new_name = check_name(name)
        if new_name != user.name:
            user.name = new_name
            changed.append("name")
    if changed:
        user.updated_at = clock.now()
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise EmailInUse(f"a user with the email {email!r} already exists") from None
    return changed


async def set_disabled(session: AsyncSession, clock: Clock, user: User, disabled: bool) -> bool:
    """Disable or enable ``user``; whether anything changed. The caller ends the
    user's sessions and revokes their tokens."""
    check_manageable(user)
    if (user.disabled_at is not None) == disabled:
        return False
    now = clock.now()
    user.disabled_at = now if disabled else None
    user.updated_at = now
    return True


async def set_password_hash(
    session: AsyncSession, clock: Clock, user: User, password_hash: str
) -> int:
    """Store a new password (hashed by the caller, outside the transaction) and end the
    user's login sessions; returns how many ended."""
    check_manageable(user)
    user.password_hash = password_hash
    user.updated_at = clock.now()
    return await revoke_user_sessions(session, clock, user.id)


async def erase_user(session: AsyncSession, clock: Clock, user: User) -> None:
    """Erase ``user``'s personal data, keeping the row (its id and ``sub``) disabled and
    marked deleted: identity links and the audit log keep naming it. Its login sessions
    (with their IP addresses and browsers), recovery codes, links and mail go; the
    caller revokes its tokens."""
    check_manageable(user)
    now = clock.now()
    user.email = deleted_email(user.id)
    user.email_normalized = user.email
    user.email_verified = False
    user.name = None
    user.password_hash = None
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    user.disabled_at = user.disabled_at or now
    user.deleted_at = now
    user.updated_at = now
    await session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    # Passkeys, recovery codes, links sent by mail, and the mail itself (its address,
    # its text).
    await session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await session.execute(delete(AccountToken).where(AccountToken.user_id == user.id))
    await session.execute(delete(MailOutboxEntry).where(MailOutboxEntry.user_id == user.id))
    await session.flush()


async def live_sessions(session: AsyncSession, clock: Clock, user_id: int) -> list[LoginSession]:
    """The user's login sessions that are neither revoked nor expired, newest first."""
    return list(
        await session.scalars(
            select(LoginSession)
            .where(
                LoginSession.user_id == user_id,
                LoginSession.revoked_at.is_(None),
                LoginSession.expires_at > clock.now(),
            )
            .order_by(LoginSession.id.desc())
        )
    )


async def search_users(session: AsyncSession, query: str, *, limit: int = 100) -> list[User]:
    """Users whose id or ``sub`` is ``query``, or whose email contains it
    (case-insensitively); every user (the first ``limit``) for an empty query."""
    query = query.strip().replace("\x00", "")
    statement = select(User).order_by(User.id).limit(limit)
    if not query:
        return list(await session.scalars(statement))
    pattern = (
        "%"
        + normalize_email(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        + "%"
    )
    condition = (User.sub == query) | User.email_normalized.like(pattern, escape="\\")
    if query.isascii() and query.isdigit() and len(query) <= 18:
        condition = condition | (User.id == int(query))
    return list(await session.scalars(statement.where(condition)))
