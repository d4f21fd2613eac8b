"""Secrets at rest.

``SecretBox`` encrypts private keys and webhook secrets with AES-256-GCM under a key
derived from ``ONEPASS_SECRET_KEY`` (HKDF-SHA256), binding each ciphertext to the row
it belongs to through the associated data, so a ciphertext copied to another row
does not decrypt.

``KeyedHasher`` stores high-entropy secrets (client secrets, tokens) as HMAC-SHA-256
under another derived key. These secrets are random 256-bit strings, so a slow
password hash would add no strength, only cost on every token request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_BOX_VERSION = "v1"


class DecryptionError(Exception):
    """A stored secret does not decrypt: wrong ONEPASS_SECRET_KEY or a damaged row."""


def derive_key(secret_key: str, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"onepass", info=purpose.encode()
    ).derive(secret_key.encode())


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        self._aead = AESGCM(derive_key(secret_key, "onepass/at-rest/v1"))

    def encrypt(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode())
        return f"{_BOX_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, context: str) -> bytes:
        version, _, body = token.partition(".")
        if version != _BOX_VERSION:
            raise DecryptionError(f"unknown ciphertext version {version!r}")
        try:
            raw = base64.urlsafe_b64decode(body)
            return self._aead.decrypt(raw[:12], raw[12:], context.encode())
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(
                "stored secret does not decrypt (was ONEPASS_SECRET_KEY changed?)"
            ) from exc


class KeyedHasher:
    PREFIX = "hmac-sha256$"

    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "onepass/secret-hash/v1")

    def hash(self, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return self.PREFIX + digest

    def verify(self, secret: str, stored: str) -> bool:
        """Constant-time comparison of ``secret`` with a stored hash."""
        return hmac.compare_digest(self.hash(secret).encode(), stored.encode())
