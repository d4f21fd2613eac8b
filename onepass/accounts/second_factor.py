"""An end user's second factor: TOTP (an authenticator app), passkeys
(``accounts.passkeys``) and one-time recovery codes, enrolled on the account page;
asked for at sign-in once a password was right.

Between the password and the code, the sign-in is *pending*: the browser holds a
``PendingSignIn`` (the user, an expiry five minutes away and what the page carries
on, e.g. the sealed authorization request), encrypted and authenticated with
``SecretBox``; nothing is stored. It proves only that the password was right.

Codes are counted by their own throttle (``SECOND_FACTOR`` namespace of
``LoginThrottle``): a right password does not give the count back, so guessing codes
between passwords gains nothing. A TOTP code is accepted once (the step it belongs to
is stored by a conditional ``UPDATE``: of two requests with one code, one wins), a
recovery code once (its row is marked used the same way).

A session signed in with both factors has ``amr`` ``["pwd", "otp", "mfa"]`` (RFC 8176;
``["pwd", "hwk", "mfa"]`` with a passkey) and ``acr`` ``urn:1pass:acr:mfa``.

Recovery codes stand in for any of the factors: they are issued with the first one
and deleted with the last.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import structlog
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import passkeys, totp
from onepass.accounts import service as accounts
from onepass.accounts.models import Passkey, RecoveryCode, User
from onepass.accounts.throttle import LoginThrottle
from onepass.clock import Clock
from onepass.crypto import DecryptionError, KeyedHasher, SecretBox
from onepass.db import Database
from onepass.services import Service

log = structlog.get_logger("onepass.accounts")

ACR_MFA = "urn:1pass:acr:mfa"
AMR_MFA = ("pwd", "otp", "mfa")
PENDING_TTL = 300
RECOVERY_CODES = 10
_PENDING_CONTEXT = "pending-sign-in"


class PendingInvalid(Exception):
    """The pending sign-in was altered, is another's, or expired."""


@dataclass(frozen=True)
class PendingSignIn:
    user_id: int
    carried: str  # what the page carries on (the sealed authorization request, or "")


class Step:
    """What a pending sign-in waits for: the second step of an account that has one, or
    (an RP requires two steps and the account has none) setting one up. A pending
    sign-in of one kind is no pending sign-in of the other: a password alone must never
    let someone enrol a factor on an account that has one."""

    SECOND = "second-step"
    ENROL = "enrol"


def seal_pending(
    box: SecretBox, user_id: int, now: float, carried: str = "", *, step: str = Step.SECOND
) -> str:
    data = {"u": user_id, "exp": int(now) + PENDING_TTL, "c": carried}
    return box.encrypt(orjson.dumps(data), f"{_PENDING_CONTEXT}:{step}")


def unseal_pending(
    box: SecretBox, sealed: str, now: float, *, step: str = Step.SECOND
) -> PendingSignIn:
    if not sealed or len(sealed) > 8192:
        raise PendingInvalid("no sign-in is waiting for a code")
    try:
        data = orjson.loads(box.decrypt(sealed, f"{_PENDING_CONTEXT}:{step}"))
        user_id, expires, carried = int(data["u"]), int(data["exp"]), str(data["c"])
    except (DecryptionError, ValueError, KeyError, TypeError):
        raise PendingInvalid("the form was altered") from None
    if expires < now:
        raise PendingInvalid("the five minutes to enter the code are over; sign in again")
    return PendingSignIn(user_id, carried)


def has_totp(user: User) -> bool:
    return user.totp_secret_encrypted is not None


@dataclass(frozen=True)
class Factors:
    """The second factors a user has enrolled."""

    totp: bool
    passkeys: list[Passkey]

    @property
    def any(self) -> bool:
        return self.totp or bool(self.passkeys)


async def factors_of(session: AsyncSession, user: User) -> Factors:
    return Factors(has_totp(user), await passkeys.passkeys_of(session, user.id))


def second_factor_asked(acr_values: list[str]) -> bool:
    """An RP's ``acr_values`` asks for two-step verification: 1pass then requires it
    (and has the user enrol one first when they have none)."""
    return ACR_MFA in acr_values


def new_recovery_code() -> str:
    """``k7f2q-9xw3m``: 50 bits, easy to read out and type (no 0/o, 1/l)."""
    alphabet = "23456789abcdefghijkmnpqrstuvwxyz"
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _normal(code: str) -> str:
    return code.strip().lower().replace(" ", "").replace("-", "")


async def replace_recovery_codes(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, user_id: int
) -> list[str]:
    """New recovery codes for the user (the old ones stop working); shown once."""
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    now = clock.now()
    session.add_all(
        RecoveryCode(
            user_id=user_id, code_hash=hasher.hash("recovery\x00" + _normal(c)), created_at=now
        )
        for c in codes
    )
    await session.flush()
    return codes


async def remaining_recovery_codes(session: AsyncSession, user_id: int) -> int:
    rows = await session.scalars(
        select(RecoveryCode.id).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
    )
    return len(list(rows))


async def enrol_totp(
    session: AsyncSession, box: SecretBox, user: User, secret: str, step: int
) -> None:
    user.totp_secret_encrypted = box.encrypt(secret.encode(), totp.box_context(user.id))
    user.totp_last_step = step


async def remove_totp(session: AsyncSession, user: User) -> None:
    """The authenticator app off; the recovery codes too if no passkey is left."""
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    if not await passkeys.passkeys_of(session, user.id):
        await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


async def remove_passkey(session: AsyncSession, user: User, passkey_id: int) -> bool:
    """One of the user's passkeys removed (the recovery codes too if it was the last
    factor); False if it is not theirs."""
    if await passkeys.remove(session, user.id, passkey_id) is None:
        return False
    if not (await factors_of(session, user)).any:
        await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    return True


async def remove_every_factor(session: AsyncSession, user: User) -> None:
    """Authenticator app, passkeys and recovery codes, all off (an operator's reset)."""
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    await session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


async def _accept_totp(
    session: AsyncSession, box: SecretBox, user: User, code: str, now: float
) -> bool:
    if user.totp_secret_encrypted is None:
        return False
    secret = box.decrypt(user.totp_secret_encrypted, totp.box_context(user.id)).decode()
    step = totp.matching_step(secret, code, now, user.totp_last_step)
    if step is None:
        return False
    taken = await session.execute(
        update(User)
        .where(User.id == user.id)
        .where((User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", taken).rowcount == 1


async def _accept_recovery_code(
    session: AsyncSession, hasher: KeyedHasher, user: User, code: str, when: datetime
) -> bool:
    normal = _normal(code)
    if len(normal) != 10 or not normal.isascii() or not normal.isalnum():
        return False
    taken = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == hasher.hash("recovery\x00" + normal),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=when)
    )
    return cast("CursorResult[Any]", taken).rowcount == 1


@dataclass(frozen=True)
class Verified:
    login: accounts.NewLoginSession
    user: User
    recovery_code_used: bool


class SecondFactor:
    """Checks the code of a pending sign-in and creates its session (``SECOND_FACTOR``)."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        box: SecretBox,
        hasher: KeyedHasher,
        throttle: LoginThrottle,
        session_ttl: int,
    ) -> None:
        self.database = database
        self.clock = clock
        self.box = box
        self.hasher = hasher
        self.throttle = throttle
        self.session_ttl = session_ttl

    async def factors(self, user_id: int) -> Factors:
        """The factors the second step of ``user_id``'s sign-in may offer."""
        async with self.database.session(readonly=True) as session:
            user = await session.get(User, user_id)
            if user is None:
                return Factors(False, [])
            return await factors_of(session, user)

    def passkey_step(
        self, rp: passkeys.RelyingParty, user_id: int, factors: Factors
    ) -> passkeys.Ceremony | None:
        """The passkey ceremony the second step offers, if the user has a passkey."""
        if not factors.passkeys or not rp.usable:
            return None
        return passkeys.authentication(
            rp,
            self.box,
            passkeys.Purpose.SECOND_STEP,
            self.clock.timestamp(),
            user_id=user_id,
            allowed=factors.passkeys,
        )

    async def session_for(
        self,
        user_id: int,
        ip: str,
        user_agent: str | None,
        amr: tuple[str, ...] = AMR_MFA,
    ) -> accounts.NewLoginSession:
        """A two-factor session for a user who just enrolled their second factor during
        a sign-in (``selfservice``'s enrolment): with a code from the authenticator app,
        or with the passkey their device created (``amr`` says which)."""
        async with self.database.session() as session:
            user = await session.get(User, user_id)
            assert user is not None
            return await accounts.create_login_session(
                session,
                self.hasher,
                self.clock,
                user,
                ttl=self.session_ttl,
                amr=list(amr),
                acr=ACR_MFA,
                ip_address=ip,
                user_agent=user_agent,
            )

    async def verify_passkey(
        self,
        pending: PendingSignIn,
        rp: passkeys.RelyingParty,
        state: str,
        credential: str,
        ip: str,
        user_agent: str | None,
    ) -> Verified | None:
        """The session, if ``credential`` is an answer of one of the user's passkeys to
        the challenge the page carried (``state``); None if not (the reason is logged).
        Raises ``LoginThrottled`` (nothing checked) over the limit."""
        key = str(pending.user_id)
        await self.throttle.attempt(key, ip)
        verified = None
        try:
            challenge = passkeys.unseal(
                self.box, passkeys.Purpose.SECOND_STEP, state, self.clock.timestamp()
            )
            if challenge.user_id != pending.user_id:
                raise passkeys.PasskeyRefused("challenge of another sign-in")
            async with self.database.session() as session:
                user = await session.get(User, pending.user_id)
                if user is None or user.disabled_at is not None or user.deleted_at is not None:
                    return None
                asserted = await passkeys.verify_assertion(
                    session, rp, self.clock, passkeys.Purpose.SECOND_STEP, challenge, credential
                )
                login = await accounts.create_login_session(
                    session,
                    self.hasher,
                    self.clock,
                    user,
                    ttl=self.session_ttl,
                    amr=asserted.amr(after_password=True),
                    acr=ACR_MFA,
                    ip_address=ip,
                    user_agent=user_agent,
                )
                verified = Verified(login, user, False)
        except passkeys.PasskeyRefused as exc:
            log.info("second_factor.passkey_refused", user_id=pending.user_id, reason=exc.reason)
            return None
        await self.throttle.succeeded(key, ip)
        return verified

    async def verify(
        self, pending: PendingSignIn, code: str, ip: str, user_agent: str | None
    ) -> Verified | None:
        """The session, if ``code`` is the user's TOTP code or one of their recovery
        codes; None if not. Raises ``LoginThrottled`` (nothing checked) over the limit."""
        key = str(pending.user_id)
        await self.throttle.attempt(key, ip)
        verified = None
        async with self.database.session() as session:
            user = await session.get(User, pending.user_id)
            if user is None or user.disabled_at is not None or user.deleted_at is not None:
                return None
            recovery = False
            accepted = await _accept_totp(session, self.box, user, code, self.clock.timestamp())
            if not accepted:
                recovery = await _accept_recovery_code(
                    session, self.hasher, user, code, self.clock.now()
                )
            if accepted or recovery:
                login = await accounts.create_login_session(
                    session,
                    self.hasher,
                    self.clock,
                    user,
                    ttl=self.session_ttl,
                    amr=list(AMR_MFA),
                    acr=ACR_MFA,
                    ip_address=ip,
                    user_agent=user_agent,
                )
                verified = Verified(login, user, recovery)
        if verified is not None:
            await self.throttle.succeeded(key, ip)
        return verified


SECOND_FACTOR: Service[SecondFactor] = Service("accounts.second_factor")
