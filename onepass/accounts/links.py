"""Single-use links sent by mail (``account_tokens``): a password reset, a sign-up to
confirm, an invitation, a new address to confirm. One shape for all of them:

- the link carries a random 256-bit token; only its keyed hash is stored, so a copy of
  the database opens no link;
- it works for its kind's lifetime, once: ``use`` marks it used with a conditional
  ``UPDATE`` (of two tabs posting the same link, one wins, on either engine);
- ``find`` tells an unknown, used and expired link apart (the token is the secret, so
  saying which costs nothing) and raises ``LinkInvalid``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import AccountToken
from onepass.clock import Clock
from onepass.crypto import KeyedHasher

# Tokens are 43 characters (base64url); anything much longer is not one.
MAX_TOKEN_LENGTH = 100


class LinkKind(StrEnum):
    PASSWORD_RESET = "password_reset"
    SIGNUP = "signup"
    INVITE = "invite"
    EMAIL_CHANGE = "email_change"


class LinkProblem(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


class LinkInvalid(Exception):
    def __init__(self, problem: LinkProblem) -> None:
        super().__init__(f"link {problem.value}")
        self.problem = problem


@dataclass(frozen=True)
class Issued:
    token: str
    row: AccountToken


def _hash(hasher: KeyedHasher, kind: LinkKind, token: str) -> str:
    return hasher.hash(f"{kind.value}\x00{token}")


async def issue(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    kind: LinkKind,
    ttl: float,
    *,
    user_id: int | None = None,
    email: str | None = None,
    binding: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> Issued:
    """A new link of ``kind``, stored in ``session``'s transaction."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    row = AccountToken(
        kind=kind.value,
        token_hash=_hash(hasher, kind, token),
        user_id=user_id,
        email=email,
        password_binding=binding,
        details=details or {},
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
        ip_address=ip[:64] if ip else None,
    )
    session.add(row)
    await session.flush()
    return Issued(token, row)


async def find(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, kind: LinkKind, token: str
) -> AccountToken:
    """The unused, unexpired link of ``kind`` whose token is ``token``."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise LinkInvalid(LinkProblem.UNKNOWN)
    row = await session.scalar(
        select(AccountToken).where(AccountToken.token_hash == _hash(hasher, kind, token))
    )
    if row is None or row.kind != kind.value:
        raise LinkInvalid(LinkProblem.UNKNOWN)
    if row.used_at is not None:
        raise LinkInvalid(LinkProblem.USED)
    if row.expires_at <= clock.now():
        raise LinkInvalid(LinkProblem.EXPIRED)
    return row


async def use(session: AsyncSession, clock: Clock, row: AccountToken) -> None:
    """Mark the link used, once: ``LinkInvalid(USED)`` if another request did first."""
    result = await session.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None))
        .values(used_at=clock.now())
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise LinkInvalid(LinkProblem.USED)


async def void_all(session: AsyncSession, clock: Clock, kind: LinkKind, user_id: int) -> None:
    """Every unused link of ``kind`` for the user stops working."""
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.kind == kind.value,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=clock.now())
    )
