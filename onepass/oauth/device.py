"""Device Authorization Grant (RFC 8628): device authorizations and their user codes.

A client on a device without a browser (a TV, a CLI) asks ``/device_authorization``
for a device code and a user code (§3.1, §3.2, ``start``); the person enters the user
code at ``/device`` on another device, signs in, and approves or denies (§3.3,
``pending`` and ``decide``); the client polls the token endpoint with the device code
(§3.4, ``oauth.grants.device_code``).

User codes (§6.1): eight letters from an alphabet of twenty consonants without
look-alikes (BCDFGHJKLMNPQRSTVWXZ, no vowels, so no words), 20^8 ≈ 2^34.6 codes, shown
``XXXX-XXXX``; stored normalised (upper case, no dash or space) so that what a person
types is looked up as is. Guessing is throttled at ``/device`` (§5.1), and a code
lives ``ONEPASS_DEVICE_CODE_TTL`` seconds. The device code is 256 random bits, stored
as its keyed hash.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import LoginSession, User
from onepass.clients.models import OAuthApplication
from onepass.clients.registry import ClientRecord
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.oauth.models import DeviceAuthorization

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# §6.1: "BCDFGHJKLMNPQRSTVWXZ": no vowels, no digits, none that read as another.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
# §3.2: the minimum seconds between polls; slow_down adds 5 each time (§3.5).
INTERVAL = 5
SLOW_DOWN_STEP = 5

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"


def new_user_code() -> str:
    """A random user code, normalised (eight letters, no dash)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalise_user_code(typed: str) -> str | None:
    """What a person typed (any case, dashes, spaces), as stored; None when it cannot
    be a user code (so it is refused without a database read)."""
    code = "".join(c for c in typed[:64] if c not in "- \t").upper()
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


def display_user_code(code: str) -> str:
    """``XXXX-XXXX``: easier to read out and to type (§6.1)."""
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True)
class Started:
    """The device authorization response's values (§3.2)."""

    device_code: str
    user_code: str  # as displayed
    expires_in: int
    interval: int


async def start(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    client: ClientRecord,
    scope: list[str],
    ttl: int,
) -> Started:
    """Store a new pending device authorization for ``client`` and ``scope`` (already
    checked against the client's scopes)."""
    device_code = secrets.token_urlsafe(32)
    now = clock.now()
    for _ in range(5):
        user_code = new_user_code()
        row = DeviceAuthorization(
            device_code_hash=hasher.hash(device_code),
            user_code=user_code,
            oauth_application_id=client.id,
            scope=" ".join(scope),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            status=PENDING,
            poll_interval=INTERVAL,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:  # a live user code drawn twice: about 1 in 2^34 per code
            continue
        return Started(device_code, display_user_code(user_code), ttl, INTERVAL)
    raise RuntimeError("no free user code after five draws")


@dataclass(frozen=True)
class Pending:
    """A device authorization waiting for a person's decision, as the page shows it."""

    user_code: str  # normalised
    client_name: str
    scope: list[str]


async def pending(session: AsyncSession, clock: Clock, user_code: str) -> Pending | None:
    """The pending, unexpired device authorization of a normalised user code, or None."""
    found = (
        await session.execute(
            select(DeviceAuthorization.scope, OAuthApplication.client_name)
            .join(OAuthApplication, OAuthApplication.id == DeviceAuthorization.oauth_application_id)
            .where(
                DeviceAuthorization.user_code == user_code,
                DeviceAuthorization.status == PENDING,
                DeviceAuthorization.expires_at > clock.now(),
                OAuthApplication.disabled_at.is_(None),
            )
        )
    ).first()
    if found is None:
        return None
    return Pending(user_code, found.client_name, found.scope.split())


async def decide(
    session: AsyncSession,
    clock: Clock,
    user_code: str,
    *,
    approve: bool,
    login: LoginSession,
    user: User,
) -> bool:
    """Approve or deny a pending device authorization for the signed-in ``user``; the
    tokens carry this login's auth_time, acr, amr and sid. False when the code is no
    longer pending (decided in another tab, or expired)."""
    now: datetime = clock.now()
    result = await session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.user_code == user_code,
            DeviceAuthorization.status == PENDING,
            DeviceAuthorization.expires_at > now,
        )
        .values(
            status=APPROVED if approve else DENIED,
            user_id=user.id,
            decided_at=now,
            auth_time=login.auth_time,
            acr=login.acr,
            amr=list(login.amr or []),
            sid=login.sid,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
