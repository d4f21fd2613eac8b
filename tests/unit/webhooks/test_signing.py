"""Standard Webhooks signatures, against the reference implementation's known answers."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from onepass.webhooks import signing
from onepass.webhooks.signing import Signer

# Known-answer vectors of the Standard Webhooks reference implementation
# (libraries/*/ tests of github.com/standard-webhooks/standard-webhooks).
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
V1_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
V1_EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
V1A_SEED = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
V1A_EXPECTED = (
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
)


def test_v1_known_answer() -> None:
    signer = Signer.create("k1", signing.V1, signing.parse_secret(V1_SECRET))
    assert signing.sign(MSG_ID, TIMESTAMP, BODY, signer) == V1_EXPECTED


def test_v1a_known_answer_and_verifies_with_the_public_key_alone() -> None:
    seed = base64.b64decode(V1A_SEED)
    signer = Signer.create("k1", signing.V1A, seed)
    signature = signing.sign(MSG_ID, TIMESTAMP, BODY, signer)
    assert signature == V1A_EXPECTED
    public = signing.public_key(seed)
    assert public.startswith("whpk_")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public.removeprefix("whpk_")))
    raw = base64.b64decode(signature.split(",", 1)[1])
    key.verify(raw, f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY)
    with pytest.raises(InvalidSignature):
        key.verify(raw, f"{MSG_ID}.{TIMESTAMP + 1}.".encode() + BODY)


def test_headers_carry_one_v1_entry_per_key_and_the_kids_in_the_same_order() -> None:
    new = Signer.create("whk_new", signing.V1, signing.generate_secret())
    old = Signer.create("whk_old", signing.V1, signing.generate_secret())
    now = int(time.time())
    headers = signing.signature_headers("evt_1", now, b'{"a":1}', [new, old])
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") and e.count(",") == 1 for e in entries)
    assert headers["webhook-signature-kids"] == "whk_new whk_old"
    assert headers["webhook-id"] == "evt_1" and headers["webhook-timestamp"] == str(now)
    # The official verifier accepts either secret, and rejects a tampered body.
    for signer in (new, old):
        verifier = Webhook(signing.format_secret(signer.secret))
        assert verifier.verify(b'{"a":1}', headers) == {"a": 1}
        with pytest.raises(WebhookVerificationError):
            verifier.verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.format_secret(signing.generate_secret())).verify(b'{"a":1}', headers)


def test_secret_format_round_trips_through_the_official_library() -> None:
    secret = signing.generate_secret()
    text = signing.format_secret(secret)
    assert text.startswith("whsec_") and signing.parse_secret(text) == secret
    signer = Signer.create("k", signing.V1, secret)
    expected = Webhook(text).sign(MSG_ID, datetime.fromtimestamp(TIMESTAMP, UTC), BODY.decode())
    assert signing.sign(MSG_ID, TIMESTAMP, BODY, signer) == expected


def test_no_key_no_signature() -> None:
    with pytest.raises(ValueError, match="at least one signing key"):
        signing.signature_headers("evt", 1, b"{}", [])


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="v1 or v1a"):
        Signer.create("k", "v2", b"x" * 32)


def test_kids_are_unique_and_header_safe() -> None:
    kids = {signing.generate_kid() for _ in range(1000)}
    assert len(kids) == 1000
    assert all(k.startswith("whk_") and " " not in k and "," not in k for k in kids)
