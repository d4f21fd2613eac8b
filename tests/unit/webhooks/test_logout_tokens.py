"""Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4), as pure functions,
verified with joserfc."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.keys.jwt import JWTSigner, generate_private_key, public_jwk
from onepass.webhooks import logout_tokens

PAYLOAD = {"client_id": "notes", "sub": "user-sub", "sid": "s-1", "jti": "j-1", "reason": "x"}


def test_claims_are_the_specs_and_never_a_nonce() -> None:
    claims = logout_tokens.claims(
        issuer="https://id.example", client_id="notes", payload=PAYLOAD, now=1000
    )
    assert claims == {
        "iss": "https://id.example",
        "aud": "notes",
        "iat": 1000,
        "exp": 1120,
        "jti": "j-1",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        "sub": "user-sub",
        "sid": "s-1",
    }


def test_a_user_wide_token_has_no_sid_and_one_without_either_is_refused() -> None:
    whole = logout_tokens.claims(issuer="i", client_id="c", payload={**PAYLOAD, "sid": None}, now=1)
    assert "sid" not in whole and whole["sub"] == "user-sub"
    with pytest.raises(ValueError, match="sub or a sid"):
        logout_tokens.claims(
            issuer="i", client_id="c", payload={"jti": "j", "sub": None, "sid": None}, now=1
        )


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_the_signed_token_is_typed_and_verifies_with_joserfc(alg: str) -> None:
    key = generate_private_key(alg)
    jwk = public_jwk(key, alg)
    token = logout_tokens.sign(
        JWTSigner(jwk["kid"], alg, key),
        issuer="https://id.example",
        client_id="notes",
        payload=PAYLOAD,
        now=1000,
    )
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": [jwk]}), algorithms=[alg])
    assert decoded.header == {"alg": alg, "kid": jwk["kid"], "typ": "logout+jwt"}
    assert decoded.claims["jti"] == "j-1" and "nonce" not in decoded.claims
    body = logout_tokens.request_body(token)
    assert parse_qs(body.decode()) == {"logout_token": [token]}
