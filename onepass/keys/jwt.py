"""Compact JWS signing (RFC 7515) for the token hot path.

Signing goes straight to ``cryptography``: the header of each key is encoded once,
the claims are serialised with orjson, and the ECDSA signature is converted from DER
to the fixed-size ``r || s`` form of RFC 7518 §3.4. Four algorithms (``SUPPORTED_ALGS``):

* RS256: RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), OpenID Connect's mandatory one;
* PS256: RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt (RFC 7518 §3.5);
* ES256: ECDSA on P-256 with SHA-256 (RFC 7518 §3.4);
* EdDSA: Ed25519 (RFC 8037 §3.1), a key of ``kty`` OKP.

Each key signs with its own algorithm only (the ``alg`` of its JWK): an RSA key made for
PS256 never signs RS256, nor the reverse. Verification, in tests and for RPs, is left to
joserfc, an independent implementation (``keys.jws`` is 1pass's own, for its endpoints).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

from onepass.settings import SIGNING_ALGS

# Every algorithm the key ring can keep keys for (ONEPASS_SIGNING_ALGS names the ones a
# deployment keeps), and what a client's id_token_signed_response_alg may be.
SUPPORTED_ALGS: tuple[str, ...] = SIGNING_ALGS
# The ones the FAPI 2.0 Security Profile (§5.4.1) allows: not RS256 (PKCS#1 v1.5).
FAPI_ALGS: tuple[str, ...] = ("PS256", "ES256", "EdDSA")
RSA_KEY_BITS = 2048

# RFC 7518 §3.5: MGF1 with the same hash, a salt as long as the hash's output.
PSS_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def generate_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def private_key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("stored signing key is neither RSA, EC nor Ed25519")
    return key


def public_jwk(key: PrivateKey, alg: str) -> dict[str, Any]:
    """The public JWK with ``kid`` = its RFC 7638 thumbprint, ``use`` and ``alg``."""
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk: ECKey | OKPKey | RSAKey
    if alg == "ES256":
        jwk = ECKey.import_key(public_pem)
    elif alg == "EdDSA":
        jwk = OKPKey.import_key(public_pem)
    else:
        jwk = RSAKey.import_key(public_pem)
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

    def __post_init__(self) -> None:
        # A key signs with the algorithm it was made for, and that algorithm needs the
        # key's type: a mismatch is refused here, not found out by a verifier.
        expected = {
            "RS256": rsa.RSAPrivateKey,
            "PS256": rsa.RSAPrivateKey,
            "ES256": ec.EllipticCurvePrivateKey,
            "EdDSA": ed25519.Ed25519PrivateKey,
        }.get(self.alg)
        if expected is None or not isinstance(self.key, expected):
            raise ValueError(f"a {type(self.key).__name__} cannot sign {self.alg!r}")

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
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(signing_input)
        elif self.alg == "PS256":
            signature = key.sign(signing_input, PSS_PADDING, hashes.SHA256())
        else:
            signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return (signing_input + b"." + b64url(signature)).decode()
