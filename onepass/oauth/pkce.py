"""Proof Key for Code Exchange (RFC 7636), S256 only.

``plain`` is refused: it protects nothing against an attacker who can read the
authorization request (RFC 9700 §2.1.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# Whole values only (fullmatch: "$" would also match before a final newline).
# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# The S256 challenge is BASE64URL(SHA256(verifier)): exactly 43 characters.
CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
S256 = "S256"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_valid_challenge(challenge: str) -> bool:
    return CHALLENGE.fullmatch(challenge) is not None


def challenge_of(verifier: str | None) -> str | None:
    """What a code's stored challenge must equal for ``verifier``: None without one (the
    code must have no challenge), and for a malformed verifier a value no challenge has."""
    if verifier is None:
        return None
    return s256(verifier) if VERIFIER.fullmatch(verifier) else ""


def verify(verifier: str, challenge: str) -> bool:
    """True if ``verifier`` is well-formed and hashes to ``challenge``."""
    if not VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
