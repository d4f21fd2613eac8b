"""Rotating ONEPASS_SECRET_KEY with real processes, the steps of docs/deploying.md: the
new key first accepted everywhere as a fallback, secrets re-sealed, processes switched,
the old key dropped. Client secrets keep working throughout (their hashes are kept),
tokens keep verifying against the same JWKS, and the old key alone no longer opens
anything."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.e2e.server import ONEPASS, Server, base_env, cli, cli_json
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e

OLD = TEST_SECRET_KEY
NEW = "the-new-secret-key-" + "n" * 40


def token(server: Server, client: dict[str, str]) -> str:
    response = httpx.post(
        f"{server.url}/token",
        data={"grant_type": "client_credentials", "scope": "api:read"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def verified(server: Server, access_token: str) -> None:
    """The token verifies against the JWKS an RP fetches now (joserfc)."""
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json", timeout=5).json()
    claims = verify_access_token(access_token, jwks, issuer=server.url, audience=server.url)
    assert claims.claims["scope"] == "api:read"


def test_secret_key_rotation_with_running_processes(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/r.db")
    with Server(env, log_path=tmp_path / "0.log") as server:
        client = cli_json(
            server.env,
            "clients",
            "create",
            "--name",
            "svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
            "--webhook-url",
            "https://rp.example.com/hooks",
        )
        jwks_before = httpx.get(f"{server.url}/.well-known/jwks.json", timeout=5).json()
        verified(server, token(server, client))

        # Step 2 without step 1: the running server would not decrypt what is re-sealed.
        refused = cli(
            server.env, "secrets", "rotate", "--new-key-stdin", stdin=NEW + "\n", check=False
        )
        assert refused.returncode != 0
        assert "would not decrypt" in refused.stderr and "serve" in refused.stderr
        assert NEW not in refused.stderr and OLD not in refused.stderr

    # Step 1: every process accepts the new key as a fallback.
    step1 = {**env, "ONEPASS_SECRET_KEY_FALLBACKS": NEW}
    with Server(step1, log_path=tmp_path / "1.log") as server:
        rotated = json.loads(
            cli(
                server.env, "secrets", "rotate", "--new-key-stdin", "--json", stdin=NEW + "\n"
            ).stdout
        )
        assert rotated["resealed"]["signing_keys"] >= 4  # an active and a next key per alg
        assert rotated["resealed"]["webhook_signing_keys"] == 1
        assert rotated["resealed"]["installation_secrets"] == 1
        # The running server still signs (its keys re-read under the fallback) and still
        # takes the client's secret.
        verified(server, token(server, client))

    # Step 3: the new key is primary, the old one a fallback.
    step3 = {**env, "ONEPASS_SECRET_KEY": NEW, "ONEPASS_SECRET_KEY_FALLBACKS": OLD}
    with Server(step3, log_path=tmp_path / "3.log") as server:
        verified(server, token(server, client))
        cli(server.env, "secrets", "rotate")  # what was sealed meanwhile, if anything
        status = json.loads(cli(server.env, "secrets", "status", "--json").stdout)
        assert status["needs_fallbacks"] is False and status["undecryptable"] == 0
        assert status["hashing_key"] == "stored"

    # Step 4: the old key is gone.
    step4 = {**env, "ONEPASS_SECRET_KEY": NEW}
    with Server(step4, log_path=tmp_path / "4.log") as server:
        access = token(server, client)
        verified(server, access)
        jwks_after = httpx.get(f"{server.url}/.well-known/jwks.json", timeout=5).json()
        assert {k["kid"] for k in jwks_after["keys"]} == {k["kid"] for k in jwks_before["keys"]}
        status = cli(server.env, "secrets", "status")
        assert status.returncode == 0 and "nothing needs a fallback key" in status.stdout

    # The old key alone opens nothing now: a server given only it refuses to start.
    result = subprocess.run(
        [*ONEPASS, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "ONEPASS_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
