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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import links, passkeys, second_factor, totp
from onepass.accounts import service as accounts
from onepass.accounts.links import LinkInvalid, LinkKind, LinkProblem
from onepass.accounts.models import AccountToken, LoginSession, Passkey, User
from onepass.accounts.passwords import new_password_problem
from onepass.accounts.signin import SignIn
from onepass.crypto import DecryptionError
from onepass.i18n import LANGUAGES, N_, mail_language
from onepass.mail import outbox
from onepass.oauth import backchannel, consents
from onepass.oauth.ssf import signals as ssf
from onepass.operators.audit import Actor
from onepass.playbook import users as playbook
from onepass.runtime import Runtime
from onepass.selfservice.recovery import PasswordRefused
from onepass.selfservice.signup import ADDRESS_TAKEN, NOT_AN_ADDRESS
from onepass.services import Service
from onepass.webhooks import secevents

log = structlog.get_logger("onepass.selfservice")


class WrongPassword(Exception):
    """The current password given to confirm a change is not the account's."""


@dataclass(frozen=True)
class Overview:
    user: User
    sessions: list[LoginSession]
    applications: list[consents.ConsentView]
    passkeys: list[Passkey]


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
            keys = await passkeys.passkeys_of(session, user.id)
        return Overview(user, sessions, applications, keys)

    async def confirm_password(self, user: User, password: str, ip: str) -> None:
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
        await self.confirm_password(user, current, ip)
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

    # -- the email address ------------------------------------------------------------

    async def request_email_change(
        self, user: User, new_email: str, password: str, ip: str, language: str
    ) -> str:
        """Mail a link to ``new_email`` that makes it the account's address once opened
        (the address is proved before it replaces the old one), and tell the old
        address. Raises ``WrongPassword``, ``LoginThrottled``, ``EmailRefused``."""
        await self.confirm_password(user, password, ip)
        try:
            email = accounts.check_email(new_email)
        except accounts.InvalidAccount:
            raise EmailRefused(NOT_AN_ADDRESS) from None
        address = accounts.normalize_email(email)
        if address == user.email_normalized:
            raise EmailRefused(SAME_ADDRESS)
        runtime = self.runtime
        async with runtime.database.session() as session:
            taken = await session.scalar(select(User.id).where(User.email_normalized == address))
            if taken is not None:
                raise EmailRefused(ADDRESS_TAKEN)
            ttl = runtime.settings.signup_link_ttl
            issued = await links.issue(
                session,
                runtime.hasher,
                runtime.clock,
                LinkKind.EMAIL_CHANGE,
                ttl,
                user_id=user.id,
                email=email,
                binding=user.email_normalized,
                ip=ip,
            )
            link = f"{runtime.settings.issuer}/account/email/confirm?token={issued.token}"
            confirm = outbox.compose(
                "email_change_confirm",
                email,
                language,
                {"link": link, "hours": max(1, ttl // 3600), "name": user.name},
            )
            await outbox.enqueue(session, runtime.box, runtime.clock, confirm, user_id=user.id)
            notice = outbox.compose(
                "email_change_notice", user.email, language, {"new": email, "name": user.name}
            )
            await outbox.enqueue(session, runtime.box, runtime.clock, notice, user_id=user.id)
        log.info("selfservice.email_change_requested", user_id=user.id)
        return email

    async def check_email_link(self, token: str) -> str:
        """The new address a link is for; ``LinkInvalid``."""
        runtime = self.runtime
        async with runtime.database.session(readonly=True) as session:
            row = await self._email_link(session, token)
            return row.email or ""

    async def _email_link(self, session: AsyncSession, token: str) -> AccountToken:
        runtime = self.runtime
        row = await links.find(session, runtime.hasher, runtime.clock, LinkKind.EMAIL_CHANGE, token)
        user = await session.get(User, row.user_id) if row.user_id is not None else None
        if user is None or user.deleted_at is not None or user.disabled_at is not None:
            raise LinkInvalid(LinkProblem.UNKNOWN)
        if row.password_binding != user.email_normalized:
            raise LinkInvalid(LinkProblem.USED)  # the address changed since
        return row

    async def confirm_email_change(self, token: str, ip: str) -> str:
        """Make the link's address the account's, verified (``user.updated`` to the
        RPs); the new address. Raises ``LinkInvalid`` or ``EmailRefused``."""
        runtime = self.runtime
        async with runtime.database.session() as session:
            row = await self._email_link(session, token)
            await links.use(session, runtime.clock, row)
            user_id, email = row.user_id, row.email or ""
        assert user_id is not None
        async with runtime.database.session(readonly=True) as session:
            user = await session.get(User, user_id)
            assert user is not None
        try:
            await playbook.update_user(
                runtime, actor_of(user, ip), str(user_id), email=email, email_verified=True
            )
        except accounts.EmailInUse:
            raise EmailRefused(ADDRESS_TAKEN) from None
        return email

    async def set_language(self, user: User, language: str) -> None:
        """The language of 1pass's pages and mails for the person (one of
        ``i18n.LANGUAGES``), or "" for the browser's."""
        if language and language not in LANGUAGES:
            raise ValueError(f"unknown language {language[:20]!r}")
        runtime = self.runtime
        async with runtime.database.session() as session:
            row = await session.get(User, user.id, with_for_update=True)
            assert row is not None
            row.locale = language or None
            row.updated_at = runtime.clock.now()
        user.locale = language or None

    async def sign_out_others(self, user: User, current: LoginSession) -> int:
        runtime = self.runtime
        ended = 0
        async with runtime.database.session() as session:
            for login in await accounts.live_sessions(session, runtime.clock, user.id):
                if login.id != current.id:
                    await backchannel.logout_session(
                        session,
                        runtime.clock,
                        login,
                        enforce=runtime.settings.enforce_canonical_resolution,
                        reason=backchannel.SIGNED_OUT,
                    )
                    await accounts.revoke_login_session(session, runtime.clock, login.id)
                    ended += 1
            if ended:
                # CAEP session-revoked, by the person, for the Shared Signals streams.
                await ssf.tell(
                    session,
                    runtime.clock,
                    runtime.settings,
                    user.id,
                    secevents.SESSION_REVOKED,
                    ssf.timestamped(runtime.clock, initiating_entity="user"),
                )
        log.info("selfservice.signed_out_others", user_id=user.id, sessions_ended=ended)
        return ended

    async def remove_application(self, user: User, client_id: str, ip: str) -> dict[str, Any]:
        return await playbook.revoke_consent(
            self.runtime, actor_of(user, ip), str(user.id), client_id
        )

    async def delete(self, user: User, password: str, ip: str) -> dict[str, Any]:
        """Raises ``WrongPassword`` or ``LoginThrottled``."""
        await self.confirm_password(user, password, ip)
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
        self,
        user: User,
        sealed: str,
        code: str,
        ip: str,
        language: str,
        *,
        first_only: bool = False,
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
            first_only=first_only,
        )

    async def _keep_a_factor(self, user: User, *, totp_off: bool, passkey_off: int | None) -> None:
        """``FactorNeeded`` when this removal would leave the account no second factor
        while an application it uses requires one (``require_second_factor``): asked
        first, so the page says so before the password is checked."""
        runtime = self.runtime
        async with runtime.database.session(readonly=True) as session:
            factors = await second_factor.factors_of(session, user)
            left = (factors.totp and not totp_off) or any(
                key.id != passkey_off for key in factors.passkeys
            )
            if not left:
                await self._no_factor_needed(session, user)

    async def _no_factor_needed(self, session: AsyncSession, user: User) -> None:
        apps = await consents.list_consents(session, self.runtime.clock, user.id)
        needing = sorted(app.client_name for app in apps if app.requires_second_factor)
        if needing:
            raise FactorNeeded(needing)

    async def _removed(
        self, session: AsyncSession, user: User, kind: str, language: str, **values: str
    ) -> None:
        """After a factor's removal, in its transaction (the user's row locked): asked
        again, so that two removals at once cannot leave none where one is needed (the
        second finds the first's removal and rolls back); then the mail."""
        if not (await second_factor.factors_of(session, user)).any:
            await self._no_factor_needed(session, user)
        await self._mail(session, user, kind, language, **values)

    async def remove_totp(self, user: User, password: str, ip: str, language: str) -> None:
        """Raises ``WrongPassword``, ``LoginThrottled`` or ``FactorNeeded``."""
        await self._keep_a_factor(user, totp_off=True, passkey_off=None)
        await self.confirm_password(user, password, ip)
        await playbook.reset_second_factor(
            self.runtime,
            actor_of(user, ip),
            str(user.id),
            action=playbook.REMOVE_SECOND_FACTOR,
            also=lambda session, u: self._removed(session, u, "factor_removed", language),
        )

    async def new_recovery_codes(self, user: User, password: str, ip: str) -> list[str]:
        """Raises ``WrongPassword`` or ``LoginThrottled``."""
        await self.confirm_password(user, password, ip)
        return await playbook.replace_recovery_codes(self.runtime, actor_of(user, ip), str(user.id))

    # -- passkeys -------------------------------------------------------------------

    def start_passkey(
        self, rp: passkeys.RelyingParty, user: User, existing: list[Passkey]
    ) -> passkeys.Ceremony | None:
        """The ceremony the account page offers to add a passkey (none when the issuer
        is on an IP address, or the account has as many as it may)."""
        if not rp.usable or len(existing) >= passkeys.MAX_PASSKEYS:
            return None
        return passkeys.registration(
            rp, self.runtime.box, user, existing, self.runtime.clock.timestamp()
        )

    async def add_passkey(
        self,
        rp: passkeys.RelyingParty,
        user: User,
        state: str,
        credential: str,
        name: str,
        ip: str,
        language: str,
        *,
        first_only: bool = False,
    ) -> list[str] | None:
        """Register the passkey the browser created; new recovery codes (shown once)
        when it is the account's first second factor. Raises ``PasskeyRefused``."""
        runtime = self.runtime
        challenge = passkeys.unseal(
            runtime.box, passkeys.Purpose.REGISTER, state, runtime.clock.timestamp()
        )
        name = passkeys.clean_name(name, DEFAULT_PASSKEY_NAME)
        codes = await playbook.add_passkey(
            runtime,
            actor_of(user, ip),
            str(user.id),
            rp,
            challenge,
            credential,
            name,
            also=lambda session, u: self._mail(session, u, "passkey_added", language, passkey=name),
        )
        log.info("selfservice.passkey_added", user_id=user.id)
        return codes

    async def remove_passkey(
        self, user: User, passkey_id: int, password: str, ip: str, language: str
    ) -> bool:
        """Whether a passkey of the account was removed. Raises ``WrongPassword``,
        ``LoginThrottled`` or ``FactorNeeded``."""
        await self._keep_a_factor(user, totp_off=False, passkey_off=passkey_id)
        await self.confirm_password(user, password, ip)
        async with self.runtime.database.session(readonly=True) as session:
            passkey = await session.get(Passkey, passkey_id)
        if passkey is None or passkey.user_id != user.id:
            return False
        return await playbook.remove_passkey(
            self.runtime,
            actor_of(user, ip),
            str(user.id),
            passkey_id,
            also=lambda session, u: self._removed(
                session, u, "passkey_removed", language, passkey=passkey.name
            ),
        )

    async def recovery_codes_left(self, user: User) -> int:
        async with self.runtime.database.session(readonly=True) as session:
            return await second_factor.remaining_recovery_codes(session, user.id)

    async def _mail(
        self, session: AsyncSession, user: User, kind: str, language: str, **values: str
    ) -> None:
        runtime = self.runtime
        now = runtime.clock.now()
        mail = outbox.compose(
            kind,
            user.email,
            mail_language(user.locale, language),
            {"name": user.name, "when": f"{now:%Y-%m-%d %H:%M} UTC", **values},
        )
        await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=user.id)


SAME_ADDRESS = N_("This is already your address.")
DEFAULT_PASSKEY_NAME = "Passkey"


class EmailRefused(Exception):
    """The new address cannot be the account's: ``message`` (translated where shown)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FactorNeeded(Exception):
    """The last second factor cannot go: ``applications`` (their names) require one."""

    def __init__(self, applications: list[str]) -> None:
        super().__init__("an application requires a second factor")
        self.applications = applications


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
