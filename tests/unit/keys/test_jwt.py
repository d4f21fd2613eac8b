import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.keys.jwt import JWTSigner, generate_private_key, public_jwk


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
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
