"""Passkeys: WebAuthn credentials that sign a person in without a password, or are
the second step after one. The ceremonies are the ``webauthn`` library's (py_webauthn:
attestation and assertion parsing, signature and flag checks); what is ours is where
the challenge lives, which credential belongs to whom, and what a sign-in with one
is worth.

The relying party is 1pass itself: its RP ID is the issuer's host name and the only
origin accepted is the issuer's (so an issuer on an IP address cannot use passkeys:
browsers refuse an IP as an RP ID).

**Challenges.** A page that offers a ceremony carries its options and, sealed with
``SecretBox`` (encrypted, authenticated, bound to its purpose and user), the
challenge and its expiry (five minutes): showing a sign-in page stores nothing. The
answer is accepted once: verifying it writes the challenge's hash to
``used_passkey_challenges`` in the transaction that signs in (or registers), so a
second presentation of one assertion finds the challenge taken and is refused, on
every process. Expired rows are deleted by the next use.

**What a sign-in is worth** (RFC 8176 ``amr``): a passkey proves possession of a key
(``hwk``, or ``swk`` for one the authenticator syncs to other devices, as passkeys
in a password manager are) and, with user verification (a PIN or a biometric on the
device), a second factor: ``["hwk", "user", "mfa"]`` and ``acr`` ``urn:1pass:acr:mfa``
without a password (user verification is then required), ``["pwd", "hwk", "mfa"]``
after one.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import webauthn
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from onepass.accounts.models import Passkey, UsedPasskeyChallenge, User
from onepass.clock import Clock
from onepass.crypto import DecryptionError, SecretBox

CHALLENGE_TTL = 300  # seconds: the page's ceremony must end within it
TIMEOUT_MS = 120_000  # what the browser gives the person to touch the authenticator
MAX_CREDENTIAL_JSON = 64 * 1024
MAX_PASSKEYS = 20
NAME_LENGTH = 100
_CONTEXT = "passkey-challenge:"


class Purpose:
    REGISTER = "register"
    SIGN_IN = "sign-in"  # without a password: any of the person's passkeys
    SECOND_STEP = "second-step"  # after the password: one of that account's
    STEP_UP = "step-up"  # an administrator approving one change in the console


@dataclass(frozen=True)
class Answer:
    """A ceremony's answer as a form posts it: the sealed challenge and the credential."""

    state: str
    credential: str


# Where the passkey stands for more than possession: the person is verified on the
# device (PIN or biometric), so no password (sign-in) or code (step-up) is asked.
VERIFIED = frozenset({Purpose.SIGN_IN, Purpose.STEP_UP})


class PasskeyRefused(Exception):
    """The answer does not sign in or register: ``reason`` is for the log (never shown:
    the page says only that the passkey was not accepted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the issuer's host name
    origin: str  # the issuer's scheme://host[:port]
    name: str

    @classmethod
    def of_issuer(cls, issuer: str, name: str = "1pass") -> RelyingParty:
        """The RP of an issuer URL, its origin as a browser serializes it (RFC 6454:
        lower-case scheme and host, the port only when it is not the scheme's)."""
        parts = urlsplit(issuer)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port
        shown = f"[{host}]" if ":" in host else host
        if port is not None and port != {"https": 443, "http": 80}.get(scheme):
            shown = f"{shown}:{port}"
        return cls(host, f"{scheme}://{shown}", name)

    @property
    def usable(self) -> bool:
        """Whether browsers accept this RP ID: a domain name, not an IP address."""
        host = self.id
        return bool(host) and not host.replace(".", "").isdigit() and ":" not in host


@dataclass(frozen=True)
class Ceremony:
    """What a page carries for one ceremony: the options for the browser (JSON) and
    the sealed challenge to post back with the answer."""

    options: str
    state: str


@dataclass(frozen=True)
class Challenge:
    challenge: bytes
    expires_at: float
    user_id: int  # 0 for a sign-in without a password (the user is not known yet)


def _seal(box: SecretBox, purpose: str, challenge: bytes, user_id: int, now: float) -> str:
    data = {"c": bytes_to_base64url(challenge), "exp": int(now) + CHALLENGE_TTL, "u": user_id}
    return box.encrypt(orjson.dumps(data), _CONTEXT + purpose)


def unseal(box: SecretBox, purpose: str, state: str, now: float) -> Challenge:
    """The challenge a page carried for ``purpose``; ``PasskeyRefused`` if it was altered,
    is for another purpose, or expired."""
    if not state or len(state) > 2048:
        raise PasskeyRefused("no challenge")
    try:
        data = orjson.loads(box.decrypt(state, _CONTEXT + purpose))
        challenge = webauthn.base64url_to_bytes(str(data["c"]))
        expires, user_id = int(data["exp"]), int(data["u"])
    except (DecryptionError, ValueError, KeyError, TypeError):
        raise PasskeyRefused("altered challenge") from None
    if expires < now:
        raise PasskeyRefused("expired challenge")
    return Challenge(challenge, expires, user_id)


def user_handle(user: User) -> bytes:
    """The WebAuthn user handle: the user's opaque ``sub`` (no email, no row id)."""
    return user.sub.encode()


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports or []:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=webauthn.base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def registration(
    rp: RelyingParty,
    box: SecretBox,
    user: User,
    existing: Sequence[Passkey],
    now: float,
    *,
    verified: bool = False,
) -> Ceremony:
    """Options to create a passkey for ``user`` (discoverable where the authenticator
    can, so it also signs in without typing the address); none of ``existing`` again."""
    challenge = secrets.token_bytes(32)
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.email,
        user_id=user_handle(user),
        user_display_name=user.name or user.email,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            # ``verified``: an administrator's key, which must verify them at step-up.
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if verified
                else UserVerificationRequirement.PREFERRED
            ),
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    state = _seal(box, Purpose.REGISTER, challenge, user.id, now)
    return Ceremony(webauthn.options_to_json(options), state)


def authentication(
    rp: RelyingParty,
    box: SecretBox,
    purpose: str,
    now: float,
    *,
    user_id: int = 0,
    allowed: Sequence[Passkey] = (),
) -> Ceremony:
    """Options to sign in with a passkey: any discoverable one of this RP (no password:
    the person must be verified on the device), or one of ``allowed`` (the second step)."""
    challenge = secrets.token_bytes(32)
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(p) for p in allowed],
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if purpose in VERIFIED
            else UserVerificationRequirement.PREFERRED
        ),
    )
    return Ceremony(webauthn.options_to_json(options), _seal(box, purpose, challenge, user_id, now))


def _challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(b"passkey-challenge\x00" + challenge).hexdigest()


async def take_challenge(session: AsyncSession, clock: Clock, challenge: Challenge) -> None:
    """Mark the challenge answered, in the caller's transaction; ``PasskeyRefused`` if it
    already was (the same answer presented again)."""
    now = clock.now()
    await session.execute(delete(UsedPasskeyChallenge).where(UsedPasskeyChallenge.expires_at < now))
    try:
        async with session.begin_nested():
            session.add(
                UsedPasskeyChallenge(
                    challenge_hash=_challenge_hash(challenge.challenge),
                    expires_at=now + timedelta(seconds=CHALLENGE_TTL + 60),
                )
            )
    except IntegrityError:
        raise PasskeyRefused("challenge already answered") from None


def _json_object(credential: str) -> dict[str, Any]:
    """The browser's answer as a JSON object, parsed by orjson (which refuses nesting
    deeper than 1,024 levels with a ``ValueError``, where the stdlib parser the library
    would use recurses until ``RecursionError``)."""
    data = orjson.loads(credential)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data


async def passkeys_of(session: AsyncSession, user_id: int) -> list[Passkey]:
    return list(
        await session.scalars(
            select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
        )
    )


def clean_name(name: str, fallback: str) -> str:
    """A passkey's name as the person typed it: one line of at most 100 characters,
    without control or formatting characters (a right-to-left override in a name would
    disguise it in the mails that name it)."""
    shown = " ".join(name.split())  # tabs and newlines become spaces
    shown = "".join(ch for ch in shown if unicodedata.category(ch) not in ("Cc", "Cf"))
    shown = " ".join(shown.split())[:NAME_LENGTH]
    return shown or fallback


async def register(
    session: AsyncSession,
    rp: RelyingParty,
    clock: Clock,
    user: User,
    challenge: Challenge,
    credential: str,
    name: str,
    *,
    require_user_verification: bool = False,
) -> Passkey:
    """Store the passkey the browser created for ``user`` (in the caller's transaction);
    ``PasskeyRefused`` for an answer that does not verify, to another challenge or user,
    or a credential already registered."""
    if challenge.user_id != user.id:
        raise PasskeyRefused("challenge of another user")
    if not credential or len(credential) > MAX_CREDENTIAL_JSON:
        raise PasskeyRefused("no credential")
    try:
        answer = _json_object(credential)
        verified = webauthn.verify_registration_response(
            credential=answer,
            expected_challenge=challenge.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=require_user_verification,
        )
        response = answer.get("response")
        transports = (response.get("transports") if isinstance(response, dict) else None) or []
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PasskeyRefused(f"registration not verified: {type(exc).__name__}") from None
    if len(await passkeys_of(session, user.id)) >= MAX_PASSKEYS:
        raise PasskeyRefused("too many passkeys")
    await take_challenge(session, clock, challenge)
    credential_id = bytes_to_base64url(verified.credential_id)
    taken = await session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id))
    if taken is not None:
        raise PasskeyRefused("credential already registered")
    passkey = Passkey(
        user_id=user.id,
        credential_id=credential_id,
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        name=name,
        aaguid=verified.aaguid,
        transports=[str(t)[:32] for t in transports if isinstance(t, str)][:8],
        backed_up=verified.credential_backed_up,
        created_at=clock.now(),
    )
    session.add(passkey)
    await session.flush()
    return passkey


@dataclass(frozen=True)
class Asserted:
    """A verified answer: whose passkey signed it, and what it said."""

    passkey_id: int
    user_id: int
    sign_count: int  # the counter before this answer
    new_sign_count: int
    backed_up: bool
    user_verified: bool

    def amr(self, *, after_password: bool) -> list[str]:
        key = "swk" if self.backed_up else "hwk"
        return ["pwd", key, "mfa"] if after_password else [key, "user", "mfa"]


async def check_assertion(
    session: AsyncSession,
    rp: RelyingParty,
    purpose: str,
    challenge: Challenge,
    credential: str,
) -> Asserted:
    """Verify an answer to ``challenge`` (reads only: a sign-in checks it before it
    opens a write transaction, so a flood of bad answers takes no write lock);
    ``PasskeyRefused`` for an unknown credential, one of another user than the
    challenge's, a user handle that is not its owner's, a bad signature or flags, or a
    counter that went back (a cloned authenticator). ``record_assertion`` then takes
    the challenge and moves the counter."""
    if not credential or len(credential) > MAX_CREDENTIAL_JSON:
        raise PasskeyRefused("no credential")
    try:
        parsed = parse_authentication_credential_json(_json_object(credential))
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyRefused(f"unreadable assertion: {type(exc).__name__}") from None
    passkey = await session.scalar(
        select(Passkey).where(Passkey.credential_id == bytes_to_base64url(parsed.raw_id))
    )
    if passkey is None:
        raise PasskeyRefused("unknown credential")
    if challenge.user_id and passkey.user_id != challenge.user_id:
        raise PasskeyRefused("credential of another account")
    handle = parsed.response.user_handle
    if handle is not None:
        owner = await session.get(User, passkey.user_id)
        if owner is None or handle != user_handle(owner):
            raise PasskeyRefused("user handle does not match")
    try:
        verified = webauthn.verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=webauthn.base64url_to_bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=purpose in VERIFIED,
        )
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyRefused(f"assertion not verified: {type(exc).__name__}") from None
    return Asserted(
        passkey.id,
        passkey.user_id,
        passkey.sign_count,
        verified.new_sign_count,
        verified.credential_backed_up,
        verified.user_verified,
    )


async def record_assertion(
    session: AsyncSession, clock: Clock, challenge: Challenge, asserted: Asserted
) -> None:
    """In the sign-in's write transaction: the challenge taken (``PasskeyRefused`` if
    it was answered already) and the counter moved on, if it still is what the check
    saw (one conditional ``UPDATE``: two answers racing with one counter, one wins)."""
    await take_challenge(session, clock, challenge)
    moved = await session.execute(
        update(Passkey)
        .where(Passkey.id == asserted.passkey_id, Passkey.sign_count == asserted.sign_count)
        .values(
            sign_count=asserted.new_sign_count,
            backed_up=asserted.backed_up,
            last_used_at=clock.now(),
        )
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", moved).rowcount != 1:
        raise PasskeyRefused("the passkey is gone, or was used at the same moment")


async def verify_assertion(
    session: AsyncSession,
    rp: RelyingParty,
    clock: Clock,
    purpose: str,
    challenge: Challenge,
    credential: str,
) -> Asserted:
    """``check_assertion`` and ``record_assertion`` in the caller's write transaction."""
    asserted = await check_assertion(session, rp, purpose, challenge, credential)
    await record_assertion(session, clock, challenge, asserted)
    return asserted


async def remove(session: AsyncSession, user_id: int, passkey_id: int) -> Passkey | None:
    """Delete one of the user's passkeys; the passkey, or None if it is not theirs."""
    passkey = await session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    )
    if passkey is not None:
        await session.delete(passkey)
        await session.flush()
    return passkey
