"""The response mode rules as plain functions (``oauth.response_modes``)."""

from __future__ import annotations

import pytest

from onepass.clients import profiles
from onepass.clients.registry import ClientSettings
from onepass.oauth import response_modes as rm


@pytest.mark.parametrize(
    ("mode", "delivery", "signed"),
    [
        ("query", "query", False),
        ("fragment", "fragment", False),
        ("form_post", "form_post", False),
        ("query.jwt", "query", True),
        ("fragment.jwt", "fragment", True),
        ("form_post.jwt", "form_post", True),
        ("jwt", "query", True),  # JARM §2.3.4: the code flow's default is query.jwt
    ],
)
def test_each_mode_has_its_delivery_and_signing(mode: str, delivery: str, signed: bool) -> None:
    assert rm.checked(mode) == mode
    assert rm.delivery(mode) == delivery
    assert rm.is_jwt(mode) is signed


@pytest.mark.parametrize("value", ["", "Query", "jwt.query", "form_post.JWT", "web_message"])
def test_unknown_modes_are_refused_and_answered_in_query(value: str) -> None:
    with pytest.raises(rm.UnknownResponseMode):
        rm.checked(value)
    assert rm.lenient(value) == "query"
    assert rm.lenient(None) == "query"


def test_url_with_keeps_the_registered_query_and_uses_the_fragment_when_asked() -> None:
    params = {"code": "a b", "state": "s&t"}
    assert rm.url_with("https://rp.example/cb?x=1", params, "query") == (
        "https://rp.example/cb?x=1&code=a+b&state=s%26t"
    )
    assert rm.url_with("https://rp.example/cb?x=1", params, "fragment") == (
        "https://rp.example/cb?x=1#code=a+b&state=s%26t"
    )


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("https://rp.example/callback?x=1", "https://rp.example"),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:8080"),
        ("https://RP.Example/cb", "https://rp.example"),
        ("https://user:pw@rp.example/cb", "https://rp.example"),
        ("http://[::1]:9/cb", "http://[::1]:9"),
        ("com.example.app:/callback", None),
        ("https://rp.example;script-src/cb", None),
        ("https://rp.exa mple/cb", None),
        ("https://[::1/cb", None),
    ],
)
def test_form_action_source_is_the_origin_and_nothing_a_policy_would_misread(
    uri: str, source: str | None
) -> None:
    assert rm.form_action_source(uri) == source


def test_response_claims_hold_the_parameters_with_iss_aud_and_a_ten_minute_exp() -> None:
    claims = rm.response_claims(
        {"code": "c", "state": "s", "iss": "https://other"},
        issuer="https://op.example",
        client_id="rp",
        now=1000,
    )
    assert claims == {
        "code": "c",
        "state": "s",
        "iss": "https://op.example",
        "aud": "rp",
        "exp": 1600,
    }


def _settings(**changes: object) -> ClientSettings:
    values: dict[str, object] = {
        "name": "rp",
        "redirect_uris": ["https://rp.example/cb"],
        "post_logout_redirect_uris": [],
        "policy_uri": None,
        "tos_uri": None,
        "grant_types": ["authorization_code"],
        "scope": "openid",
        "token_endpoint_auth_method": "private_key_jwt",
        "id_token_signed_response_alg": "ES256",
        "first_party": False,
        "webhook_url": None,
        "webhook_events": [],
        "profile": "fapi2",
        "jwks": {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                }
            ]
        },
    }
    values.update(changes)
    return ClientSettings(**values)  # type: ignore[arg-type]


def test_fapi2_signs_responses_with_its_id_token_alg_by_default_and_refuses_rs256() -> None:
    """FAPI 2.0 §5.4 (every JWS: PS256, ES256 or EdDSA); Message Signing allows JARM."""
    assert profiles.authorization_response_alg(_settings()) == "ES256"
    assert profiles.authorization_response_alg(_settings(profile=None)) == "RS256"
    assert profiles.authorization_response_alg(_settings(authorization_signed_response_alg="PS256")) == "PS256"  # fmt: skip
    problems = profiles.registration_problems(
        _settings(authorization_signed_response_alg="RS256"),
        production=False,
        id_token_algs_available=("RS256", "ES256"),
    )
    assert problems == [
        "the fapi2 profile signs authorization responses (JARM) with ES256, not RS256: "
        "give --authorization-signed-response-alg ES256"
    ]
    assert not profiles.registration_problems(
        _settings(), production=False, id_token_algs_available=("RS256", "ES256")
    )
