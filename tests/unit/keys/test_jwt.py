import base64
from typing import get_args

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.clients.registry import ID_TOKEN_ALGS
from onepass.keys.jwt import (
    FAPI_ALGS,
    SUPPORTED_ALGS,
    JWTSigner,
    generate_private_key,
    public_jwk,
)
from onepass.settings import SigningAlg


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_signed_jwt_verifies_with_joserfc_and_kid_is_thumbprint(alg: str) -> None:
    key = generate_private_key(alg)
    jwk = public_jwk(key, alg)
    signer = JWTSigner(jwk["kid"], alg, key)
    token = signer.sign({"sub": "abc", "n": 1}, typ="at+jwt")
    keyset = KeySet.import_key_set({"keys": [jwk]})
    decoded = jwt.decode(token, keyset, algorithms=[alg])
    assert decoded.claims == {"sub": "abc", "n": 1}
    assert decoded.header == {"alg": alg, "kid": jwk["kid"], "typ": "at+jwt"}
    assert keyset.keys[0].thumbprint() == jwk["kid"]


def test_es256_signature_is_fixed_size_r_s() -> None:
    import base64

    key = generate_private_key("ES256")
    token = JWTSigner("k", "ES256", key).sign({"a": 1})
    signature = token.split(".")[2]
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64  # RFC 7518 §3.4


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError):
        generate_private_key("HS256")


def test_ps256_is_rsassa_pss_with_sha256_mgf1_and_a_32_byte_salt() -> None:
    """RFC 7518 §3.5: checked with ``cryptography`` told the exact parameters; the same
    signature does not verify as PKCS#1 v1.5 (RS256) nor with another salt length."""
    key = generate_private_key("PS256")
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048
    token = JWTSigner("k", "PS256", key).sign({"a": 1})
    head, payload, signature = token.split(".")
    data = f"{head}.{payload}".encode()
    raw = base64.urlsafe_b64decode(signature + "==")
    public = key.public_key()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(raw, data, pss, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        other = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=64)
        public.verify(raw, data, other, hashes.SHA256())


def test_eddsa_key_is_an_ed25519_okp_jwk_with_its_alg() -> None:
    key = generate_private_key("EdDSA")
    jwk = public_jwk(key, "EdDSA")
    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    token = JWTSigner(jwk["kid"], "EdDSA", key).sign({"a": 1})
    assert len(base64.urlsafe_b64decode(token.split(".")[2] + "==")) == 64  # RFC 8032


@pytest.mark.parametrize(
    ("alg", "other"), [("EdDSA", "RS256"), ("ES256", "EdDSA"), ("PS256", "ES256")]
)
def test_a_signer_refuses_a_key_of_another_type(alg: str, other: str) -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        JWTSigner("k", alg, generate_private_key(other))


def test_the_allowed_algorithms_are_one_list() -> None:
    """What the settings accept, what the key ring keeps, what a client may register."""
    assert SUPPORTED_ALGS == ("RS256", "PS256", "ES256", "EdDSA")
    assert SUPPORTED_ALGS == get_args(SigningAlg)
    assert ID_TOKEN_ALGS == SUPPORTED_ALGS
    assert set(FAPI_ALGS) == set(SUPPORTED_ALGS) - {"RS256"}
