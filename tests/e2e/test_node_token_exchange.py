"""A real service on openid-client 6 asks a real server for a client_credentials token
for a resource server (RFC 8707 ``resource``) and exchanges a user's access token for a
downstream one (RFC 8693, ``genericGrantRequest``), with its own token as the actor;
an exchange outside its policy is refused with ``invalid_target``. Everything is set up
with the CLI (``onepass resources create``, ``clients create --allow-resource``,
``clients update --token-exchange-resource``); joserfc verifies the tokens."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.factories import REDIRECT_URI, Client
from tests.flow import VERIFIER, authorize_url, log_in_and_consent
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e

ORDERS = "https://orders.example/api"
LEDGER = "https://ledger.example/"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def _user_token(server: Server, rp: dict[str, str]) -> str:
    client = Client(0, rp["client_id"], rp["client_secret"])
    url = authorize_url(client, scope="openid orders:read")

    async def browse() -> str:
        async with httpx.AsyncClient(base_url=server.url) as browser:
            callback = await log_in_and_consent(
                browser, url, "ada@example.com", "correct horse battery"
            )
            code = parse_qs(urlsplit(callback).query)["code"][0]
            response = await browser.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": VERIFIER,
                },
                auth=(client.client_id, client.client_secret or ""),
            )
            assert response.status_code == 200, response.text
            return str(response.json()["access_token"])

    return asyncio.run(browse())


def test_openid_client_6_exchanges_a_users_token_and_asks_for_a_resource(
    node_rp: Path, tmp_path: Path
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/x.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin="correct horse battery")  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log") as server:
        resource = cli_json(server.env, "resources", "create", "--identifier", ORDERS,
                            "--scope", "orders:read", "--scope", "orders:write",
                            "--name", "Orders", "--access-token-ttl", "15m",
                            "--signing-alg", "RS256")  # fmt: skip
        assert resource["access_token_ttl"] == 900 and resource["signing_alg"] == "RS256"
        cli_json(
            server.env, "resources", "create", "--identifier", LEDGER, "--scope", "ledger:read"
        )
        listed = cli_json(server.env, "resources", "list")
        assert [r["identifier"] for r in listed] == [ORDERS, LEDGER]
        rp = cli_json(server.env, "clients", "create", "--name", "web app",
                      "--redirect-uri", REDIRECT_URI,
                      "--scope", "openid", "--scope", "orders:read")  # fmt: skip
        service = cli_json(server.env, "clients", "create", "--name", "orders gateway",
                           "--grant-type", "client_credentials",
                           "--scope", "service:call", "--scope", "orders:read",
                           "--allow-resource", ORDERS)  # fmt: skip
        assert service["allowed_resources"] == [ORDERS]
        updated = cli_json(server.env, "clients", "update", service["client_id"],
                           "--token-exchange-resource", ORDERS)  # fmt: skip
        assert updated["token_exchange_resources"] == [ORDERS]
        assert EXCHANGE in updated["grant_types"]

        subject = _user_token(server, rp)
        run = subprocess.run(
            ["node", "exchange.mjs", server.url, service["client_id"], service["client_secret"],
             subject, ORDERS, LEDGER],
            cwd=node_rp, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        results = json.loads(run.stdout)
        assert "error" not in results, results
        assert EXCHANGE in results["grant_types_supported"]
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()

        own = verify_access_token(
            results["client_credentials"]["access_token"], jwks, issuer=server.url, audience=ORDERS
        )
        assert own.claims["sub"] == service["client_id"] and own.claims["scope"] == "orders:read"
        assert own.header["alg"] == "RS256"

        exchanged = results["exchange"]
        assert exchanged["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
        assert exchanged["token_type"].lower() == "bearer" and exchanged["scope"] == "orders:read"
        token = verify_access_token(
            exchanged["access_token"], jwks, issuer=server.url, audience=ORDERS
        )
        user = cli_json(server.env, "users", "show", "ada@example.com")
        assert token.claims["sub"] == user["sub"]
        assert token.claims["client_id"] == service["client_id"]
        assert token.claims["act"] == {"sub": service["client_id"]}
        assert token.claims["exp"] - token.claims["iat"] <= 900

        assert results["refused"]["error"] == "invalid_target", results["refused"]
        assert results["refused"]["status"] == 400

        # The rest of the commands, and a refusal on stderr with a non-zero exit.
        shown = cli_json(server.env, "resources", "show", ORDERS)
        assert shown["scopes"] == ["orders:read", "orders:write"] and shown["name"] == "Orders"
        changed = cli_json(server.env, "resources", "update", ORDERS, "--access-token-ttl", "5m")
        assert changed["access_token_ttl"] == 300
        bad = cli(server.env, "resources", "create", "--identifier", "https://x.example/#f",
                  "--scope", "x", check=False)  # fmt: skip
        assert bad.returncode != 0 and "fragment" in bad.stderr
        oidc = cli(server.env, "resources", "create", "--identifier", "https://y.example/",
                   "--scope", "openid", check=False)  # fmt: skip
        assert oidc.returncode != 0 and "openid" in oidc.stderr
        deleted = cli_json(server.env, "resources", "delete", ORDERS)
        assert deleted["clients"] == [service["client_id"]]
        after = cli_json(server.env, "clients", "show", service["client_id"])
        assert after["allowed_resources"] == [] and after["token_exchange_resources"] == []
        assert EXCHANGE not in after["grant_types"]
