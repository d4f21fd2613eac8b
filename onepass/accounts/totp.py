"""TOTP (RFC 6238): the administrators' second factor, for step-up.

30-second steps, 6 digits, SHA-1 (what every authenticator app reads from an
``otpauth://`` URI). A code is accepted for the step before, the current one and the
one after (clock drift), and never twice: the last accepted step is kept, and a code
of that step or an earlier one is refused.
"""

from __future__ import annotations

import hmac

import pyotp

STEP_SECONDS = 30
DIGITS = 6
ISSUER_NAME = "1pass"


def box_context(user_id: int) -> str:
    """Binds an encrypted TOTP secret to its user (``SecretBox``)."""
    return f"totp:{user_id}"


def new_secret() -> str:
    """160 random bits, base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=ISSUER_NAME
    )


def code_at(secret: str, timestamp: float) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).at(int(timestamp))


def matching_step(secret: str, code: str, timestamp: float, last_step: int | None) -> int | None:
    """The step ``code`` belongs to (within one step of now, after ``last_step``), or None."""
    code = code.strip()
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(timestamp) // STEP_SECONDS
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
