"""The account page's rules (``/account``): what a signed-in person may change about
their own account, each through the same procedure an operator's change goes through
(``playbook.users``), with the person as the actor in the audit log.

- profile: the name (RPs subscribed get ``user.updated``);
- password: the current one first (counted by the login throttle, like a sign-in),
  the new one by NIST SP 800-63B's rules; every session ends, this one included (the
  person signs in again with it), and a "your password was changed" mail goes;
- sessions: see where the account is signed in, sign the others out;
- connected applications: remove one's access (its consent is forgotten, the refresh
  tokens it holds are revoked, and it gets ``consent.revoked``);
- delete the account, after entering the password: the operator's delete (personal
  data erased, everything revoked, ``user.deleted`` to the RPs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import segno
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import second_factor, totp
from onepass.accounts import service as accounts
from onepass.accounts.models import LoginSession, User
from onepass.accounts.passwords import new_password_problem
from onepass.accounts.signin import SignIn
from onepass.crypto import DecryptionError
from onepass.mail import outbox
from onepass.oauth import consents
from onepass.operators.audit import Actor
from onepass.playbook import users as playbook
from onepass.runtime import Runtime
from onepass.selfservice.recovery import PasswordRefused
from onepass.services import Service

log = structlog.get_logger("onepass.selfservice")


class WrongPassword(Exception):
    """The current password given to confirm a change is not the account's."""


@dataclass(frozen=True)
class Overview:
    user: User
    sessions: list[LoginSession]
    applications: list[consents.ConsentView]


def actor_of(user: User, ip: str) -> Actor:
    """The person, as the audit log names them: ``user:<sub>``, via their account page."""
    return Actor(f"user:{user.sub}", "account", user_id=user.id, ip_address=ip)


class Account:
    """The account page's service of one process (``ACCOUNT``)."""

    def __init__(self, runtime: Runtime, sign_in: SignIn) -> None:
        self.runtime = runtime
        self.sign_in = sign_in

    async def overview(self, user: User) -> Overview:
        runtime = self.runtime
        async with runtime.database.session(readonly=True) as session:
            sessions = await accounts.live_sessions(session, runtime.clock, user.id)
            applications = await consents.list_consents(session, runtime.clock, user.id)
        return Overview(user, sessions, applications)

    async def _confirm_password(self, user: User, password: str, ip: str) -> None:
        """``WrongPassword`` unless ``password`` is the account's; counted as a sign-in
        attempt (``LoginThrottled`` over the limit), so this form guesses no faster."""
        throttle = self.sign_in.throttle
        await throttle.attempt(user.email, ip)
        check = await accounts.check_password(
            self.runtime.database, self.sign_in.passwords, user.email, password
        )
        if check is None or check.user_id != user.id:
            raise WrongPassword()
        await throttle.succeeded(user.email, ip)

    async def rename(self, user: User, name: str, ip: str) -> dict[str, Any]:
        return await playbook.update_user(self.runtime, actor_of(user, ip), str(user.id), name=name)

    async def change_password(
        self, user: User, current: str, new: str, ip: str, language: str
    ) -> None:
        """Raises ``WrongPassword``, ``LoginThrottled`` or ``PasswordRefused``."""
        await self._confirm_password(user, current, ip)
        problem = await asyncio.to_thread(
            new_password_problem,
            new,
            min_length=self.runtime.settings.password_min_length,
            personal=[user.email, user.name or ""],
        )
        if problem is not None:
            raise PasswordRefused(problem)
        runtime = self.runtime
        await playbook.set_password(runtime, actor_of(user, ip), str(user.id), new)
        async with runtime.database.session() as session:
            await self._mail(session, user, "password_changed", language)

    async def sign_out_others(self, user: User, current: LoginSession) -> int:
        runtime = self.runtime
        ended = 0
        async with runtime.database.session() as session:
            for login in await accounts.live_sessions(session, runtime.clock, user.id):
                if login.id != current.id:
                    await accounts.revoke_login_session(session, runtime.clock, login.id)
                    ended += 1
        log.info("selfservice.signed_out_others", user_id=user.id, sessions_ended=ended)
        return ended

    async def remove_application(self, user: User, client_id: str, ip: str) -> dict[str, Any]:
        return await playbook.revoke_consent(
            self.runtime, actor_of(user, ip), str(user.id), client_id
        )

    async def delete(self, user: User, password: str, ip: str) -> dict[str, Any]:
        """Raises ``WrongPassword`` or ``LoginThrottled``."""
        await self._confirm_password(user, password, ip)
        return await playbook.delete_user(self.runtime, actor_of(user, ip), str(user.id))

    # -- the second factor ----------------------------------------------------------

    def start_totp(self, user: User) -> TotpSetup:
        """A new TOTP secret to scan; nothing is stored until a code from it is
        entered (``confirm_totp``): the page carries the secret, encrypted to the user."""
        secret = totp.new_secret()
        uri = totp.provisioning_uri(secret, user.email)
        qr = segno.make(uri, error="m").svg_inline(scale=4, border=2, light="#fff")
        sealed = self.runtime.box.encrypt(secret.encode(), _enrol_context(user.id))
        return TotpSetup(secret, uri, qr, sealed)

    async def confirm_totp(
        self, user: User, sealed: str, code: str, ip: str, language: str
    ) -> list[str]:
        """Enrol the secret the page carried once ``code`` is one of its codes; the new
        recovery codes (shown once). Raises ``WrongCode``."""
        runtime = self.runtime
        try:
            secret = runtime.box.decrypt(sealed, _enrol_context(user.id)).decode()
        except (DecryptionError, ValueError):
            raise WrongCode() from None
        step = totp.matching_step(secret, code, runtime.clock.timestamp(), None)
        if step is None:
            raise WrongCode()
        return await playbook.enrol_totp(
            runtime,
            actor_of(user, ip),
            str(user.id),
            secret,
            step,
            also=lambda session, u: self._mail(session, u, "factor_added", language),
        )

    async def remove_totp(self, user: User, password: str, ip: str, language: str) -> None:
        """Raises ``WrongPassword`` or ``LoginThrottled``."""
        await self._confirm_password(user, password, ip)
        await playbook.reset_second_factor(
            self.runtime,
            actor_of(user, ip),
            str(user.id),
            action=playbook.REMOVE_SECOND_FACTOR,
            also=lambda session, u: self._mail(session, u, "factor_removed", language),
        )

    async def new_recovery_codes(self, user: User, password: str, ip: str) -> list[str]:
        """Raises ``WrongPassword`` or ``LoginThrottled``."""
        await self._confirm_password(user, password, ip)
        return await playbook.replace_recovery_codes(self.runtime, actor_of(user, ip), str(user.id))

    async def recovery_codes_left(self, user: User) -> int:
        async with self.runtime.database.session(readonly=True) as session:
            return await second_factor.remaining_recovery_codes(session, user.id)

    async def _mail(self, session: AsyncSession, user: User, kind: str, language: str) -> None:
        runtime = self.runtime
        now = runtime.clock.now()
        mail = outbox.compose(
            kind, user.email, language, {"name": user.name, "when": f"{now:%Y-%m-%d %H:%M} UTC"}
        )
        await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=user.id)


class WrongCode(Exception):
    """The code entered is not one of the authenticator's."""


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    uri: str
    qr_svg: str
    sealed: str


def _enrol_context(user_id: int) -> str:
    return f"totp-enrol:{user_id}"


ACCOUNT: Service[Account] = Service("selfservice.account")
