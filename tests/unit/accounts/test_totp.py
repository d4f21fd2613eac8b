"""TOTP: RFC 6238's SHA-1 test vectors, the drift window, and no code accepted twice."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pytest

from onepass.accounts import totp

# RFC 6238 Appendix B: the ASCII seed "12345678901234567890", SHA-1, 8 digits; our
# codes are the last 6 digits of the same HOTP values.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
]


@pytest.mark.parametrize(("timestamp", "eight_digits"), RFC_VECTORS)
def test_codes_match_rfc_6238(timestamp: int, eight_digits: str) -> None:
    assert totp.code_at(RFC_SECRET, timestamp) == eight_digits[-6:]


def test_the_previous_current_and_next_steps_are_accepted() -> None:
    secret = totp.new_secret()
    now = 1_800_000_015.0
    step = int(now) // 30
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, now + 30 * offset)
        assert totp.matching_step(secret, code, now, None) == step + offset
    for offset in (-2, 2):
        assert (
            totp.matching_step(secret, totp.code_at(secret, now + 30 * offset), now, None) is None
        )


def test_a_step_at_or_before_the_last_accepted_is_refused() -> None:
    secret = totp.new_secret()
    now = 1_800_000_015.0
    step = int(now) // 30
    code = totp.code_at(secret, now)
    assert totp.matching_step(secret, code, now, step) is None
    assert totp.matching_step(secret, totp.code_at(secret, now - 30), now, step - 1) is None
    assert totp.matching_step(secret, totp.code_at(secret, now + 30), now, step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", " 12 34 "])
def test_malformed_codes_are_refused(code: str) -> None:
    assert totp.matching_step(totp.new_secret(), code, 1_800_000_000.0, None) is None


def test_the_provisioning_uri_is_what_authenticator_apps_read() -> None:
    secret = totp.new_secret()
    uri = urlparse(totp.provisioning_uri(secret, "ops@example.com"))
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert query["secret"] == [secret] and query["issuer"] == ["1pass"]
    assert len(base64.b32decode(secret)) == 20  # 160 bits
