"""The admin console's sign-in, its sessions, and the outbox reads its pages show.

An administrator signs in to the console (``/admin``) with email, password and a
current TOTP code. The console session is a ``login_sessions`` row of its own kind
(``acr`` ``urn:1pass:admin``, ``amr`` pwd+otp, a short lifetime), and its cookie token
is hashed under a domain of its own: the value of a console cookie is no end-user
session (it cannot sign anyone in to a relying party), and an end-user session cookie
is no console session.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import service as accounts
from onepass.accounts import totp
from onepass.accounts.models import LoginSession, User
from onepass.cache import Cache
from onepass.clock import Clock
from onepass.crypto import KeyedHasher, SecretBox
from onepass.oauth.models import OAuthApplication
from onepass.operators import service as admin_service
from onepass.webhooks import outbox, outbox_queries
from onepass.webhooks.models import WebhookOutboxEntry

CONSOLE_ACR = "urn:1pass:admin"
CONSOLE_AMR = ["pwd", "otp"]
# Console tokens are hashed as hash(domain + token): `session_from_token` on an
# end-user cookie never finds a console row, and the other way round.
_TOKEN_DOMAIN = "admin-console\x00"

GENERIC_REFUSAL = "Incorrect email, password or code."


class ConsoleLoginRefused(accounts.AccountError):
    """Sign-in refused. ``message`` is what the page shows (never which check failed,
    except to someone who proved the password); ``reason`` is for the audit log;
    ``admin`` is the administrator concerned (id, email), when the email is one."""

    def __init__(
        self,
        message: str,
        reason: str,
        *,
        admin: User | None = None,
        counts: bool = True,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        # Plain values: the session the user was read in is rolled back.
        self.admin = (admin.id, admin.email) if admin is not None else None
        self.counts = counts  # a failed login for the throttle
        self.retry_after = retry_after  # locked out (429) for this long


@dataclass(frozen=True)
class ConsoleSession:
    login: LoginSession
    user: User


async def log_in(
    session: AsyncSession,
    box: SecretBox,
    hasher: KeyedHasher,
    clock: Clock,
    cache: Cache,
    *,
    email: str,
    check: accounts.PasswordCheck | None,
    code: str,
    ttl: int,
    max_totp_failures: int,
    failure_window: int,
    ip_address: str | None,
    user_agent: str | None,
) -> tuple[accounts.NewLoginSession, User]:
    """A console session for an administrator whose password (``check``, from
    ``accounts.check_password`` on ``email``) and TOTP code are right.

    The code's step is recorded as used (the same code cannot then approve an action).
    Its check counts in the administrator's TOTP counter, the one step-up uses
    (``admin.service.count_totp_attempt``): a password sign-in cannot reset it.
    Raises ``ConsoleLoginRefused``.
    """
    user = await accounts.authenticate(session, clock, check)
    if user is None or not user.is_admin:
        admin = None if user is not None else await _admin_named(session, email)
        reason = "not an administrator" if user is not None else "wrong password"
        raise ConsoleLoginRefused(GENERIC_REFUSAL, reason, admin=admin)
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
            cache, locked.id, max_failures=max_totp_failures, failure_window=failure_window
        )
    except admin_service.TotpLocked as exc:
        minutes = max(1, exc.retry_after // 60)
        raise ConsoleLoginRefused(
            f"Too many wrong codes. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
            "too many wrong TOTP codes",
            admin=locked,
            retry_after=exc.retry_after,
        ) from None
    secret = box.decrypt(locked.totp_secret_encrypted, totp.box_context(locked.id)).decode()
    step = totp.matching_step(secret, code, clock.timestamp(), locked.totp_last_step)
    if step is None:
        raise ConsoleLoginRefused(GENERIC_REFUSAL, "wrong or reused TOTP code", admin=locked)
    await admin_service.totp_succeeded(cache, locked.id)
    locked.totp_last_step = step
    new = await accounts.create_login_session(
        session,
        hasher,
        clock,
        locked,
        ttl=ttl,
        amr=list(CONSOLE_AMR),
        acr=CONSOLE_ACR,
        ip_address=ip_address,
        user_agent=user_agent,
        token_domain=_TOKEN_DOMAIN,
    )
    return new, locked


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
    return ConsoleSession(login, user)


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
