"""A real Node RP on openid-client 6 gets tokens from a real server, with its default
client authentication (client_secret_post) although the client was registered for
client_secret_basic, and with Basic. Installs the locked packages with ``npm ci``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli_json
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e

NODE_RP = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def node_rp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed (CI has them)")
    where = tmp_path_factory.mktemp("node-rp")
    for name in ("package.json", "package-lock.json", "rp.mjs"):
        shutil.copy(NODE_RP / name, where / name)
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=where,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return where


def test_openid_client_6_gets_tokens_with_post_and_basic_from_a_basic_client(
    node_rp: Path, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/n.db")
    with Server(env, log_path=tmp_path / "server.log") as server:
        created = cli_json(
            server.env,
            "clients",
            "create",
            "--name",
            "node service",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
        )
        assert created["token_endpoint_auth_method"] == "client_secret_basic"
        run = subprocess.run(
            ["node", "rp.mjs", server.url, created["client_id"], created["client_secret"]],
            cwd=node_rp,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        results = json.loads(run.stdout)
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        for name in ("default", "client_secret_basic", "client_secret_post"):
            assert "access_token" in results[name], (name, results[name])
            claims = verify_access_token(
                results[name]["access_token"], jwks, issuer=server.url, audience=server.url
            ).claims
            assert claims["client_id"] == created["client_id"] and claims["scope"] == "api:read"
        shown = cli_json(server.env, "clients", "show", created["client_id"])
        assert shown["token_endpoint_auth_method"] == "client_secret_basic"
