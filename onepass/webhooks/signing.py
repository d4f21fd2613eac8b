"""Standard Webhooks signatures (https://www.standardwebhooks.com/, spec v1.0.0).

Pure functions. A delivery is signed over the exact bytes sent::

    {webhook-id}.{webhook-timestamp}.{body}

- ``v1``: HMAC-SHA256 with a shared secret, written ``whsec_<base64>``; what every
  official verifier library checks.
- ``v1a``: Ed25519; the RP holds only the public key ``whpk_<base64>`` (the signer's
  private key is ``whsk_<base64 of the 32-byte seed>``, as in the reference
  implementation).

``webhook-signature`` holds one ``<version>,<base64>`` entry per valid key,
space-separated, each entry exactly that (stock verifiers split on the comma and
reject anything else). 1pass adds ``webhook-signature-kids``: the kid of each entry,
in the same order, so an RP holding several keys knows which one signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

V1 = "v1"
V1A = "v1a"
SCHEMES = (V1, V1A)

SECRET_PREFIX = "whsec_"
PUBLIC_KEY_PREFIX = "whpk_"
PRIVATE_KEY_PREFIX = "whsk_"

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
HEADER_KIDS = "webhook-signature-kids"

SECRET_BYTES = 32


@dataclass(frozen=True)
class Signer:
    """One key able to sign: a kid, a scheme, and its raw secret (HMAC key or Ed25519 seed)."""

    kid: str
    scheme: str
    secret: bytes = field(repr=False)
    _ed25519: Ed25519PrivateKey | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(cls, kid: str, scheme: str, secret: bytes) -> Signer:
        if scheme == V1:
            return cls(kid, scheme, secret)
        if scheme == V1A:
            return cls(kid, scheme, secret, Ed25519PrivateKey.from_private_bytes(secret))
        raise ValueError(f"unknown signature scheme {scheme!r}; use v1 or v1a")

    def sign(self, content: bytes) -> str:
        if self._ed25519 is not None:
            raw = self._ed25519.sign(content)
        else:
            raw = hmac.new(self.secret, content, hashlib.sha256).digest()
        return f"{self.scheme},{base64.b64encode(raw).decode()}"


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return b"%s.%d.%s" % (msg_id.encode(), timestamp, body)


def sign(msg_id: str, timestamp: int, body: bytes, signer: Signer) -> str:
    """One ``<scheme>,<base64>`` signature entry."""
    return signer.sign(signed_content(msg_id, timestamp, body))


def signature_headers(
    msg_id: str, timestamp: int, body: bytes, signers: Sequence[Signer]
) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt, signed by every key in ``signers``."""
    if not signers:
        raise ValueError("at least one signing key is needed")
    content = signed_content(msg_id, timestamp, body)
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join(s.sign(content) for s in signers),
        HEADER_KIDS: " ".join(s.kid for s in signers),
    }


def generate_secret() -> bytes:
    """32 random bytes: an HMAC secret (v1) or an Ed25519 seed (v1a)."""
    return secrets.token_bytes(SECRET_BYTES)


def generate_kid() -> str:
    return "whk_" + secrets.token_hex(10)


def format_secret(secret: bytes) -> str:
    """``whsec_<base64>``, the form every Standard Webhooks library accepts."""
    return SECRET_PREFIX + base64.b64encode(secret).decode()


def parse_secret(text: str) -> bytes:
    return base64.b64decode(text.removeprefix(SECRET_PREFIX))


def public_key(seed: bytes) -> str:
    """``whpk_<base64>``: the Ed25519 public key of a v1a seed."""
    raw = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()
