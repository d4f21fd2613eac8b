"""Signing-key lifecycle.

Each algorithm the deployment keeps keys for (``ONEPASS_SIGNING_ALGS``: RS256, required
by OpenID Connect, and ES256 by default; PS256 and EdDSA on demand) has its own set:

* ``next``: published in the JWKS but not yet signing, so an RP that caches the
  JWKS already holds the key that will sign after the next rotation;
* ``active``: signs new tokens (one per algorithm);
* ``retired``: no longer signs, stays published until every token it signed has
  expired (``remove_after``);
* ``removed``: unpublished, private key wiped.

``rotate`` promotes next → active, active → retired, and creates a new next key, for
every algorithm or for the ones named. An algorithm taken out of ``ONEPASS_SIGNING_ALGS``
has its active and next keys retired at the next start (``retire_unlisted``): they stay
published until the tokens they signed have expired, as after a rotation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clock import Clock
from onepass.crypto import SecretBox
from onepass.keys import jwt
from onepass.keys.models import KeyState, SigningKey
from onepass.refusals import Conflict, Invalid

# The lock of every change to the signing keys (``Database.session(exclusive=KEYS_LOCK)``):
# rotation, and the keys created at start-up.
KEYS_LOCK = "signing_keys"

PUBLISHED_STATES = (KeyState.NEXT, KeyState.ACTIVE, KeyState.RETIRED)


def box_context(kid: str) -> str:
    return f"signing_key:{kid}"


def new_key(box: SecretBox, alg: str, state: KeyState, now: datetime) -> SigningKey:
    private = jwt.generate_private_key(alg)
    public = jwt.public_jwk(private, alg)
    kid = public["kid"]
    return SigningKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=public,
        private_key_encrypted=box.encrypt(jwt.private_key_to_pem(private), box_context(kid)),
        created_at=now,
        activated_at=now if state is KeyState.ACTIVE else None,
    )


def load_signer(box: SecretBox, key: SigningKey) -> jwt.JWTSigner:
    """Decrypt a stored key; raises ``DecryptionError`` if ONEPASS_SECRET_KEY is wrong."""
    if key.private_key_encrypted is None:
        raise ValueError(f"signing key {key.kid} has no private key (removed)")
    pem = box.decrypt(key.private_key_encrypted, box_context(key.kid))
    return jwt.JWTSigner(kid=key.kid, alg=key.alg, key=jwt.private_key_from_pem(pem))


async def _keys_by_alg(session: AsyncSession, alg: str) -> dict[str, list[SigningKey]]:
    rows = await session.scalars(
        select(SigningKey)
        .where(SigningKey.alg == alg, SigningKey.state.in_(PUBLISHED_STATES))
        .order_by(SigningKey.created_at, SigningKey.id)
    )
    grouped: dict[str, list[SigningKey]] = {state: [] for state in PUBLISHED_STATES}
    for row in rows:
        grouped[row.state].append(row)
    return grouped


class UnsupportedAlgorithm(Invalid):
    """An algorithm 1pass does not sign with, or one this deployment keeps no keys for."""


def check_algorithms(requested: Sequence[str], configured: Collection[str]) -> list[str]:
    """``requested`` (``keys rotate --alg``), each one an algorithm ``configured`` keeps
    keys for; ``UnsupportedAlgorithm`` naming the setting otherwise."""
    algs = list(dict.fromkeys(requested))
    for alg in algs:
        if alg not in jwt.SUPPORTED_ALGS:
            raise UnsupportedAlgorithm(
                f"{alg[:40]!r} is not a signing algorithm of 1pass; it signs with "
                f"{', '.join(jwt.SUPPORTED_ALGS)}"
            )
        if alg not in configured:
            raise UnsupportedAlgorithm(
                f"this deployment keeps no {alg} keys: ONEPASS_SIGNING_ALGS is "
                f"{','.join(configured)}; add {alg} to it and restart, which creates its keys"
            )
    return algs


def retention(max_token_ttl: int, propagation_delay: float) -> timedelta:
    """How long a retired key stays published: the longest token it may have signed,
    the time other processes may still sign with it before they notice, a minute of
    clock skew."""
    return timedelta(seconds=max_token_ttl + propagation_delay + 60)


async def ensure_keys(
    session: AsyncSession, box: SecretBox, clock: Clock, algs: Sequence[str]
) -> list[SigningKey]:
    """Create whatever key is missing (an active and a next per algorithm of ``algs``,
    ``ONEPASS_SIGNING_ALGS``).

    Called on every start; creates the first keys on the first start, and those of an
    algorithm added to the setting. The caller's transaction must be exclusive
    (``Database.session(exclusive=...)``).
    """
    created = []
    now = clock.now()
    for alg in algs:
        keys = await _keys_by_alg(session, alg)
        if not keys[KeyState.ACTIVE]:
            if keys[KeyState.NEXT]:
                promoted = keys[KeyState.NEXT].pop(0)
                promoted.state, promoted.activated_at = KeyState.ACTIVE, now
            else:
                created.append(new_key(box, alg, KeyState.ACTIVE, now))
        if not keys[KeyState.NEXT]:
            created.append(new_key(box, alg, KeyState.NEXT, now))
    session.add_all(created)
    await session.flush()
    return created


async def retire_unlisted(
    session: AsyncSession, clock: Clock, algs: Collection[str], keep_for: timedelta
) -> list[SigningKey]:
    """Retire the active and next keys of every algorithm not in ``algs`` (taken out of
    ``ONEPASS_SIGNING_ALGS``): no new token is signed with them, and they stay published
    for ``keep_for`` (``retention``), until the tokens they signed have expired.

    Called at start, in the transaction of ``ensure_keys``; a client still registered
    with such an algorithm gets ``temporarily_unavailable`` at the token endpoint.
    """
    now = clock.now()
    rows = await session.scalars(
        select(SigningKey).where(
            SigningKey.alg.not_in(list(algs)),
            SigningKey.state.in_((KeyState.ACTIVE, KeyState.NEXT)),
        )
    )
    retired = []
    for row in rows:
        row.state, row.retired_at, row.remove_after = KeyState.RETIRED, now, now + keep_for
        retired.append(row)
    await session.flush()
    return retired


class RotationTooSoon(Conflict):
    """The next key has not been published long enough for cached JWKS to hold it."""


@dataclass(frozen=True)
class Rotation:
    alg: str
    activated_kid: str
    retired_kid: str | None
    next_kid: str
    retired_until: datetime | None


async def rotate(
    session: AsyncSession,
    box: SecretBox,
    clock: Clock,
    *,
    algs: Sequence[str],
    max_token_ttl: int,
    propagation_delay: float,
    min_next_age: float = 0,
) -> list[Rotation]:
    """Rotate the keys of each of ``algs`` (every algorithm of ``ONEPASS_SIGNING_ALGS``,
    or the ones ``keys rotate --alg`` names: ``check_algorithms``); remove retired keys
    whose tokens have all expired. The keys of other algorithms are left as they are.

    A retired key stays published for ``max_token_ttl`` plus ``propagation_delay``
    (the time other processes may still sign with it before they notice) plus a
    minute of clock skew.

    A next key younger than ``min_next_age`` (the JWKS cache lifetime plus the
    propagation delay) is refused with ``RotationTooSoon``: an RP that fetched the
    JWKS just before that key appeared would not know it. Pass 0 to force.
    """
    await ensure_keys(session, box, clock, algs)
    now = clock.now()
    for alg in algs:
        for key in (await _keys_by_alg(session, alg))[KeyState.NEXT]:
            age = (now - key.created_at).total_seconds()
            if age < min_next_age:
                raise RotationTooSoon(
                    f"the next {alg} key was published {age:.0f}s ago; RPs may cache the JWKS "
                    f"for {min_next_age:.0f}s and would not know it yet. Wait "
                    f"{min_next_age - age:.0f}s, or pass --force in an emergency."
                )
    keep_for = retention(max_token_ttl, propagation_delay)
    await remove_expired(session, clock)
    rotations = []
    for alg in algs:
        keys = await _keys_by_alg(session, alg)
        retired_kid = None
        for old in keys[KeyState.ACTIVE]:
            old.state, old.retired_at, old.remove_after = KeyState.RETIRED, now, now + keep_for
            retired_kid = old.kid
        promoted = keys[KeyState.NEXT][0]
        promoted.state, promoted.activated_at = KeyState.ACTIVE, now
        fresh = new_key(box, alg, KeyState.NEXT, now)
        session.add(fresh)
        rotations.append(
            Rotation(
                alg, promoted.kid, retired_kid, fresh.kid, now + keep_for if retired_kid else None
            )
        )
    await session.flush()
    return rotations


async def remove_expired(session: AsyncSession, clock: Clock) -> list[str]:
    """Unpublish retired keys past ``remove_after`` and wipe their private keys."""
    now = clock.now()
    rows = await session.scalars(
        select(SigningKey).where(
            SigningKey.state == KeyState.RETIRED, SigningKey.remove_after <= now
        )
    )
    removed = []
    for row in rows:
        row.state, row.removed_at, row.private_key_encrypted = KeyState.REMOVED, now, None
        removed.append(row.kid)
    return removed


async def list_keys(session: AsyncSession) -> list[SigningKey]:
    rows = await session.scalars(select(SigningKey).order_by(SigningKey.alg, SigningKey.created_at))
    return list(rows)


async def published_keys(session: AsyncSession, clock: Clock) -> list[SigningKey]:
    """Keys the JWKS publishes: next, active and retired keys not yet past removal."""
    now = clock.now()
    rows = await session.scalars(
        select(SigningKey)
        .where(SigningKey.state.in_(PUBLISHED_STATES))
        .order_by(SigningKey.alg, SigningKey.created_at)
    )
    return [row for row in rows if row.remove_after is None or row.remove_after > now]


async def active_algorithms(session: AsyncSession) -> set[str]:
    rows = await session.scalars(
        select(SigningKey.alg).where(SigningKey.state == KeyState.ACTIVE).distinct()
    )
    return set(rows)
