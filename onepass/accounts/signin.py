"""Signing in with an email and a password: one service behind ``/login`` (end-users,
``oauth.authorize_routes``) and ``/admin/login`` (administrators, the admin console).

The steps, the same for both:

1. The attempt is counted by the throttle (``LoginThrottle.attempt``) before its
   password is checked: of any number of concurrent attempts, at most the limit are
   checked. Over the limit: ``LoginThrottled``, and nothing is checked.
2. The password is checked outside any transaction (``service.check_password``:
   argon2 runs off the event loop, and on SQLite a write transaction holds the
   database's one write lock).
3. Only a right password opens the write transaction. There the account is read
   again (``service.authenticate``: disabled or given another password meanwhile is
   a wrong password), the door admits it or not, and a login session of the door's
   kind is created.
4. A success, or a refusal that proved the password (``SignInRefused.counts`` false),
   gives the throttle its attempt back.

What differs is the ``Door``: the kind of session (lifetime, acr, amr, the domain its
cookie token is hashed under), the words a wrong password gets, and the steps that
admit an account. ``EndUserDoor`` (``/login``) refuses an administrator with the
answer a wrong password gets, after the same work, and signs in the account's
canonical user; the console's door (``admin.console_service``) requires an
administrator and a TOTP code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import passkeys
from onepass.accounts import service as accounts
from onepass.accounts.models import User
from onepass.accounts.passwords import PasswordHasher
from onepass.accounts.second_factor import ACR_MFA, factors_of
from onepass.accounts.throttle import LoginThrottle
from onepass.clock import Clock
from onepass.crypto import KeyedHasher, SecretBox
from onepass.db.engine import Database
from onepass.i18n import DEFAULT as DEFAULT_LANGUAGE
from onepass.i18n import N_, translate
from onepass.services import Service

log = structlog.get_logger("onepass.accounts")

WRONG_PASSWORD = N_("Incorrect email or password.")
PASSKEY_REFUSED = N_("That passkey was not accepted. Try again, or sign in with your password.")
# After the password: the other way on is a code, not the password again.
PASSKEY_REFUSED_SECOND_STEP = N_("That passkey was not accepted. Try again, or enter a code.")
THROTTLED_MINUTE = N_("Too many failed attempts. Try again in a minute.")
THROTTLED_MINUTES = N_("Too many failed attempts. Try again in %(minutes)d minutes.")


def try_again_in(seconds: int) -> str:
    """``Try again in 3 minutes.`` (never less than one minute)."""
    minutes = max(1, seconds // 60)
    return f"Try again in {minutes} minute{'s' if minutes > 1 else ''}."


def throttled_message(retry_after: int, language: str = DEFAULT_LANGUAGE) -> str:
    """What a page says to an attempt refused by the throttle (``LoginThrottled``)."""
    minutes = max(1, retry_after // 60)
    if minutes == 1:
        return translate(language, THROTTLED_MINUTE)
    return translate(language, THROTTLED_MINUTES, minutes=minutes)


@dataclass(frozen=True)
class Attempt:
    email: str
    password: str = field(repr=False)
    ip: str
    user_agent: str | None


@dataclass(frozen=True)
class SessionKind:
    ttl: int  # seconds
    acr: str
    amr: tuple[str, ...]
    # The login session's cookie token is hashed with this in front
    # (``service.create_login_session``): one kind's token is no token of another.
    token_domain: str = ""


@dataclass(frozen=True)
class SignedIn:
    login: accounts.NewLoginSession
    user: User


class SignInRefused(accounts.AccountError):
    """Sign-in refused. ``message`` is what the page shows (never which check failed,
    except to someone who proved the password); ``reason`` is for the audit log;
    ``counts``: a failed attempt for the throttle; ``retry_after``: locked out (429)
    for this long."""

    def __init__(
        self, message: str, reason: str, *, counts: bool = True, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.counts = counts
        self.retry_after = retry_after


class Door:
    """One way in: what a sign-in through it admits, and the session it gives."""

    def __init__(self, kind: SessionKind, wrong_password: str = WRONG_PASSWORD) -> None:
        self.kind = kind
        self.wrong_password_message = wrong_password

    async def admit(self, session: AsyncSession, user: User, attempt: Attempt) -> User | None:
        """The user to sign in, read in the write transaction, for ``user`` whose
        password was right; None to refuse as a wrong password (the transaction
        commits), or raise ``SignInRefused`` (it rolls back)."""
        return user

    async def signed_in(self, session: AsyncSession, signed_in: SignedIn, attempt: Attempt) -> None:
        """In the transaction that created the session, before it commits."""

    async def needs_second_factor(self, session: AsyncSession, user: User) -> bool | None:
        """Whether the password alone does not sign ``user`` in through this door: the
        sign-in waits for a code (``SecondFactorRequired``), and no session is made.
        None: it does not; False: it does, and the user has no factor to enrol first."""
        return None

    async def wrong_password(self, database: Database, attempt: Attempt) -> SignInRefused:
        """The refusal of a wrong password (no transaction is open)."""
        return SignInRefused(self.wrong_password_message, "wrong password")


Resolve = Callable[[AsyncSession, User], Awaitable[User]]


class EndUserDoor(Door):
    """``/login``, signing in to relying parties. An administrator is an account of its
    own, for the admin console (password and TOTP) only, so its password alone signs
    in nowhere: refused with the answer a wrong password gets, after the same work
    (the page says nothing about which accounts administer). ``resolve``: the user
    tokens and sessions are issued for (``identity.canonical.effective_user``)."""

    def __init__(
        self, ttl: int, resolve: Resolve | None = None, *, require_second_factor: bool = False
    ) -> None:
        """``require_second_factor``: the RP asked for it (``acr_values``): a user
        without one is stopped after the password too, to enrol one."""
        super().__init__(SessionKind(ttl=ttl, acr=accounts.ACR_PASSWORD, amr=("pwd",)))
        self._resolve = resolve
        self._require_second_factor = require_second_factor

    async def admit(self, session: AsyncSession, user: User, attempt: Attempt) -> User | None:
        if user.is_admin:
            return None
        resolved = await self._resolve(session, user) if self._resolve is not None else user
        # Disabling a canonical user disables the person: no account merged into it
        # signs in as it.
        return None if resolved.disabled_at is not None else resolved

    async def needs_second_factor(self, session: AsyncSession, user: User) -> bool | None:
        enrolled = (await factors_of(session, user)).any
        return True if enrolled else (False if self._require_second_factor else None)


class SecondFactorRequired(Exception):
    """The password was right and the account has a second factor: the sign-in waits
    for its code (``accounts.second_factor``) for ``user``; ``enrolled`` false: the
    door requires one and the user has none yet (enrolment first)."""

    def __init__(self, user: User, enrolled: bool = True) -> None:
        super().__init__("a second factor is required")
        self.user = user
        self.enrolled = enrolled


class SignIn:
    """The sign-in service of one process (``SIGN_IN``)."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        hasher: KeyedHasher,
        passwords: PasswordHasher,
        throttle: LoginThrottle,
        box: SecretBox,
    ) -> None:
        self.box = box
        self.database = database
        self.clock = clock
        self.hasher = hasher
        self.passwords = passwords
        self.throttle = throttle

    async def sign_in(self, door: Door, attempt: Attempt) -> SignedIn:
        """A new login session through ``door``; raises ``LoginThrottled`` (nothing was
        checked) or ``SignInRefused``."""
        await self.throttle.attempt(attempt.email, attempt.ip)
        try:
            signed_in = await self._check(door, attempt)
        except SignInRefused as exc:
            if not exc.counts:  # the password was right
                await self.throttle.succeeded(attempt.email, attempt.ip)
            raise
        except SecondFactorRequired:
            await self.throttle.succeeded(attempt.email, attempt.ip)
            raise
        await self.throttle.succeeded(attempt.email, attempt.ip)
        return signed_in

    async def _check(self, door: Door, attempt: Attempt) -> SignedIn:
        check = (
            await accounts.check_password(
                self.database, self.passwords, attempt.email, attempt.password
            )
            if attempt.email and attempt.password
            else None
        )
        signed_in = None
        waiting: SecondFactorRequired | None = None
        if check is not None:  # a write transaction only for a right password
            async with self.database.session() as session:
                user = await accounts.authenticate(session, self.clock, check)
                if user is not None:
                    user = await door.admit(session, user, attempt)
                needs = await door.needs_second_factor(session, user) if user else None
                if user is not None and needs is not None:
                    waiting = SecondFactorRequired(user, enrolled=needs)
                elif user is not None:
                    kind = door.kind
                    login = await accounts.create_login_session(
                        session,
                        self.hasher,
                        self.clock,
                        user,
                        ttl=kind.ttl,
                        amr=list(kind.amr),
                        acr=kind.acr,
                        ip_address=attempt.ip,
                        user_agent=attempt.user_agent,
                        token_domain=kind.token_domain,
                    )
                    signed_in = SignedIn(login, user)
                    await door.signed_in(session, signed_in, attempt)
        if waiting is not None:
            raise waiting
        if signed_in is None:
            raise await door.wrong_password(self.database, attempt)
        return signed_in

    async def with_passkey(
        self,
        door: Door,
        rp: passkeys.RelyingParty,
        state: str,
        credential: str,
        ip: str,
        user_agent: str | None,
    ) -> SignedIn:
        """A new login session through ``door`` for the owner of the passkey that
        answered the challenge the page carried (``state``), without a password: the
        passkey verified the person on the device, so the session is two-factor.
        Attempts are counted per credential and per IP; raises ``LoginThrottled`` or
        ``SignInRefused`` (the reason logged, never shown)."""
        credential_key = "passkey\x00" + _credential_id(credential)
        await self.throttle.attempt(credential_key, ip)
        try:
            challenge = passkeys.unseal(
                self.box, passkeys.Purpose.SIGN_IN, state, self.clock.timestamp()
            )
            async with self.database.session(readonly=True) as reading:
                asserted = await passkeys.check_assertion(
                    reading, rp, passkeys.Purpose.SIGN_IN, challenge, credential
                )
            async with self.database.session() as session:
                await passkeys.record_assertion(session, self.clock, challenge, asserted)
                owner = await session.get(User, asserted.user_id)
                attempt = Attempt(owner.email if owner else "", "", ip, user_agent)
                user = await door.admit(session, owner, attempt) if owner else None
                if user is None or owner is None or owner.disabled_at or owner.deleted_at:
                    raise passkeys.PasskeyRefused("account not admitted")
                login = await accounts.create_login_session(
                    session,
                    self.hasher,
                    self.clock,
                    user,
                    ttl=door.kind.ttl,
                    amr=asserted.amr(after_password=False),
                    acr=ACR_MFA,
                    ip_address=ip,
                    user_agent=user_agent,
                    token_domain=door.kind.token_domain,
                )
                signed_in = SignedIn(login, user)
                await door.signed_in(session, signed_in, attempt)
        except passkeys.PasskeyRefused as exc:
            log.info("signin.passkey_refused", reason=exc.reason)
            raise SignInRefused(PASSKEY_REFUSED, exc.reason) from None
        await self.throttle.succeeded(credential_key, ip)
        return signed_in


def _credential_id(credential: str) -> str:
    """The credential id an answer names, for counting attempts (unverified): as a hex
    digest, since the throttle folds case and base64url ids differ by case."""
    try:
        value = orjson.loads(credential[: passkeys.MAX_CREDENTIAL_JSON]).get("rawId")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(value, str):
        return ""
    return hashlib.sha256(value[:1400].encode()).hexdigest()


SIGN_IN: Service[SignIn] = Service("accounts.sign_in")
