"""The admin console's sign-in, its sessions, and the outbox reads its pages show.

An administrator signs in to the console (``/admin``) with email, password and a
current TOTP code: the sign-in service of ``accounts.signin``, through the console's
door (``ConsoleDoor``). The console session is a ``login_sessions`` row of its own kind
(``acr`` ``urn:1pass:admin``, ``amr`` pwd+otp, a short lifetime), and its cookie token
is hashed under a domain of its own: the value of a console cookie is no end-user
session (it cannot sign anyone in to a relying party), and an end-user session cookie
is no console session.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import passkeys, totp
from onepass.accounts import service as accounts
from onepass.accounts.models import LoginSession, Passkey, User
from onepass.accounts.signin import (
    Attempt,
    Door,
    SessionKind,
    SignedIn,
    SignIn,
    SignInRefused,
    try_again_in,
)
from onepass.cache import Cache
from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.crypto import KeyedHasher, SecretBox
from onepass.db.engine import Database
from onepass.operators import service as admin_service
from onepass.operators.audit import Actor
from onepass.operators.errors import TotpLocked
from onepass.playbook import console as console_audit
from onepass.runtime import Runtime
from onepass.webhooks import outbox, outbox_queries
from onepass.webhooks.models import WebhookOutboxEntry

CONSOLE_ACR = "urn:1pass:admin"
CONSOLE_AMR = ["pwd", "otp"]
# Console tokens are hashed as hash(domain + token): `session_from_token` on an
# end-user cookie never finds a console row, and the other way round.
_TOKEN_DOMAIN = "admin-console\x00"

GENERIC_REFUSAL = "Incorrect email, password or code."


class ConsoleLoginRefused(SignInRefused):
    """Sign-in refused (``SignInRefused``); ``admin`` is the administrator concerned
    (id, email), when the email is one, for the audit log."""

    def __init__(
        self,
        message: str,
        reason: str,
        *,
        admin: User | None = None,
        counts: bool = True,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, reason, counts=counts, retry_after=retry_after)
        # Plain values: the session the user was read in is rolled back.
        self.admin = (admin.id, admin.email) if admin is not None else None


@dataclass(frozen=True)
class ConsoleSession:
    login: LoginSession
    user: User
    # The administrator's passkeys: each step-up may be confirmed with one of them.
    passkeys: tuple[Passkey, ...] = ()


class ConsoleDoor(Door):
    """The console's way in (``accounts.signin``): an administrator whose password and
    TOTP code are right.

    The code's step is recorded as used (the same code cannot then approve an action).
    Its check counts in the administrator's TOTP counter, the one step-up uses
    (``admin.service.count_totp_attempt``): a password sign-in cannot reset it. The
    sign-in is audited in the transaction that creates the session; a refusal is
    audited by the caller (its transaction is rolled back).
    """

    def __init__(
        self,
        box: SecretBox,
        cache: Cache,
        clock: Clock,
        *,
        code: str,
        ttl: int,
        max_totp_failures: int,
        failure_window: int,
    ) -> None:
        super().__init__(
            SessionKind(
                ttl=ttl, acr=CONSOLE_ACR, amr=tuple(CONSOLE_AMR), token_domain=_TOKEN_DOMAIN
            ),
            GENERIC_REFUSAL,
        )
        self.box = box
        self.cache = cache
        self.clock = clock
        self.code = code
        self.max_totp_failures = max_totp_failures
        self.failure_window = failure_window

    async def wrong_password(self, database: Database, attempt: Attempt) -> SignInRefused:
        async with database.session(readonly=True) as session:
            admin = await _admin_named(session, attempt.email)
        return ConsoleLoginRefused(GENERIC_REFUSAL, "wrong password", admin=admin)

    async def admit(self, session: AsyncSession, user: User, attempt: Attempt) -> User:
        if not user.is_admin:
            raise ConsoleLoginRefused(GENERIC_REFUSAL, "not an administrator")
        await session.flush()  # a password rehash, before the row is read again locked
        # Locked: two sign-ins racing with one code, one wins (as service.step_up).
        locked = await session.get(User, user.id, with_for_update=True, populate_existing=True)
        if locked is None:
            raise ConsoleLoginRefused(GENERIC_REFUSAL, "account deleted meanwhile")
        if locked.totp_secret_encrypted is None:
            # Only someone who knows the password gets this far: telling them is no leak.
            raise ConsoleLoginRefused(
                "This administrator has no second factor yet. Enrol one first: "
                "onepass admin enroll-totp --email " + locked.email,
                "TOTP not enrolled",
                admin=locked,
                counts=False,
            )
        try:
            await admin_service.count_totp_attempt(
                self.cache,
                locked.id,
                max_failures=self.max_totp_failures,
                failure_window=self.failure_window,
            )
        except TotpLocked as exc:
            raise ConsoleLoginRefused(
                f"Too many wrong codes. {try_again_in(exc.retry_after)}",
                "too many wrong TOTP codes",
                admin=locked,
                retry_after=exc.retry_after,
            ) from None
        secret = self.box.decrypt(
            locked.totp_secret_encrypted, totp.box_context(locked.id)
        ).decode()
        step = totp.matching_step(secret, self.code, self.clock.timestamp(), locked.totp_last_step)
        if step is None:
            raise ConsoleLoginRefused(GENERIC_REFUSAL, "wrong or reused TOTP code", admin=locked)
        await admin_service.totp_succeeded(self.cache, locked.id)
        locked.totp_last_step = step
        return locked

    async def signed_in(self, session: AsyncSession, signed_in: SignedIn, attempt: Attempt) -> None:
        user = signed_in.user
        actor = Actor(f"admin:{user.email}", "console", user.id, attempt.ip)
        console_audit.record_sign_in(session, self.clock, actor, user.email)


async def log_in(
    sign_in: SignIn,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    code: str,
    ip: str,
    user_agent: str | None,
) -> SignedIn:
    """A console session (``ConsoleDoor``); raises ``LoginThrottled`` or
    ``ConsoleLoginRefused``."""
    settings = runtime.settings
    door = ConsoleDoor(
        runtime.box,
        runtime.cache,
        runtime.clock,
        code=code,
        ttl=settings.admin_console_session_ttl,
        max_totp_failures=settings.admin_totp_max_failures,
        failure_window=settings.login_failure_window,
    )
    return await sign_in.sign_in(door, Attempt(email, password, ip, user_agent))


async def _admin_named(session: AsyncSession, email: str) -> User | None:
    user = await session.scalar(
        select(User).where(
            User.email_normalized == accounts.normalize_email(email[: accounts.MAX_EMAIL_LENGTH])
        )
    )
    return user if user is not None and user.is_admin else None


async def current(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, token: str | None
) -> ConsoleSession | None:
    """The live console session behind a console cookie, or None (expired, revoked,
    not a console session, or its administrator is no longer one)."""
    if not token or len(token) > 100:
        return None
    found = await accounts.session_from_token(session, hasher, clock, _TOKEN_DOMAIN + token)
    if found is None:
        return None
    login, user = found
    if login.acr != CONSOLE_ACR or not user.is_admin or user.totp_secret_encrypted is None:
        return None
    return ConsoleSession(login, user, tuple(await passkeys.passkeys_of(session, user.id)))


async def log_out(session: AsyncSession, clock: Clock, console: ConsoleSession) -> None:
    await accounts.revoke_login_session(session, clock, console.login.id)


# -- outbox reads ---------------------------------------------------------------------

# The outbox's states and counts are the read model's (webhooks.outbox_queries); the
# console's pages and the admin API read them through these names.
status_of = outbox_queries.status_of
Backlog = outbox_queries.Backlog
DeadCount = outbox_queries.DeadCount
backlog = outbox_queries.backlog
dead_by_application = outbox_queries.dead_by_application


async def webhook_counts(session: AsyncSession, app_id: int) -> tuple[int, int]:
    """(pending, dead) outbox entries of one application."""
    t = WebhookOutboxEntry
    row = (
        await session.execute(
            select(
                outbox_queries.tally(outbox_queries.condition(outbox_queries.Status.PENDING, t)),
                outbox_queries.tally(outbox_queries.condition(outbox_queries.Status.DEAD, t)),
            ).where(t.oauth_application_id == app_id)
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


async def applications(session: AsyncSession, ids: set[int]) -> dict[int, OAuthApplication]:
    if not ids:
        return {}
    found = await session.scalars(select(OAuthApplication).where(OAuthApplication.id.in_(ids)))
    return {a.id: a for a in found}


async def page_of_entries(
    session: AsyncSession,
    *,
    status: str | None,
    app_id: int | None,
    newest_first: bool,
    cursor: int | None,
    limit: int,
) -> tuple[list[WebhookOutboxEntry], int | None]:
    """One page of entries and the cursor of the next page (None on the last one)."""
    rows = await outbox.list_entries(
        session,
        status=status,
        app_id=app_id,
        limit=limit + 1,  # one more: is there a next page?
        after_id=cursor,
        newest_first=newest_first,
    )
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor
