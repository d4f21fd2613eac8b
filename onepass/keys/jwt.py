"""Compact JWS signing (RFC 7515) for the token hot path.

Signing goes straight to ``cryptography``: the header of each key is encoded once,
the claims are serialised with orjson, and the ECDSA signature is converted from DER
to the fixed-size ``r || s`` form of RFC 7518 §3.4. Verification, in tests and for
RPs, is left to joserfc, an independent implementation.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, RSAKey

SUPPORTED_ALGS = ("RS256", "ES256")
RSA_KEY_BITS = 2048

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def generate_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def private_key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("stored signing key is neither RSA nor EC")
    return key


def public_jwk(key: PrivateKey, alg: str) -> dict[str, Any]:
    """The public JWK with ``kid`` = its RFC 7638 thumbprint, ``use`` and ``alg``."""
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = (ECKey if alg == "ES256" else RSAKey).import_key(public_pem)
    data = dict(jwk.as_dict(private=False))
    data.update(kid=jwk.thumbprint(), use="sig", alg=alg)
    return data


@dataclass
class JWTSigner:
    """Signs JWTs with one private key; headers are encoded once per ``typ``."""

    kid: str
    alg: str
    key: PrivateKey
    _headers: dict[str | None, bytes] = field(default_factory=dict, repr=False)

    def _header(self, typ: str | None) -> bytes:
        header = self._headers.get(typ)
        if header is None:
            fields: dict[str, str] = {"alg": self.alg, "kid": self.kid}
            if typ:
                fields["typ"] = typ
            header = b64url(orjson.dumps(fields))
            self._headers[typ] = header
        return header

    def sign(self, claims: dict[str, Any], typ: str | None = "JWT") -> str:
        signing_input = self._header(typ) + b"." + b64url(orjson.dumps(claims))
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return (signing_input + b"." + b64url(signature)).decode()
