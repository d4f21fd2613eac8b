from pathlib import Path

import pytest

from onepass.settings import ConfigError, Settings, load_settings


def test_production_without_secret_key_names_the_variable() -> None:
    settings = Settings(env="production", issuer="https://id.example.com", secret_key=None)
    with pytest.raises(ConfigError, match="ONEPASS_SECRET_KEY"):
        settings.with_secret_key()


def test_production_requires_https_issuer() -> None:
    with pytest.raises(ConfigError, match="ONEPASS_ISSUER"):
        Settings(env="production", issuer="http://id.example.com", secret_key="k" * 40).check()


def test_short_secret_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least"):
        Settings(secret_key="short").check()


def test_development_key_is_generated_once_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/data/onepass.db")
    first = settings.with_secret_key()
    key_file = tmp_path / "data" / "onepass.db.secret-key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    second = Settings(database_url=f"sqlite:///{tmp_path}/data/onepass.db").with_secret_key()
    assert first.secret_key == second.secret_key
    assert len(first.secret_key or "") >= 32


def test_invalid_values_give_a_message_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPASS_ACCESS_TOKEN_ALG", "HS256")
    with pytest.raises(ConfigError, match="ONEPASS_ACCESS_TOKEN_ALG"):
        load_settings()


def test_playbook_flag_is_read_under_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENFORCE_CANONICAL_RESOLUTION", "1")
    assert load_settings().enforce_canonical_resolution is True
    monkeypatch.delenv("ENFORCE_CANONICAL_RESOLUTION")
    monkeypatch.setenv("ONEPASS_ENFORCE_CANONICAL_RESOLUTION", "true")
    assert load_settings().enforce_canonical_resolution is True


def test_issuer_trailing_slash_is_dropped_and_query_refused() -> None:
    assert Settings(issuer="https://id.example.com/").issuer == "https://id.example.com"
    with pytest.raises(ValueError):
        Settings(issuer="https://id.example.com/?x=1")
