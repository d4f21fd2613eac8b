"""keys.jws against joserfc, an independent implementation: each accepts what the other
signs, and ours refuses what joserfc is asked to sign with another algorithm."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from onepass.keys.jws import InvalidJWS, JWSVerifier
from onepass.keys.jwt import JWTSigner, b64url, generate_private_key, public_jwk


class Ring:
    """What JWSVerifier reads of a KeyRing."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.publish(keys)

    def publish(self, keys: list[dict[str, Any]]) -> None:
        self.jwks = {"keys": keys}
        self.jwks_body = orjson.dumps(self.jwks)


def make(alg: str) -> tuple[JWTSigner, dict[str, Any], Any]:
    key = generate_private_key(alg)
    jwk = public_jwk(key, alg)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kind = {"ES256": ECKey, "EdDSA": OKPKey}.get(alg, RSAKey)
    joserfc_key = kind.import_key(pem)  # type: ignore[attr-defined]
    return JWTSigner(jwk["kid"], alg, key), jwk, joserfc_key


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_each_accepts_what_the_other_signs(alg: str) -> None:
    signer, jwk, joserfc_key = make(alg)
    verifier = JWSVerifier(Ring([jwk]))  # type: ignore[arg-type]
    header = {"alg": alg, "kid": jwk["kid"], "typ": "at+jwt"}
    by_joserfc = jwt.encode(header, {"sub": "a", "n": 1}, joserfc_key, algorithms=[alg])
    assert verifier.verify(by_joserfc) == (header, {"sub": "a", "n": 1})
    ours = signer.sign({"sub": "b"}, typ="at+jwt")
    assert verifier.verify(ours)[1] == {"sub": "b"}
    keyset = KeySet.import_key_set({"keys": [jwk]})
    assert jwt.decode(ours, keyset, algorithms=[alg]).claims == {"sub": "b"}


def hmac_signed(alg: str, jwk: dict[str, Any]) -> str:
    kind = OKPKey if jwk["kty"] == "OKP" else RSAKey
    secret = kind.import_key(jwk).as_pem(private=False)  # type: ignore[attr-defined]
    head = b64url(orjson.dumps({"alg": alg, "kid": jwk["kid"]})) + b"." + b64url(b'{"sub":"a"}')
    return (head + b"." + b64url(hmac.new(secret, head, hashlib.sha256).digest())).decode()


def test_a_key_checks_only_its_own_algorithm() -> None:
    _, es_jwk, es_joserfc = make("ES256")
    _, rs_jwk, rs_joserfc = make("RS256")
    verifier = JWSVerifier(Ring([es_jwk, rs_jwk]))  # type: ignore[arg-type]
    claims = {"sub": "a"}
    # RS256 signed by the RSA key, but naming the EC key's kid (and the other way round).
    crossed = [
        jwt.encode(
            {"alg": "RS256", "kid": es_jwk["kid"]}, claims, rs_joserfc, algorithms=["RS256"]
        ),
        jwt.encode(
            {"alg": "ES256", "kid": rs_jwk["kid"]}, claims, es_joserfc, algorithms=["ES256"]
        ),
        # HS256 with the RSA public key's PEM as the shared secret (the classic confusion;
        # joserfc refuses to sign it, so by hand).
        hmac_signed("HS256", rs_jwk),
        hmac_signed("RS256", rs_jwk),
        jwt.encode({"alg": "none", "kid": es_jwk["kid"]}, claims, None, algorithms=["none"]),
    ]
    for token in crossed:
        with pytest.raises(InvalidJWS):
            verifier.verify(token)


def test_rsa_keys_of_rs256_and_ps256_check_only_their_own_padding() -> None:
    """Two RSA keys, one published for RS256 and one for PS256: a token whose header says
    RS256 signed (with PKCS#1 v1.5) by the PS256 key is refused, and the reverse, whether
    it names the signing key's kid or the other key's; so is a PS256 header over a
    PKCS#1 v1.5 signature of the PS256 key. Only each key's own algorithm verifies."""
    rs, rs_jwk, rs_joserfc = make("RS256")
    ps, ps_jwk, ps_joserfc = make("PS256")
    verifier = JWSVerifier(Ring([rs_jwk, ps_jwk]))  # type: ignore[arg-type]
    claims = {"sub": "a"}
    crossed = [
        # The header's alg is not the key's (the key the kid names).
        jwt.encode({"alg": "RS256", "kid": ps_jwk["kid"]}, claims, ps_joserfc, ["RS256"]),
        jwt.encode({"alg": "PS256", "kid": rs_jwk["kid"]}, claims, rs_joserfc, ["PS256"]),
        # 1pass's own signer given the other algorithm for the same key.
        JWTSigner(ps_jwk["kid"], "RS256", ps.key).sign(claims),
        JWTSigner(rs_jwk["kid"], "PS256", rs.key).sign(claims),
        # The header says the key's alg, the signature is the other padding.
        jwt.encode({"alg": "RS256", "kid": ps_jwk["kid"]}, claims, ps_joserfc, ["RS256"]).replace(
            b64url(orjson.dumps({"alg": "RS256", "kid": ps_jwk["kid"]})).decode(),
            b64url(orjson.dumps({"alg": "PS256", "kid": ps_jwk["kid"]})).decode(),
        ),
    ]
    for token in crossed:
        with pytest.raises(InvalidJWS):
            verifier.verify(token)
    assert verifier.verify(ps.sign(claims))[1] == claims
    assert verifier.verify(rs.sign(claims))[1] == claims


def test_an_eddsa_key_checks_only_eddsa() -> None:
    ed, ed_jwk, ed_joserfc = make("EdDSA")
    _, es_jwk, es_joserfc = make("ES256")
    verifier = JWSVerifier(Ring([ed_jwk, es_jwk]))  # type: ignore[arg-type]
    claims = {"sub": "a"}
    assert verifier.verify(ed.sign(claims))[1] == claims
    header, verified = verifier.verify(
        jwt.encode({"alg": "EdDSA"} | {"kid": ed_jwk["kid"]}, claims, ed_joserfc, ["EdDSA"])
    )
    assert header["alg"] == "EdDSA" and verified == claims
    crossed = [
        jwt.encode({"alg": "EdDSA", "kid": es_jwk["kid"]}, claims, ed_joserfc, ["EdDSA"]),
        jwt.encode({"alg": "ES256", "kid": ed_jwk["kid"]}, claims, es_joserfc, ["ES256"]),
        hmac_signed("HS256", ed_jwk),
    ]
    for token in crossed:
        with pytest.raises(InvalidJWS):
            verifier.verify(token)


def test_keys_follow_the_ring_version() -> None:
    old, old_jwk, _ = make("ES256")
    new, new_jwk, _ = make("ES256")
    ring = Ring([old_jwk])
    verifier = JWSVerifier(ring)  # type: ignore[arg-type]
    assert verifier.verify(old.sign({"v": 1}))[1] == {"v": 1}
    with pytest.raises(InvalidJWS):
        verifier.verify(new.sign({"v": 2}))
    ring.publish([new_jwk])
    assert verifier.verify(new.sign({"v": 2}))[1] == {"v": 2}
    with pytest.raises(InvalidJWS):
        verifier.verify(old.sign({"v": 1}))


def test_a_remembered_token_is_forgotten_when_its_key_leaves_the_ring() -> None:
    """The verification memo: the same token verifies again without its signature being
    checked, but once the key ring changes and its key is gone, it is refused."""
    signer, jwk, _ = make("ES256")
    other_signer, other_jwk, _ = make("ES256")
    ring = Ring([jwk, other_jwk])
    verifier = JWSVerifier(ring)  # type: ignore[arg-type]
    token = signer.sign({"sub": "a"}, typ="at+jwt")
    assert verifier.verify(token)[1] == {"sub": "a"}
    assert verifier.verify(token)[1] == {"sub": "a"}  # remembered
    ring.publish([other_jwk])  # the key that signed it is removed
    with pytest.raises(InvalidJWS):
        verifier.verify(token)
    assert verifier.verify(other_signer.sign({"sub": "b"}))[1] == {"sub": "b"}


def test_a_forged_token_is_never_remembered_as_verified() -> None:
    signer, jwk, _ = make("ES256")
    verifier = JWSVerifier(Ring([jwk]))  # type: ignore[arg-type]
    token = signer.sign({"sub": "a"}, typ="at+jwt")
    head, _payload, signature = token.split(".")
    admin = b64url(orjson.dumps({"sub": "admin"})).decode()
    forged = f"{head}.{admin}.{signature}"
    for _ in range(2):
        with pytest.raises(InvalidJWS):
            verifier.verify(forged)
    assert verifier.verify(token)[1] == {"sub": "a"}


def test_the_memory_is_bounded() -> None:
    signer, jwk, _ = make("ES256")
    verifier = JWSVerifier(Ring([jwk]))  # type: ignore[arg-type]
    verifier.MEMORY = 8
    first = signer.sign({"n": 0})
    tokens = [first] + [signer.sign({"n": n}) for n in range(1, 20)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier._verified) == 8
    assert first not in verifier._verified
    assert verifier.verify(first)[1] == {"n": 0}  # verified again, from the signature
