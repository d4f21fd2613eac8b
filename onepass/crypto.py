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
from collections.abc import Sequence

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


def fingerprint(secret_key: str) -> str:
    """A name for a key that reveals nothing of it (processes report the keys they
    accept, so that ``onepass secrets rotate`` can check every one takes the new key)."""
    return derive_key(secret_key, "onepass/fingerprint/v1").hex()[:16]


class SecretBox:
    """Encrypts under ``secret_key``; decrypts under it or, during a rotation of the
    key, under one of ``fallbacks`` (ONEPASS_SECRET_KEY_FALLBACKS)."""

    def __init__(self, secret_key: str, fallbacks: Sequence[str] = ()) -> None:
        self._aead = AESGCM(derive_key(secret_key, "onepass/at-rest/v1"))
        self._fallbacks = [AESGCM(derive_key(k, "onepass/at-rest/v1")) for k in fallbacks]
        self.fingerprints = [fingerprint(secret_key), *(fingerprint(k) for k in fallbacks)]

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
        except ValueError as exc:
            raise DecryptionError("stored secret is damaged") from exc
        for aead in (self._aead, *self._fallbacks):
            try:
                return aead.decrypt(raw[:12], raw[12:], context.encode())
            except (InvalidTag, ValueError):
                continue
        raise DecryptionError("stored secret does not decrypt (was ONEPASS_SECRET_KEY changed?)")

    def under_primary(self, token: str, context: str) -> bool:
        """Whether ``token`` decrypts under the primary key alone (a rotation is done
        when every stored secret does)."""
        _, _, body = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(body)
            self._aead.decrypt(raw[:12], raw[12:], context.encode())
        except (InvalidTag, ValueError):
            return False
        return True


class KeyedHasher:
    """HMAC-SHA-256 under a key derived from ONEPASS_SECRET_KEY, or under the installation's
    stored hashing key once the secret key has been rotated (``pepper``): stored hashes
    must keep verifying when the secret key changes, and HMACs cannot be re-keyed."""

    PREFIX = "hmac-sha256$"

    def __init__(self, secret_key: str | None = None, *, pepper: bytes | None = None) -> None:
        if pepper is None:
            assert secret_key is not None
            pepper = derive_key(secret_key, "onepass/secret-hash/v1")
        self._key = pepper

    @property
    def pepper(self) -> bytes:
        return self._key

    def use(self, pepper: bytes) -> None:
        """Hash under ``pepper`` from now on (in place: every holder of this hasher)."""
        self._key = pepper

    def hash(self, secret: str) -> str:
        digest = hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()
        return self.PREFIX + digest

    def verify(self, secret: str, stored: str) -> bool:
        """Constant-time comparison of ``secret`` with a stored hash."""
        return hmac.compare_digest(self.hash(secret).encode(), stored.encode())
