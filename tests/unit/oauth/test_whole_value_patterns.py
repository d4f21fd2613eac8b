"""Whole-value checks refuse a trailing newline (``$`` matches before a final "\\n")."""

from __future__ import annotations

import pytest

from onepass.clients.auth import is_client_id
from onepass.clients.scopes import parse_scope
from onepass.durations import parse_duration
from onepass.oauth import pkce
from onepass.oauth_errors import InvalidScopeError
from onepass.webhooks.outbox import is_idempotency_key

VERIFIER = "v" * 43


def test_pkce_challenge_with_trailing_newline_is_refused() -> None:
    challenge = pkce.s256(VERIFIER)
    assert pkce.is_valid_challenge(challenge)
    assert not pkce.is_valid_challenge(challenge + "\n")


def test_pkce_verifier_with_trailing_newline_is_refused() -> None:
    assert pkce.verify(VERIFIER, pkce.s256(VERIFIER))
    # The attacker controls both sides here: only the verifier's syntax can refuse it.
    assert not pkce.verify(VERIFIER + "\n", pkce.s256(VERIFIER + "\n"))


def test_client_id_with_trailing_newline_is_refused() -> None:
    assert is_client_id("abc-123")
    assert not is_client_id("abc-123\n")


def test_scope_token_with_trailing_newline_is_refused() -> None:
    assert parse_scope("openid email") == ["openid", "email"]
    with pytest.raises(InvalidScopeError):
        parse_scope("openid\n")


def test_idempotency_key_with_trailing_newline_is_refused() -> None:
    assert is_idempotency_key("user.merged:42")
    assert not is_idempotency_key("user.merged:42\n")


def test_duration_with_surrounding_whitespace_is_accepted_by_design() -> None:
    assert parse_duration(" 5m\n") == 300.0
    with pytest.raises(ValueError):
        parse_duration("5m\nx")
