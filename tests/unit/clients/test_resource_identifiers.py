"""RFC 8707 §2: what may name a resource server, as a plain function."""

from __future__ import annotations

import pytest

from onepass.clients.resources import identifier_problem


@pytest.mark.parametrize(
    "uri",
    ["https://api.example.com/", "https://api.example.com/v1?x=1", "urn:example:orders"],
)
def test_absolute_uris_without_fragment_name_a_resource(uri: str) -> None:
    assert identifier_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("", "1 to"),
        ("/api", "absolute"),
        ("api.example.com", "absolute"),
        ("https://api.example.com/#part", "fragment"),
        ("https://api.example.com/#", "fragment"),
        ("https://api.example.com/ x", "spaces"),
        ("https://api.example.com/\x00", "control"),
        ("https://" + "a" * 2048, "1 to"),
    ],
)
def test_other_strings_are_refused_with_the_reason(uri: str, why: str) -> None:
    problem = identifier_problem(uri)
    assert problem is not None and why in problem
