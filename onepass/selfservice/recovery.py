"""A forgotten password: a single-use link by mail, then a new password.

Asking (``request_reset``) answers the same whether or not the address has an
account, and does the same work up to the lookup (no enumeration). It is counted per
client IP (over the limit: ``TooManyRequests``, a 429 that says nothing of the
address) and per address (over the limit: the same answer as always, and no mail:
nobody can fill a person's mailbox). An account that cannot sign in with a password
(disabled, deleted, an administrator's: those are reset by an operator) gets no mail.

The link carries a random token; only its keyed hash is stored (``account_tokens``).
It works once, for ``ONEPASS_PASSWORD_RESET_TTL`` (30 minutes), and never after the
account's password has changed by any path (the token is bound to the password hash
it was made under).

Completing it (``complete_reset``) sets the new password (NIST SP 800-63B's rules,
``accounts.passwords.new_password_problem``), ends every login session and revokes
every refresh token of the account (and the access tokens issued with them), voids
its other reset links, and sends a "your password was changed" mail, in one
transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import links
from onepass.accounts.links import LinkInvalid, LinkKind, LinkProblem
from onepass.accounts.models import AccountToken, User
from onepass.accounts.passwords import PasswordHasher, PasswordProblem, new_password_problem
from onepass.accounts.service import MAX_EMAIL_LENGTH, normalize_email, revoke_user_sessions
from onepass.i18n import mail_language
from onepass.mail import outbox
from onepass.oauth import backchannel
from onepass.oauth.revocation import revoke_user_refresh_tokens
from onepass.oauth.ssf import signals as ssf
from onepass.runtime import Runtime
from onepass.selfservice.quotas import Quotas
from onepass.services import Service
from onepass.webhooks import secevents

log = structlog.get_logger("onepass.selfservice")

KIND = LinkKind.PASSWORD_RESET


class PasswordRefused(Exception):
    def __init__(self, problem: PasswordProblem) -> None:
        super().__init__(problem.message % problem.params)
        self.problem = problem


@dataclass(frozen=True)
class ResetLink:
    """A valid link: who it is for (the form shows the address)."""

    token_id: int
    user_id: int
    email: str
    name: str | None


def _can_reset(user: User | None) -> bool:
    return (
        user is not None
        and not user.is_admin
        and user.disabled_at is None
        and user.deleted_at is None
    )


class Recovery:
    """The password-reset service of one process (``RECOVERY``)."""

    def __init__(self, runtime: Runtime, passwords: PasswordHasher) -> None:
        self.runtime = runtime
        self.passwords = passwords
        settings = runtime.settings
        self.quotas = Quotas.of(
            runtime,
            "password-reset",
            settings.password_reset_max_per_ip,
            settings.password_reset_max_per_address,
        )

    def _binding(self, user: User) -> str:
        return self.runtime.hasher.hash("password-reset-binding\x00" + (user.password_hash or ""))

    def link(self, token: str) -> str:
        return f"{self.runtime.settings.issuer}/password/reset?token={token}"

    async def request_reset(self, email: str, ip: str, language: str) -> None:
        """Mail a reset link to ``email`` if it is an account's address that may have
        one; raises ``TooManyRequests`` (per IP) and nothing else for any address."""
        address = normalize_email(email[:MAX_EMAIL_LENGTH])
        if not await self.quotas.take(ip, address):
            log.warning("selfservice.reset_address_quota", ip=ip)
            return
        runtime = self.runtime
        async with runtime.database.session() as session:
            user = await session.scalar(select(User).where(User.email_normalized == address))
            if user is None or not _can_reset(user):
                return
            ttl = runtime.settings.password_reset_ttl
            issued = await links.issue(
                session,
                runtime.hasher,
                runtime.clock,
                KIND,
                ttl,
                user_id=user.id,
                binding=self._binding(user),
                ip=ip,
            )
            mail = outbox.compose(
                KIND.value,
                user.email,
                mail_language(user.locale, language),
                {"link": self.link(issued.token), "minutes": ttl // 60, "name": user.name},
            )
            await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=user.id)
        log.info("selfservice.reset_requested", user_id=user.id, ip=ip)

    async def _find(self, session: AsyncSession, token: str) -> tuple[AccountToken, User]:
        runtime = self.runtime
        row = await links.find(session, runtime.hasher, runtime.clock, KIND, token)
        user = await session.get(User, row.user_id) if row.user_id is not None else None
        if user is None or not _can_reset(user):
            raise LinkInvalid(LinkProblem.UNKNOWN)
        if row.password_binding != self._binding(user):
            raise LinkInvalid(LinkProblem.USED)  # the password changed since
        return row, user

    async def check_link(self, token: str) -> ResetLink:
        """The account a link is for; raises ``LinkInvalid``."""
        async with self.runtime.database.session(readonly=True) as session:
            row, user = await self._find(session, token)
            return ResetLink(row.id, user.id, user.email, user.name)

    async def complete_reset(self, token: str, password: str, language: str) -> ResetLink:
        """Set ``password`` for the link's account; raises ``LinkInvalid`` or
        ``PasswordRefused`` (then nothing changed and the link still works)."""
        runtime = self.runtime
        link = await self.check_link(token)
        problem = await asyncio.to_thread(
            new_password_problem,
            password,
            min_length=runtime.settings.password_min_length,
            personal=[link.email, link.name or ""],
        )
        if problem is not None:
            raise PasswordRefused(problem)
        # argon2 outside the transaction (on SQLite it would hold the write lock).
        password_hash = await asyncio.to_thread(self.passwords.hash, password)
        clock = runtime.clock
        now = clock.now()
        async with runtime.database.session() as session:
            row, user = await self._find(session, token)
            await links.use(session, clock, row)
            user.password_hash = password_hash
            user.updated_at = now
            await links.void_all(session, clock, KIND, user.id)
            await backchannel.logout_user(
                session,
                clock,
                user.id,
                enforce=runtime.settings.enforce_canonical_resolution,
                reason=backchannel.PASSWORD_RESET,
            )
            await ssf.tell(
                session,
                clock,
                runtime.settings,
                user.id,
                secevents.CREDENTIAL_CHANGE,
                ssf.credential_change(clock, secevents.PASSWORD, "update", "user"),
            )
            sessions = await revoke_user_sessions(session, clock, user.id)
            tokens = await revoke_user_refresh_tokens(session, clock, user.id, "password_reset")
            mail = outbox.compose(
                "password_changed",
                user.email,
                mail_language(user.locale, language),
                {"name": user.name, "when": f"{now:%Y-%m-%d %H:%M} UTC"},
            )
            await outbox.enqueue(session, runtime.box, clock, mail, user_id=user.id)
        log.info(
            "selfservice.password_reset",
            user_id=user.id,
            sessions_ended=sessions,
            refresh_tokens_revoked=tokens,
        )
        return link


RECOVERY: Service[Recovery] = Service("selfservice.recovery")
