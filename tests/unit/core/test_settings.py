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


PNG_1PX = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ONEPASS_BRAND_NAME", "x" * 61, "1 to 60 characters"),
        ("ONEPASS_BRAND_NAME", "   ", "1 to 60 characters"),
        ("ONEPASS_BRAND_NAME", "Acme\x1b[31m", "control characters"),
        ("ONEPASS_BRAND_LOGO_URL", "https://cdn.example.com/logo.png", "path on this server"),
        ("ONEPASS_BRAND_LOGO_URL", "//cdn.example.com/logo.png", "path on this server"),
        ("ONEPASS_BRAND_LOGO_URL", "/\\cdn.example.com/logo.png", "path on this server"),
        ("ONEPASS_BRAND_LOGO_URL", "logo.png", "path on this server"),
        ("ONEPASS_BRAND_LOGO_URL", '/logo.png"onerror=x', "quotes"),
        ("ONEPASS_BRAND_LOGO_URL", "data:text/html;base64,PGI+aGk8L2I+", "data:image/png"),
        ("ONEPASS_BRAND_LOGO_URL", "data:image/gif;base64,R0lGODlhAQABAAAAACw=", "data:image/png"),
        ("ONEPASS_BRAND_LOGO_URL", "data:image/svg+xml,<svg/>", "data:image/png"),
        ("ONEPASS_BRAND_LOGO_URL", "data:image/png;base64,abc", "does not decode"),
        ("ONEPASS_BRAND_LOGO_URL", "data:image/png;base64," + "A" * 65536, "at most 64 KB"),
        ("ONEPASS_BRAND_ACCENT", "red", "#rrggbb"),
        ("ONEPASS_BRAND_ACCENT", "#abc", "#rrggbb"),
        ("ONEPASS_BRAND_ACCENT", "#12345g", "#rrggbb"),
        ("ONEPASS_SUPPORT_URL", "http://help.example.com", "must use https"),
        ("ONEPASS_PRIVACY_URL", "javascript:alert(1)", "absolute https URL"),
        ("ONEPASS_TERMS_URL", "/terms", "absolute https URL"),
        ("ONEPASS_TERMS_URL", "https://user:pw@example.com/terms", "user name or password"),
        ("ONEPASS_SUPPORT_URL", "https://example.com:99999/", "absolute https URL"),
    ],
)
def test_bad_branding_is_refused_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    text = str(refused.value)
    assert text.startswith(f"invalid configuration: {variable}: ") and message in text
    assert "\n" not in text and "Traceback" not in text and len(text) < 300


def test_branding_defaults_to_1pass_and_nothing_else() -> None:
    settings = Settings()
    assert settings.brand_name == "1pass" and settings.brand_logo_url is None
    assert settings.brand_accent is None
    assert (settings.support_url, settings.privacy_url, settings.terms_url) == (None, None, None)


def test_good_branding_is_kept_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEPASS_BRAND_NAME", "  Acme ID  ")
    monkeypatch.setenv("ONEPASS_BRAND_LOGO_URL", PNG_1PX)
    monkeypatch.setenv("ONEPASS_BRAND_ACCENT", "#C0FFEE")
    monkeypatch.setenv("ONEPASS_SUPPORT_URL", "https://help.example.com/")
    monkeypatch.setenv("ONEPASS_PRIVACY_URL", "http://localhost:3000/privacy")
    monkeypatch.setenv("ONEPASS_TERMS_URL", "")  # empty: unset
    settings = load_settings()
    assert settings.brand_name == "Acme ID" and settings.brand_logo_url == PNG_1PX
    assert settings.brand_accent == "#c0ffee" and settings.terms_url is None
    assert settings.privacy_url == "http://localhost:3000/privacy"
    monkeypatch.setenv("ONEPASS_BRAND_LOGO_URL", "/static/acme-logo.svg")
    assert load_settings().brand_logo_url == "/static/acme-logo.svg"


def test_signing_algorithms_default_to_rs256_and_es256() -> None:
    settings = Settings()
    assert settings.signing_algorithms == ("RS256", "ES256")
    settings.check()


def test_signing_algorithms_are_read_in_one_order_whatever_the_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONEPASS_SIGNING_ALGS", " eddsa, ES256,RS256 ,PS256,es256")
    settings = load_settings()
    assert settings.signing_algs == "RS256,PS256,ES256,EdDSA"
    assert settings.signing_algorithms == ("RS256", "PS256", "ES256", "EdDSA")


@pytest.mark.parametrize("value", ["RS256,HS256", "RS256,none", "RS256,ES512"])
def test_an_algorithm_1pass_does_not_sign_with_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ONEPASS_SIGNING_ALGS", value)
    with pytest.raises(ConfigError, match=r"ONEPASS_SIGNING_ALGS: .*not an algorithm.*EdDSA"):
        load_settings()


def test_signing_algorithms_without_rs256_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"ONEPASS_SIGNING_ALGS .*must include RS256"):
        Settings(signing_algs="PS256,ES256").check()


def test_the_access_token_algorithm_needs_a_key() -> None:
    with pytest.raises(ConfigError, match=r"ONEPASS_ACCESS_TOKEN_ALG=EdDSA .*ONEPASS_SIGNING_ALGS"):
        Settings(access_token_alg="EdDSA").check()
    Settings(access_token_alg="EdDSA", signing_algs="RS256,ES256,EdDSA").check()
    Settings(access_token_alg="PS256", signing_algs="RS256,PS256").check()
