"""RFC 7591 §2 metadata → the registry's settings (``clients.registration``): the one
table, the RFC's defaults for what is omitted, types checked before the registry's
rules, software statements refused."""

from __future__ import annotations

import dataclasses

import pytest

from onepass.clients import registration
from onepass.clients.registration import (
    METADATA,
    InvalidClientMetadata,
    InvalidSoftwareStatement,
    RedirectUriRefused,
    SoftwareStatementRefused,
    client_options,
)
from onepass.clients.registry import ClientSettings, create_client


def test_every_member_names_a_client_setting_and_a_create_keyword() -> None:
    import inspect

    fields = {f.name for f in dataclasses.fields(ClientSettings)}
    keywords = set(inspect.signature(create_client).parameters)
    for name, member in METADATA.items():
        assert member.setting in fields, name
        assert member.setting in keywords, name


def test_omitted_members_take_rfc7591_defaults() -> None:
    options = client_options({})
    assert options["grant_types"] == ["authorization_code"]
    assert options["token_endpoint_auth_method"] == "client_secret_basic"
    assert options["redirect_uris"] == []
    assert options["scope"] == "openid profile email"
    assert options["public"] is False
    assert client_options({"grant_types": ["client_credentials"]})["scope"] == ""
    with_refresh = client_options({"grant_types": ["authorization_code", "refresh_token"]})
    assert with_refresh["scope"] == "openid profile email offline_access"


def test_null_is_omitted_and_unknown_members_are_ignored() -> None:
    options = client_options({"client_name": None, "contacts": ["a@b"], "logo_uri": "x"})
    assert options["name"] == "Unnamed client"
    assert "contacts" not in options and "logo_uri" not in options


def test_none_makes_a_public_client() -> None:
    assert client_options({"token_endpoint_auth_method": "none"})["public"] is True


@pytest.mark.parametrize(
    ("metadata", "refusal"),
    [
        ({"redirect_uris": "https://a/cb"}, RedirectUriRefused),
        ({"redirect_uris": [1]}, RedirectUriRefused),
        ({"grant_types": "x"}, InvalidClientMetadata),
        ({"jwks": "x"}, InvalidClientMetadata),
        ({"dpop_bound_access_tokens": 1}, InvalidClientMetadata),
        ({"response_types": ["id_token"]}, InvalidClientMetadata),
        ({"software_statement": "a.b.c"}, SoftwareStatementRefused),
        ({"software_statement": {}}, InvalidSoftwareStatement),
    ],
)
def test_wrong_types_are_refused_with_the_rfc7591_code(
    metadata: dict[str, object], refusal: type[registration.RegistrationError]
) -> None:
    with pytest.raises(refusal) as raised:
        client_options(metadata)
    assert raised.value.error in (
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "unapproved_software_statement",
        "invalid_software_statement",
    )
