"""Security Event Tokens (RFC 8417, OpenID SSF 1.0) as pure functions, verified with
joserfc; RFC 8935 §2.3 error bodies."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.keys.jwt import JWTSigner, generate_private_key, public_jwk
from onepass.webhooks import secevents

SUBJECT = secevents.subject("https://id.example", "user-sub")
PAYLOAD = {
    "client_id": "notes",
    "jti": "j-1",
    "events": {secevents.SESSION_REVOKED: {"event_timestamp": 900}},
    "sub_id": SUBJECT,
    "toe": 900,
}


def test_claims_name_the_subject_by_sub_id_and_carry_no_sub_nor_exp() -> None:
    claims = secevents.claims(issuer="https://id.example", payload=PAYLOAD, now=1000)
    assert claims == {
        "iss": "https://id.example",
        "aud": "notes",
        "iat": 1000,
        "jti": "j-1",
        "events": {secevents.SESSION_REVOKED: {"event_timestamp": 900}},
        "sub_id": {"format": "iss_sub", "iss": "https://id.example", "sub": "user-sub"},
        "toe": 900,
    }
    with_txn = secevents.claims(issuer="i", payload={**PAYLOAD, "txn": "t-1"}, now=1)
    assert with_txn["txn"] == "t-1"


def test_a_set_without_an_event_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        secevents.claims(issuer="i", payload={**PAYLOAD, "events": {}}, now=1)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_the_signed_set_is_typed_and_verifies_with_joserfc(alg: str) -> None:
    key = generate_private_key(alg)
    jwk = public_jwk(key, alg)
    signer = JWTSigner(jwk["kid"], alg, key)
    token = secevents.sign(signer, issuer="https://id.example", payload=PAYLOAD, now=1000)
    decoded = jwt.decode(token, KeySet.import_key_set({"keys": [jwk]}), algorithms=[alg])
    assert decoded.header == {"alg": alg, "kid": jwk["kid"], "typ": "secevent+jwt"}
    assert decoded.claims["jti"] == "j-1" and decoded.claims["aud"] == "notes"
    later = secevents.sign(signer, issuer="https://id.example", payload=PAYLOAD, now=2000)
    assert jwt.decode(later, KeySet.import_key_set({"keys": [jwk]})).claims["jti"] == "j-1"


def test_every_supported_event_is_a_caep_risc_or_1pass_uri() -> None:
    for uri in secevents.SUPPORTED:
        assert uri.startswith(
            (
                "https://schemas.openid.net/secevent/caep/event-type/",
                "https://schemas.openid.net/secevent/risc/event-type/",
                "https://1pass.dev/secevent/",
            )
        )
    assert secevents.VERIFICATION not in secevents.SUPPORTED  # always sent, never requested


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"err": "invalid_audience", "description": "not us"}', "invalid_audience: not us"),
        ('{"err": "invalid_key"}', "invalid_key"),
        ('{"err": 3}', None),
        ("[]", None),
        ("not json", None),
        ("", None),
        (None, None),
    ],
)
def test_a_receivers_400_reason_is_read_when_it_is_rfc_8935s(
    body: str | None, reason: str | None
) -> None:
    assert secevents.push_error(body) == reason
