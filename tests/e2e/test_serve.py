"""The real server and CLI, driven as an operator and an RP would."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.e2e.server import ONEPASS, Server, base_env, cli, cli_json
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "postgresql"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/onepass.db"
        return
    import asyncio

    url = asyncio.run(create_pg_database(require_postgres()))
    yield url
    asyncio.run(drop_pg_database(url))


def jwt_header(token: str) -> dict:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def test_operator_creates_client_and_rp_gets_verifiable_token(
    server_db: str, tmp_path: Path
) -> None:
    """The README's promise: serve, create a client, curl /token, verify with the JWKS."""
    env = base_env(server_db, ONEPASS_KEY_REFRESH_INTERVAL="0.5")
    with Server(env, log_path=tmp_path / "server.log") as server:
        created = cli_json(
            server.env, "clients", "create", "--name", "demo", "--grant-type", "client_credentials"
        )
        assert {
            "id",
            "client_id",
            "client_secret",
            "grant_types",
            "token_endpoint_auth_method",
        } <= set(created)
        assert created["grant_types"] == ["client_credentials"]

        discovery = httpx.get(f"{server.url}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == server.url
        assert discovery["token_endpoint"] == f"{server.url}/token"
        jwks = httpx.get(discovery["jwks_uri"]).json()

        curl = subprocess.run(
            [
                "curl",
                "-s",
                "-u",
                f"{created['client_id']}:{created['client_secret']}",
                "-d",
                "grant_type=client_credentials",
                f"{server.url}/token",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        token = json.loads(curl.stdout)["access_token"]
        verify_access_token(token, jwks, issuer=server.url, audience=server.url)

        with OAuth2Client(created["client_id"], created["client_secret"]) as oauth:
            fetched = oauth.fetch_token(
                discovery["token_endpoint"], grant_type="client_credentials"
            )
        claims = verify_access_token(
            fetched["access_token"], jwks, issuer=server.url, audience=server.url
        ).claims
        assert claims["client_id"] == created["client_id"]

        listed = cli_json(server.env, "clients", "list")
        assert [c["client_id"] for c in listed] == [created["client_id"]]
        assert all("client_secret" not in c and "client_secret_hash" not in c for c in listed)
        shown = cli_json(server.env, "clients", "show", str(created["id"]))
        assert shown["client_id"] == created["client_id"]
        assert created["client_secret"] not in server.log()


def test_every_worker_signs_with_the_new_key_within_seconds_of_a_rotation(
    server_db: str, tmp_path: Path
) -> None:
    env = base_env(server_db, ONEPASS_KEY_REFRESH_INTERVAL="0.5")
    with Server(env, workers=2, log_path=tmp_path / "server.log") as server:
        created = cli_json(
            server.env, "clients", "create", "--name", "demo", "--grant-type", "client_credentials"
        )
        auth = (created["client_id"], created["client_secret"])
        before = jwt_header(
            httpx.post(
                f"{server.url}/token", data={"grant_type": "client_credentials"}, auth=auth
            ).json()["access_token"]
        )["kid"]

        refused = cli(server.env, "keys", "rotate", check=False)
        assert refused.returncode == 1 and "--force" in refused.stderr, "next key is seconds old"
        rotations = cli_json(server.env, "keys", "rotate", "--force")
        new_kid = next(r["activated_kid"] for r in rotations if r["alg"] == "ES256")
        assert next(r["retired_kid"] for r in rotations if r["alg"] == "ES256") == before

        deadline = time.monotonic() + 15
        streak = 0
        while streak < 30:
            # A new connection each time, so the requests spread over both workers.
            token = httpx.post(
                f"{server.url}/token", data={"grant_type": "client_credentials"}, auth=auth
            ).json()["access_token"]
            streak = streak + 1 if jwt_header(token)["kid"] == new_kid else 0
            assert time.monotonic() < deadline, "a worker kept signing with the retired key"
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        assert {before, new_kid} <= {k["kid"] for k in jwks["keys"]}
        states = {k["kid"]: k["state"] for k in cli_json(server.env, "keys", "list")}
        assert states[before] == "retired" and states[new_kid] == "active"


def test_production_start_without_secret_key_names_the_variable(tmp_path: Path) -> None:
    env = base_env(
        f"sqlite:///{tmp_path}/x.db",
        ONEPASS_ENV="production",
        ONEPASS_ISSUER="https://id.example.com",
    )
    del env["ONEPASS_SECRET_KEY"]
    result = subprocess.run(
        [*ONEPASS, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "ONEPASS_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_development_start_generates_secret_key_beside_database(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/dev.db")
    del env["ONEPASS_SECRET_KEY"]
    with Server(env, log_path=tmp_path / "server.log") as server:
        assert (tmp_path / "dev.db.secret-key").exists()
        assert "secret_key.generated_for_development" in server.log()
        created = cli_json(
            server.env, "clients", "create", "--name", "d", "--grant-type", "client_credentials"
        )
        response = httpx.post(
            f"{server.url}/token",
            data={"grant_type": "client_credentials"},
            auth=(created["client_id"], created["client_secret"]),
        )
        assert response.status_code == 200


def test_start_with_a_different_secret_key_refuses_clearly(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/k.db")
    cli(env, "db", "upgrade")
    with Server(env, log_path=tmp_path / "first.log"):
        pass
    env["ONEPASS_SECRET_KEY"] = "a-different-secret-key-" + "z" * 32
    result = subprocess.run(
        [*ONEPASS, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "ONEPASS_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_errors_go_to_stderr_with_nonzero_exit(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/c.db")
    cli(env, "db", "upgrade")
    missing = cli(env, "clients", "show", "nope", check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr and missing.stdout == ""
    bad = cli(env, "clients", "create", "--name", "x", "--grant-type", "password", check=False)
    assert bad.returncode == 1 and "unsupported grant type" in bad.stderr
    public_cc = cli(
        env,
        "clients",
        "create",
        "--name",
        "x",
        "--public",
        "--grant-type",
        "client_credentials",
        check=False,
    )
    assert public_cc.returncode == 1 and "public client" in public_cc.stderr
    bad_db = cli(base_env("mysql://x@127.0.0.1/db"), "clients", "list", check=False)
    assert bad_db.returncode != 0 and "ONEPASS_DATABASE_URL" in bad_db.stderr
    for result in (missing, bad, public_cc, bad_db):
        assert "Traceback" not in result.stderr


def test_users_cli_creates_lists_and_shows(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/u.db")
    cli(env, "db", "upgrade")
    created = json.loads(
        cli(
            env,
            "users",
            "create",
            "--email",
            "Ada@Example.com",
            "--password-stdin",
            "--json",
            stdin="correct horse battery\n",
        ).stdout
    )
    assert set(created) == {"id", "sub", "email"} and created["email"] == "Ada@Example.com"
    assert not created["sub"].isdigit()
    duplicate = cli(
        env,
        "users",
        "create",
        "--email",
        "ada@example.COM",
        "--password",
        "another password",
        check=False,
    )
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    short = cli(
        env, "users", "create", "--email", "b@example.com", "--password", "short", check=False
    )
    assert short.returncode == 1 and "at least" in short.stderr
    both = cli(env, "users", "create", "--email", "c@example.com", check=False)
    assert both.returncode == 2
    shown = cli_json(env, "users", "show", "ada@example.com")
    assert shown["id"] == created["id"] and "password_hash" not in shown
    assert [u["sub"] for u in cli_json(env, "users", "list")] == [created["sub"]]
    for result in (duplicate, short, both):
        assert "Traceback" not in result.stderr
