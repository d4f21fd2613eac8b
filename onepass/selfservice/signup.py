"""Creating an account: open sign-up, with the address proved before the account
exists, and operators' invitations (``ONEPASS_SIGNUP``).

**Open** (``ONEPASS_SIGNUP=open``): the form takes an address, a name and a password
(NIST SP 800-63B, as a reset's), and answers "check your mail" whatever the address.
An address without an account gets a link to confirm it; the account is created, its
address verified, only when the link is confirmed (a ``POST`` from the page the link
opens, so that a mail scanner fetching the link creates nothing). An address that
already has an account gets a mail saying so, with the way to sign in or reset the
password: the form never tells anyone whether an address has an account.
``ONEPASS_SIGNUP_EMAIL_DOMAINS`` limits open sign-ups to some domains (said on the
form, since it is no secret). Quotas per IP (429) and per address (silent), as for
resets.

**Invitations** (``ONEPASS_SIGNUP=invite``, ``onepass users invite --email E``): an
operator's single-use link, mailed to the address, opens a form where the person
chooses a name and a password; the account is created with that address, verified
(the link reached it).

Until its link is confirmed, a sign-up's name and password hash wait in the link's
row (``account_tokens.details``), never in the mail.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from onepass.accounts import links
from onepass.accounts import service as accounts
from onepass.accounts.invitations import confirm_link
from onepass.accounts.links import LinkKind
from onepass.accounts.models import User
from onepass.accounts.passwords import PasswordHasher, new_password_problem
from onepass.i18n import N_
from onepass.mail import outbox
from onepass.runtime import Runtime
from onepass.selfservice.quotas import Quotas
from onepass.selfservice.recovery import PasswordRefused
from onepass.services import Service

log = structlog.get_logger("onepass.selfservice")

NOT_AN_ADDRESS = N_("Enter an email address, such as name@example.com.")
DOMAIN_NOT_ALLOWED = N_("Accounts here are for addresses at %(domains)s.")
BAD_NAME = N_("Enter a name of at most 200 characters.")
ADDRESS_TAKEN = N_("This address already has an account. Sign in, or reset its password.")


class SignupClosed(Exception):
    """Sign-up is not open (and, for an invitation, none was given)."""


class SignupRefused(Exception):
    """What was entered cannot make an account: ``message`` (translated where shown)
    with its ``params``."""

    def __init__(self, message: str, params: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.params = params or {}


@dataclass(frozen=True)
class Created:
    user_id: int
    email: str


class Signup:
    """The sign-up service of one process (``SIGNUP``)."""

    def __init__(self, runtime: Runtime, passwords: PasswordHasher) -> None:
        self.runtime = runtime
        self.passwords = passwords
        settings = runtime.settings
        self.quotas = Quotas.of(
            runtime, "signup", settings.signup_max_per_ip, settings.signup_max_per_address
        )

    @property
    def is_open(self) -> bool:
        return self.runtime.settings.signup == "open"

    def _check_address(self, email: str) -> str:
        try:
            email = accounts.check_email(email)
        except accounts.InvalidAccount:
            raise SignupRefused(NOT_AN_ADDRESS) from None
        domains = self.runtime.settings.signup_domains
        if domains and email.rpartition("@")[2].lower() not in domains:
            raise SignupRefused(DOMAIN_NOT_ALLOWED, {"domains": ", ".join(domains)})
        return email

    async def _password_hash(self, password: str, email: str, name: str | None) -> str:
        problem = await asyncio.to_thread(
            new_password_problem,
            password,
            min_length=self.runtime.settings.password_min_length,
            personal=[email, name or ""],
        )
        if problem is not None:
            raise PasswordRefused(problem)
        # argon2 outside any transaction (on SQLite it would hold the write lock).
        return await asyncio.to_thread(self.passwords.hash, password)

    @staticmethod
    def _name(name: str) -> str | None:
        try:
            return accounts.check_name(name)
        except accounts.InvalidAccount:
            raise SignupRefused(BAD_NAME) from None

    async def start(self, email: str, name: str, password: str, ip: str, language: str) -> None:
        """An open sign-up: mail a confirmation link (or, to an address that has an
        account, a note saying so). Raises ``SignupClosed``, ``SignupRefused``,
        ``PasswordRefused`` or ``TooManyRequests``, and nothing that depends on
        whether the address has an account."""
        if not self.is_open:
            raise SignupClosed()
        email = self._check_address(email)
        display_name = self._name(name)
        password_hash = await self._password_hash(password, email, display_name)
        address = accounts.normalize_email(email)
        if not await self.quotas.take(ip, address):
            log.warning("selfservice.signup_address_quota", ip=ip)
            return
        runtime = self.runtime
        async with runtime.database.session() as session:
            existing = await session.scalar(select(User).where(User.email_normalized == address))
            if existing is not None:
                mail = outbox.compose(
                    "account_exists",
                    existing.email,
                    language,
                    {"forgot": f"{runtime.settings.issuer}/password/forgot"},
                )
                await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=existing.id)
                return
            ttl = runtime.settings.signup_link_ttl
            issued = await links.issue(
                session,
                runtime.hasher,
                runtime.clock,
                LinkKind.SIGNUP,
                ttl,
                email=email,
                details={"name": display_name, "password_hash": password_hash},
                ip=ip,
            )
            link = confirm_link(runtime, issued.token)
            mail = outbox.compose(
                "signup_confirm", email, language, {"link": link, "hours": max(1, ttl // 3600)}
            )
            await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=None)
        log.info("selfservice.signup_started", ip=ip)

    async def check(self, kind: LinkKind, token: str) -> str:
        """The address a sign-up or invitation link is for; ``LinkInvalid``."""
        runtime = self.runtime
        async with runtime.database.session(readonly=True) as session:
            row = await links.find(session, runtime.hasher, runtime.clock, kind, token)
            return row.email or ""

    async def _create(
        self,
        kind: LinkKind,
        token: str,
        *,
        name: str | None,
        password_hash: str | None,
    ) -> Created:
        runtime = self.runtime
        async with runtime.database.session() as session:
            row = await links.find(session, runtime.hasher, runtime.clock, kind, token)
            await links.use(session, runtime.clock, row)
            details = row.details or {}
            try:
                user = await accounts.create_user(
                    session,
                    self.passwords,
                    runtime.clock,
                    email=row.email or "",
                    password=None,
                    password_hash=password_hash or details.get("password_hash"),
                    name=name if password_hash is not None else details.get("name"),
                    email_verified=True,
                )
            except accounts.EmailInUse:
                raise SignupRefused(ADDRESS_TAKEN) from None
            created = Created(user.id, user.email)
        log.info("selfservice.account_created", user_id=created.user_id, via=kind.value)
        return created

    async def confirm(self, token: str) -> Created:
        """Create the account an open sign-up's link confirms."""
        return await self._create(LinkKind.SIGNUP, token, name=None, password_hash=None)

    async def accept_invite(self, token: str, name: str, password: str) -> Created:
        """Create the account an invitation is for, with this name and password."""
        email = await self.check(LinkKind.INVITE, token)
        display_name = self._name(name)
        password_hash = await self._password_hash(password, email, display_name)
        return await self._create(
            LinkKind.INVITE, token, name=display_name, password_hash=password_hash
        )


SIGNUP: Service[Signup] = Service("selfservice.signup")
