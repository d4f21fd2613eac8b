"""Dynamic Client Registration (RFC 7591/7592) end to end: a real Node RP on
openid-client 6 registers itself with ``dynamicClientRegistration`` and an initial
access token from ``onepass clients initial-token create``, then gets a token with the
registered client (client_credentials); Authlib's client gets one with the same secret;
the operator sees the client as registered dynamically; the client reads and deletes
its registration with its registration access token (RFC 7592)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e


def test_openid_client_6_registers_and_gets_tokens(node_rp: Path, tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/r.db")
    cli(env, "db", "upgrade")
    with Server(env, log_path=tmp_path / "server.log") as server:
        issued = cli_json(server.env, "clients", "initial-token", "create", "--max-uses", "1")
        run = subprocess.run(
            ["node", "register.mjs", server.url, issued["token"]],
            cwd=node_rp,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert "error" not in result, result
        client_id = result["client_id"]
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        claims = verify_access_token(
            result["access_token"], jwks, issuer=server.url, audience=server.url
        ).claims
        assert claims["client_id"] == client_id and claims["scope"] == "api:read"

        # An independent client (Authlib) with the registered secret, by Basic.
        with OAuth2Client(client_id, result["client_secret"]) as rp:
            token = rp.fetch_token(f"{server.url}/token", grant_type="client_credentials")
        assert (
            verify_access_token(
                token["access_token"], jwks, issuer=server.url, audience=server.url
            ).claims["client_id"]
            == client_id
        )

        shown = cli_json(server.env, "clients", "show", client_id)
        assert shown["registered_dynamically"] is True
        assert shown["registration_source"] == "initial_access_token"
        assert shown["initial_access_token_id"] == issued["id"]
        [listed] = cli_json(server.env, "clients", "initial-token", "list")
        assert (listed["uses"], listed["state"]) == (1, "used_up")

        # RFC 7592 with the registration access token openid-client kept.
        headers = {"authorization": f"Bearer {result['registration_access_token']}"}
        assert result["registration_client_uri"] == f"{server.url}/register/{client_id}"
        read = httpx.get(result["registration_client_uri"], headers=headers)
        assert read.status_code == 200 and read.json()["client_name"] == "node registered service"
        assert httpx.delete(result["registration_client_uri"], headers=headers).status_code == 204
        gone = cli(server.env, "clients", "show", client_id, check=False)
        assert gone.returncode != 0 and "no application" in gone.stderr
