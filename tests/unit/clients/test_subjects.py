"""The sector rules of pairwise subjects (OpenID Connect Core §8.1, Registration §5)."""

from __future__ import annotations

import json

import pytest

from onepass.clients.registry import ClientRecord
from onepass.clients.subjects import (
    PAIRWISE,
    PUBLIC,
    SubjectSettingsRefused,
    check_sector_document,
    check_subject_settings,
    sector,
    sector_of,
)

ONE_HOST = ["https://rp.example/cb", "https://RP.example:8443/other"]
TWO_HOSTS = ["https://a.example/cb", "https://b.example/cb"]


def record(
    subject_type: str, redirect_uris: list[str], sector_uri: str | None = None
) -> ClientRecord:
    return ClientRecord(
        id=1,
        client_id="c",
        client_secret_hash=None,
        grant_types=frozenset({"authorization_code"}),
        scopes=frozenset({"openid"}),
        token_endpoint_auth_method="client_secret_basic",
        redirect_uris=tuple(redirect_uris),
        subject_type=subject_type,
        sector_identifier_uri=sector_uri,
    )


def test_the_sector_is_the_host_of_the_redirect_uris_or_of_the_sector_identifier_uri() -> None:
    assert sector_of(record(PUBLIC, ONE_HOST)) is None
    assert sector_of(record(PAIRWISE, ONE_HOST)) == "rp.example"  # host only, lower case
    assert sector_of(record(PAIRWISE, TWO_HOSTS, "https://Sector.example/s.json")) == (
        "sector.example"
    )


def test_sector_of_settings() -> None:
    assert sector(PUBLIC, ONE_HOST, None) is None
    assert sector(PAIRWISE, ["https://x.example/cb"], None) == "x.example"
    assert sector(PAIRWISE, TWO_HOSTS, "https://s.example/s.json") == "s.example"


def test_public_is_the_default_and_needs_nothing() -> None:
    check_subject_settings(PUBLIC, TWO_HOSTS, None, production=True)
    check_subject_settings(PUBLIC, [], None, production=True)


def test_pairwise_needs_one_host_or_a_sector_identifier_uri() -> None:
    check_subject_settings(PAIRWISE, ONE_HOST, None, production=True)
    check_subject_settings(PAIRWISE, TWO_HOSTS, "https://sector.example/s.json", production=True)
    with pytest.raises(SubjectSettingsRefused, match=r"several hosts \(a.example, b.example\)"):
        check_subject_settings(PAIRWISE, TWO_HOSTS, None, production=True)
    with pytest.raises(SubjectSettingsRefused, match="custom scheme"):
        check_subject_settings(PAIRWISE, ["com.example.app:/cb"], None, production=True)
    with pytest.raises(SubjectSettingsRefused, match="needs redirect URIs"):
        check_subject_settings(PAIRWISE, [], None, production=True)
    with pytest.raises(SubjectSettingsRefused, match="subject_type must be one of"):
        check_subject_settings("opaque", ONE_HOST, None, production=True)


@pytest.mark.parametrize(
    "uri",
    [
        "http://sector.example/s.json",
        "ftp://sector.example/s.json",
        "/s.json",
        "https://user:pw@sector.example/s.json",
        "https://sector.example/s.json#frag",
        "https://sector.example/s json",
        "https://[::1/s.json",
    ],
)
def test_a_sector_identifier_uri_must_be_plain_https(uri: str) -> None:
    with pytest.raises(SubjectSettingsRefused):
        check_subject_settings(PAIRWISE, TWO_HOSTS, uri, production=False)


def test_http_on_this_machine_only_outside_production() -> None:
    check_subject_settings(PAIRWISE, TWO_HOSTS, "http://127.0.0.1:8080/s.json", production=False)
    with pytest.raises(SubjectSettingsRefused, match="https"):
        check_subject_settings(PAIRWISE, TWO_HOSTS, "http://127.0.0.1:8080/s.json", production=True)


def test_a_sector_document_lists_every_redirect_uri() -> None:
    check_sector_document(json.dumps([*TWO_HOSTS, "https://c.example/x"]).encode(), TWO_HOSTS)
    problems = {
        b"not json": "not JSON",
        b'{"redirect_uris": []}': "JSON array",
        b'["https://a.example/cb", 7]': "JSON array",
        json.dumps(TWO_HOSTS[:1]).encode(): "does not list the redirect URI 'https://b",
        json.dumps(["https://a.example/CB", TWO_HOSTS[1]]).encode(): "does not list",
        json.dumps(["https://x.example/"] * 201).encode(): "at most 200",
        b"[" + b" " * (64 * 1024) + b"]": "larger than 64 KB",
    }
    for body, message in problems.items():
        with pytest.raises(SubjectSettingsRefused, match=message):
            check_sector_document(body, TWO_HOSTS)
