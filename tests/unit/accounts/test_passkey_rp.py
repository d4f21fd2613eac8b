"""1pass as a WebAuthn relying party: its RP ID and origin come from the issuer, and
an issuer on an IP address (which browsers refuse as an RP ID) offers no passkeys."""

from __future__ import annotations

import pytest

from onepass.accounts.passkeys import RelyingParty, clean_name


@pytest.mark.parametrize(
    ("issuer", "rp_id", "origin", "usable"),
    [
        ("https://id.example.com", "id.example.com", "https://id.example.com", True),
        (
            "https://id.example.com:8443/tenant",
            "id.example.com",
            "https://id.example.com:8443",
            True,
        ),
        ("http://localhost:8000", "localhost", "http://localhost:8000", True),
        ("https://ID.Example.com:443", "id.example.com", "https://id.example.com", True),
        ("HTTP://Localhost:80/", "localhost", "http://localhost", True),
        ("http://127.0.0.1:8000", "127.0.0.1", "http://127.0.0.1:8000", False),
        ("http://[::1]:8000", "::1", "http://[::1]:8000", False),
    ],
)
def test_the_rp_is_the_issuers_host(issuer: str, rp_id: str, origin: str, usable: bool) -> None:
    rp = RelyingParty.of_issuer(issuer)
    assert (rp.id, rp.origin, rp.usable) == (rp_id, origin, usable)


def test_a_name_is_one_line_of_at_most_100_characters() -> None:
    assert clean_name("  my\tphone\n ", "Passkey") == "my phone"
    assert clean_name("   ", "Passkey") == "Passkey"
    assert clean_name("my\u202ephone", "Passkey") == "myphone"
    assert len(clean_name("x" * 500, "Passkey")) == 100
