"""Compact JWS verification (RFC 7515 §5.2) against the key ring's public keys.

Verification goes straight to ``cryptography``, as signing does (``keys.jwt``): the
public keys are built once per key-ring version (the ring replaces ``jwks_body`` on every
refresh that changes the keys), the key is the one the header's ``kid`` names, and the
header's ``alg`` must be that key's own (RFC 8725 §3.1: no ``none``, no algorithm
confusion: an RS256 key never checks an HMAC, an ES256 key never an RS256 signature,
and an RSA key published for PS256 never checks an RS256 signature, nor the reverse:
each key is checked with the one algorithm of its JWK's ``alg``). ES256 signatures are
the fixed-size ``r || s`` of RFC 7518 §3.4, converted to DER for ``cryptography``; PS256
is RSASSA-PSS with MGF1-SHA256 and a 32-byte salt (§3.5); EdDSA is Ed25519 (RFC 8037).
joserfc stays the independent verifier of the tests and of RPs.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from onepass.keys.jwt import PSS_PADDING
from onepass.keys.keyring import KeyRing

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_ES256_SIGNATURE_BYTES = 64
_ED25519_KEY_BYTES = 32


class InvalidJWS(ValueError):
    """The token is not a compact JWS signed by one of the published keys."""


def _b64decode(part: str) -> bytes:
    # Unpadded base64url only (RFC 7515 §2): no padding, spaces or other alphabets.
    if len(part) % 4 == 1 or not _BASE64URL.fullmatch(part):
        raise InvalidJWS("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidJWS("not JSON") from None
    if not isinstance(value, dict):
        raise InvalidJWS("not a JSON object")
    return value


def _integer(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise ValueError(f"JWK member {name!r} is missing")
    return int.from_bytes(_b64decode(value), "big")


VerifyingKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class PublicKey:
    kid: str
    alg: str
    key: VerifyingKey

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """A published key (``keys.jwt.public_jwk``); ValueError for anything else."""
        kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
        if not isinstance(kid, str) or jwk.get("use", "sig") != "sig":
            raise ValueError("not a signing key with a kid")
        key: VerifyingKey
        if alg == "ES256" and kty == "EC" and jwk.get("crv") == "P-256":
            numbers = ec.EllipticCurvePublicNumbers(
                _integer(jwk, "x"), _integer(jwk, "y"), ec.SECP256R1()
            )
            key = numbers.public_key()
        elif alg in ("RS256", "PS256") and kty == "RSA":
            key = rsa.RSAPublicNumbers(_integer(jwk, "e"), _integer(jwk, "n")).public_key()
        elif alg == "EdDSA" and kty == "OKP" and jwk.get("crv") == "Ed25519":
            x = jwk.get("x")
            raw = _b64decode(x) if isinstance(x, str) else b""
            if len(raw) != _ED25519_KEY_BYTES:
                raise ValueError("an Ed25519 key is 32 bytes")
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        else:
            raise ValueError(f"unsupported key {kty!r}/{alg!r}")
        return cls(kid, alg, key)

    def verify(self, signature: bytes, signing_input: bytes) -> None:
        """Raises ``InvalidJWS`` unless ``signature`` is this key's over ``signing_input``."""
        key = self.key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                if len(signature) != _ES256_SIGNATURE_BYTES:
                    raise InvalidJWS("an ES256 signature is 64 bytes")
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, signing_input)
            elif self.alg == "PS256":  # this key's own algorithm (from_jwk), not the header's
                key.verify(signature, signing_input, PSS_PADDING, hashes.SHA256())
            else:
                key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise InvalidJWS("bad signature") from None


def public_keys(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    """The verification keys of a JWK set, by ``kid``; keys that cannot sign are left out."""
    keys: dict[str, PublicKey] = {}
    for jwk in jwks.get("keys", ()):
        try:
            key = PublicKey.from_jwk(jwk)
        except ValueError:
            continue
        keys[key.kid] = key
    return keys


class JWSVerifier:
    """Verifies compact JWS against the key ring's published keys (next, active, retired).

    A token verified once is remembered, by its exact text, until the key ring changes
    (``MEMORY`` tokens, the oldest forgotten first): the same bytes under the same keys
    verify the same way, so an RP presenting one access token to userinfo again and again
    pays the signature check (an ECDSA verification, most of userinfo's CPU) once. Only
    the signature is remembered: expiry, revocation, the user and the client are checked
    on every request by the caller. The remembered header and claims are shared: callers
    read them and never change them.
    """

    MEMORY = 4096

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        self._prepared: tuple[bytes, dict[str, PublicKey]] | None = None
        self._verified: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def keys(self) -> dict[str, PublicKey]:
        """The public keys, built again only when the key ring's version changed."""
        body = self._keyring.jwks_body
        prepared = self._prepared
        if prepared is None or prepared[0] is not body:
            prepared = (body, public_keys(self._keyring.jwks))
            self._prepared = prepared
            self._verified = {}  # verified under keys that may be gone
        return prepared[1]

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The protected header and the claims of ``token``; ``InvalidJWS`` otherwise."""
        keys = self.keys()
        remembered = self._verified.get(token)
        if remembered is not None:
            return remembered
        verified = self._verify(keys, token)
        if len(self._verified) >= self.MEMORY:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = verified
        return verified

    @staticmethod
    def _verify(keys: dict[str, PublicKey], token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidJWS("a compact JWS has three parts")
        header_part, payload_part, signature_part = parts
        header = _json_object(_b64decode(header_part))
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not isinstance(kid, str):
            raise InvalidJWS("alg and kid are required")
        if "crit" in header:
            raise InvalidJWS("no critical header parameter is understood")  # RFC 7515 §4.1.11
        key = keys.get(kid)
        if key is None:
            raise InvalidJWS("unknown kid")
        if key.alg != alg:
            raise InvalidJWS("alg is not the key's")
        signature = _b64decode(signature_part)
        # The parts are base64url, hence ASCII, by now.
        key.verify(signature, f"{header_part}.{payload_part}".encode("ascii"))
        return header, _json_object(_b64decode(payload_part))
