"""``onepass clients`` day-2 commands, run as an operator runs them: update, rotate the
secret with a grace, disable and enable, delete; private_key_jwt keys and the fapi2
profile; bad input on stderr; and a change reaching two server processes on one
PostgreSQL within the client cache TTL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.e2e.server import Server, base_env, cli, cli_json

pytestmark = pytest.mark.e2e

CALLBACK = "https://rp.example/callback"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = base_env(f"sqlite:///{tmp_path}/c.db", ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS="1")
    cli(env, "db", "upgrade")
    return env


def test_update_prints_what_show_prints_and_keeps_client_id(env: dict[str, str]) -> None:
    created = cli_json(env, "clients", "create", "--name", "web", "--redirect-uri", CALLBACK)
    # Friction 1: a login client can stay signed in without asking.
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    client_id = created["client_id"]
    updated = cli_json(
        env,
        "clients",
        "update",
        client_id,
        "--name",
        "web app",
        "--add-redirect-uri",
        "https://rp.example/two",
        "--add-post-logout-redirect-uri",
        "https://rp.example/bye",
        "--scope",
        "openid",
        "--scope",
        "email",
        "--token-endpoint-auth-method",
        "client_secret_post",
        "--first-party",
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--event",
        "client.updated",
    )
    key = updated.pop("webhook_signing_key")
    assert key["kid"] and key["secret"]
    assert updated == cli_json(env, "clients", "show", client_id)
    assert updated["client_id"] == client_id and updated["client_name"] == "web app"
    assert updated["redirect_uris"] == [CALLBACK, "https://rp.example/two"]
    assert updated["post_logout_redirect_uris"] == ["https://rp.example/bye"]
    assert updated["scope"] == "openid email" and updated["first_party"] is True
    assert updated["token_endpoint_auth_method"] == "client_secret_post"
    assert updated["webhook_events"] == ["client.updated"] and updated["disabled"] is False

    removed = cli_json(
        env,
        "clients",
        "update",
        client_id,
        "--remove-redirect-uri",
        "https://rp.example/two",
        "--webhook-url",
        "",
        "--no-first-party",
    )
    assert removed["redirect_uris"] == [CALLBACK] and removed["webhook_url"] is None
    assert removed["webhook_events"] == [] and removed["first_party"] is False

    audit = cli_json(env, "admin", "audit")
    actions = [row["action"] for row in audit]
    assert actions.count("clients.update") == 2 and "clients.create" in actions


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--add-redirect-uri", "https://rp.example/cb#x"], "fragment"),
        (["--add-redirect-uri", "http://[::1"], "not a valid URL"),
        (["--remove-redirect-uri", "https://nowhere.example/"], "no redirect URI"),
        (["--grant-type", "password"], "unsupported grant type"),
        (["--token-endpoint-auth-method", "none"], "public"),
        (["--webhook-url", "ftp://rp.example/hook"], "webhook URL"),
        (["--event", "no.such.event"], "unknown webhook event type"),
        (["--policy-uri", "javascript:alert(1)"], "policy URI"),
        (["--tos-uri", "rp.example/terms"], "terms URI"),
        ([], "nothing to change"),
    ],
)
def test_update_with_bad_input_says_why_on_stderr(
    env: dict[str, str], args: list[str], says: str
) -> None:
    created = cli_json(env, "clients", "create", "--name", "web", "--redirect-uri", CALLBACK)
    result = cli(env, "clients", "update", created["client_id"], *args, check=False)
    assert result.returncode != 0 and result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr
    assert cli_json(env, "clients", "show", created["client_id"]) == {
        k: v for k, v in created.items() if k not in ("client_secret", "client_secret_expires_at")
    }


def test_rotate_disable_enable_delete_and_unknown_client(env: dict[str, str]) -> None:
    created = cli_json(
        env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials"
    )
    client_id = created["client_id"]
    rotated = cli_json(env, "clients", "rotate-secret", client_id, "--grace", "24h")
    assert set(rotated) == {"client_id", "client_secret", "previous_secret_expires_at"}
    assert rotated["previous_secret_expires_at"] is not None
    assert rotated["client_secret"] != created["client_secret"]
    immediate = cli_json(env, "clients", "rotate-secret", client_id)
    assert immediate["previous_secret_expires_at"] is None
    bad = cli(env, "clients", "rotate-secret", client_id, "--grace", "soon", check=False)
    assert bad.returncode == 2 and "--grace" in bad.stderr
    huge = cli(env, "clients", "rotate-secret", client_id, "--grace", "9999999d", check=False)
    assert huge.returncode == 2 and "30d" in huge.stderr and "Traceback" not in huge.stderr

    assert cli_json(env, "clients", "disable", client_id)["disabled"] is True
    assert [c["disabled"] for c in cli_json(env, "clients", "list")] == [True]
    assert "disabled" in cli(env, "clients", "disable", client_id).stdout
    assert cli_json(env, "clients", "enable", client_id)["disabled"] is False
    assert cli_json(env, "clients", "delete", client_id)["deleted"] is True

    for command in ("update", "rotate-secret", "disable", "enable", "delete"):
        extra = ["--name", "x"] if command == "update" else []
        missing = cli(env, "clients", command, "nope", *extra, check=False)
        assert missing.returncode == 1 and "no application" in missing.stderr, command


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = asyncio.run(create_pg_database(require_postgres()))
    yield url
    asyncio.run(drop_pg_database(url))


def _token_status(server: Server, client_id: str, secret: str) -> int:
    return httpx.post(
        f"{server.url}/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=5,
    ).status_code


def _within(seconds: float, check: callable) -> float:  # type: ignore[valid-type]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds}s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_disable_reaches_two_server_processes_within_the_client_cache_ttl(
    pg_url: str, tmp_path: Path
) -> None:
    ttl = 1.0
    env = base_env(pg_url, ONEPASS_CLIENT_CACHE_TTL=str(ttl))
    with (
        Server(env, log_path=tmp_path / "a.log") as a,
        Server(env, log_path=tmp_path / "b.log") as b,
    ):
        created = json.loads(
            cli(
                a.env,
                "clients",
                "create",
                "--name",
                "svc",
                "--grant-type",
                "client_credentials",
                "--json",
            ).stdout
        )
        client_id, secret = created["client_id"], created["client_secret"]
        assert [_token_status(s, client_id, secret) for s in (a, b)] == [200, 200]  # cached now

        cli(a.env, "clients", "disable", client_id)
        for server in (a, b):
            took = _within(ttl + 2, lambda s=server: _token_status(s, client_id, secret) == 401)
            assert took <= ttl + 2
        answer = httpx.post(
            f"{b.url}/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        assert answer.json()["error"] == "invalid_client"

        cli(b.env, "clients", "enable", client_id)
        for server in (a, b):
            _within(ttl + 2, lambda s=server: _token_status(s, client_id, secret) == 200)


def test_policy_and_terms_uris_are_created_shown_updated_and_cleared(
    env: dict[str, str],
) -> None:
    created = cli_json(
        env,
        "clients",
        "create",
        "--name",
        "notes",
        "--redirect-uri",
        CALLBACK,
        "--policy-uri",
        "https://rp.example/privacy",
        "--tos-uri",
        "https://rp.example/terms",
    )
    assert created["policy_uri"] == "https://rp.example/privacy"
    assert created["tos_uri"] == "https://rp.example/terms"
    client_id = created["client_id"]
    shown = cli_json(env, "clients", "show", client_id)
    assert shown["policy_uri"] == "https://rp.example/privacy"
    assert shown["tos_uri"] == "https://rp.example/terms"
    table = cli(env, "clients", "show", client_id).stdout
    assert "policy_uri" in table and "https://rp.example/privacy" in table

    updated = cli_json(
        env, "clients", "update", client_id, "--policy-uri", "https://rp.example/privacy-v2"
    )
    assert updated["policy_uri"] == "https://rp.example/privacy-v2"
    assert updated["tos_uri"] == "https://rp.example/terms"
    cleared = cli_json(env, "clients", "update", client_id, "--tos-uri", "")
    assert cleared["tos_uri"] is None and cleared == cli_json(env, "clients", "show", client_id)

    refused = cli(
        env, "clients", "create", "--name", "bad", "--policy-uri", "ftp://rp.example/p", check=False
    )
    assert refused.returncode != 0 and refused.stdout == ""
    assert "policy URI" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ONEPASS_BRAND_ACCENT", "red"),
        ("ONEPASS_BRAND_LOGO_URL", "https://cdn.example.com/logo.png"),
        ("ONEPASS_PRIVACY_URL", "http://example.com/privacy"),
    ],
)
def test_bad_branding_stops_the_command_with_one_line_naming_the_variable(
    env: dict[str, str], variable: str, value: str
) -> None:
    result = cli({**env, variable: value}, "clients", "list", check=False)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in result.stderr


def test_private_key_jwt_clients_register_public_keys_and_bad_keys_say_why(
    env: dict[str, str], tmp_path: Path
) -> None:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", {"kid": "a"})
    public, private, junk = tmp_path / "public.json", tmp_path / "private.json", tmp_path / "j"
    public.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    private.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    junk.write_text("not json")
    base = ["clients", "create", "--name", "svc", "--grant-type", "client_credentials",
            "--token-endpoint-auth-method", "private_key_jwt"]  # fmt: skip
    for extra, says in (
        ([], "needs the client's public keys"),
        (["--jwks-file", str(private)], "private key"),
        (["--jwks-file", str(junk)], "is not JSON"),
        (["--jwks-file", str(tmp_path / "missing.json")], "cannot read"),
        (["--jwks-file", str(public), "--jwks-uri", "https://rp.example/jwks"], "not both"),
    ):
        result = cli(env, *base, *extra, check=False)
        assert result.returncode != 0 and says in result.stderr, (extra, result.stderr)
        assert "Traceback" not in result.stderr
    created = cli_json(env, *base, "--jwks-file", str(public))
    assert "client_secret" not in created and created["jwks_uri"] is None
    moved = cli_json(env, "clients", "update", created["client_id"], "--jwks-uri",
                     "https://rp.example/jwks.json")  # fmt: skip
    assert moved["jwks_uri"] == "https://rp.example/jwks.json" and moved["jwks"] is None
    # The FAPI 2.0 profile: refused with what to give, then set together; leaving it
    # keeps the flags and says so.
    web = ["clients", "create", "--name", "bank", "--profile", "fapi2",
           "--jwks-file", str(public)]  # fmt: skip
    refused = cli(env, *web, "--redirect-uri", "http://rp.example/cb", check=False)
    assert refused.returncode != 0 and "https" in refused.stderr, refused.stderr
    bank = cli_json(env, *web, "--redirect-uri", CALLBACK, "--require-signed-request-object")
    assert (bank["profile"], bank["token_endpoint_auth_method"]) == ("fapi2", "private_key_jwt")
    assert bank["require_pushed_authorization_requests"] and bank["dpop_bound_access_tokens"]
    assert bank["id_token_signed_response_alg"] == "ES256"
    assert bank["require_signed_request_object"] is True
    left = cli(env, "clients", "update", bank["client_id"], "--profile", "default", "--json")
    assert "stay as they are" in left.stderr, left.stderr
    shown = json.loads(left.stdout)
    assert shown["profile"] == "default" and shown["require_pushed_authorization_requests"]
