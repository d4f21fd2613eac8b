"""The FAPI 2.0 profile's rules as plain functions (``clients.profiles``): what a
registration must be, and what every request asks of a profile client."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from onepass.clients import profiles


@dataclass(frozen=True)
class Registration:
    profile: str | None = "fapi2"
    token_endpoint_auth_method: str = "private_key_jwt"
    redirect_uris: tuple[str, ...] = ("https://rp.example/cb",)
    id_token_signed_response_alg: str = "ES256"
    authorization_signed_response_alg: str | None = None


def problems(client: Registration, *, production: bool = True) -> list[str]:
    return profiles.registration_problems(
        client, production=production, id_token_algs_available=("RS256", "ES256")
    )


def test_a_registration_that_meets_the_profile_has_no_problem() -> None:
    assert problems(Registration()) == []
    assert problems(Registration(profile=None, token_endpoint_auth_method="none")) == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"token_endpoint_auth_method": "none"}, "public client"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "not client_secret_post"),
        ({"redirect_uris": ("http://rp.example/cb",)}, "https"),
        ({"redirect_uris": ("http://127.0.0.1:8000/cb",)}, "https"),
        ({"id_token_signed_response_alg": "RS256"}, "--id-token-alg ES256"),
        (
            {"authorization_signed_response_alg": "RS256"},
            "--authorization-signed-response-alg ES256",
        ),
    ],
)
def test_each_thing_the_profile_forbids_is_one_problem_saying_what_to_do(
    change: dict[str, object], said: str
) -> None:
    found = problems(replace(Registration(), **change))  # type: ignore[arg-type]
    assert len(found) == 1 and said in found[0], found


def test_loopback_http_is_for_development_only() -> None:
    local = Registration(redirect_uris=("http://localhost:3000/cb", "http://[::1]/cb"))
    assert problems(local, production=False) == []
    assert len(problems(local, production=True)) == 2
    assert not profiles.https_or_local("http://127.0.0.1.evil.example/", production=False)
    assert not profiles.https_or_local("http://[::1/", production=False)


def test_request_time_rules_apply_to_profile_clients_only() -> None:
    fapi, default = Registration(), Registration(profile=None)
    assert profiles.code_ttl(fapi, 600) == 60 and profiles.code_ttl(fapi, 30) == 30
    assert profiles.code_ttl(default, 600) == 600
    for rule in (
        profiles.requires_par,
        profiles.requires_dpop,
        profiles.requires_pkce,
        profiles.requires_private_key_jwt,
        profiles.exact_assertion_audience,
    ):
        assert rule(fapi) and not rule(default), rule.__name__
    accepted = ("RS256", "PS256", "ES256", "EdDSA")
    assert profiles.signing_algs(fapi, accepted) == ["PS256", "ES256", "EdDSA"]
    assert profiles.signing_algs(default, accepted) == list(accepted)


def test_profile_names() -> None:
    assert profiles.stored("default") is None and profiles.stored(None) is None
    assert profiles.stored("fapi2") == "fapi2"
    with pytest.raises(profiles.ProfileRefused, match="unknown profile"):
        profiles.stored("FAPI2")
    assert profiles.id_token_algs(("RS256", "ES256")) == ["ES256"]
    assert profiles.id_token_algs(("RS256", "ES256", "PS256", "EdDSA")) == [
        "ES256",
        "PS256",
        "EdDSA",
    ]
