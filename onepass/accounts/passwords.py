"""Password hashing with argon2id (RFC 9106), via argon2-cffi."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from onepass.i18n import N_
from onepass.settings import Settings

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._argon2 = Argon2(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )
        # Verified against when the account does not exist, so that an unknown
        # email costs the same time as a wrong password (no user enumeration).
        self._dummy = self._argon2.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._argon2.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` was made with other parameters than the current ones."""
        return self._argon2.check_needs_rehash(stored)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


# Only this much of a password is scored: zxcvbn's time grows with the length, and a
# password longer than this is not guessable for its length alone.
STRENGTH_CHECKED_LENGTH = 64
# zxcvbn's scores: 3 is "safely unguessable" (about 10^10 guesses), what a password
# that guards every application a person signs in to should be.
MIN_STRENGTH_SCORE = 3

TOO_SHORT = N_("Use at least %(length)d characters.")
TOO_LONG = N_("Use at most %(length)d characters.")
TOO_GUESSABLE = N_(
    "This password is too easy to guess. Add another word or two; uncommon words are "
    "better, and no symbols, digits or capitals are required."
)
NAMES_YOU = N_("Do not use your email address or name in your password.")


@dataclass(frozen=True)
class PasswordProblem:
    """Why a new password is refused: ``message`` (English, translated where the page
    shows it) with its ``params``."""

    message: str
    params: dict[str, int]


def new_password_problem(
    password: str, *, min_length: int, personal: Sequence[str] = ()
) -> PasswordProblem | None:
    """NIST SP 800-63B §3.1.1.2 for a password a person chooses: long enough, not too
    long to hash, not built on their own address or name, and not guessable
    (zxcvbn, which knows common passwords, words, names, keyboard patterns, dates and
    l33t spellings); no composition rules. CPU-bound for up to tens of milliseconds:
    call it off the event loop."""
    if len(password) < min_length:
        return PasswordProblem(TOO_SHORT, {"length": min_length})
    if len(password) > MAX_PASSWORD_LENGTH:
        return PasswordProblem(TOO_LONG, {"length": MAX_PASSWORD_LENGTH})
    folded = password.casefold()
    words = {part for item in personal for part in _personal_words(item)}
    if any(len(word) >= 4 and word in folded for word in words):
        return PasswordProblem(NAMES_YOU, {})
    score = zxcvbn(password[:STRENGTH_CHECKED_LENGTH], user_inputs=sorted(words))["score"]
    if score < MIN_STRENGTH_SCORE:
        return PasswordProblem(TOO_GUESSABLE, {})
    return None


def _personal_words(value: str) -> list[str]:
    """``ada.lovelace@example.com`` → ada.lovelace@example.com, ada, lovelace."""
    folded = value.casefold().strip()
    local = folded.partition("@")[0]
    return [folded, local, *(w for w in re.split(r"[^\w]+", local) if w)]
