"""A real Node RP on openid-client 6 gets tokens from a real server, with its default
client authentication (client_secret_post) although the client was registered for
client_secret_basic, and with Basic; signs a user in through a pushed
authorization request (RFC 9126) with ``buildAuthorizationUrlWithPAR``; authenticates
with private_key_jwt, and signs a user in with a signed request object (RFC 9101,
``buildAuthorizationUrlWithJAR``) pushed to /par; and signs a user in with DPoP (RFC
9449), nonces required. Installs the locked packages with ``npm ci``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e


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


def _node(node_rp: Path, *args: str, script: str = "par.mjs") -> dict[str, object]:
    run = subprocess.run(
        ["node", script, *args], cwd=node_rp, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout)
    assert "error" not in result, result
    return result


def test_openid_client_6_signs_a_user_in_through_a_pushed_request(
    node_rp: Path, tmp_path: Path
) -> None:
    """A client registered with --require-par: openid-client pushes the request, the
    browser (httpx here) signs in at /authorize?client_id&request_uri, and openid-client
    checks the callback (state, iss) and the ID token (nonce, signature) itself."""
    from urllib.parse import urlsplit

    from tests.flow import log_in_and_consent

    redirect_uri = "http://127.0.0.1:9/callback"
    env = base_env(f"sqlite:///{tmp_path}/p.db")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin="correct horse battery")  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log") as server:
        created = cli_json(server.env, "clients", "create", "--name", "node web app",
                           "--redirect-uri", redirect_uri, "--require-par")  # fmt: skip
        assert created["require_pushed_authorization_requests"] is True
        secret = str(created["client_secret"])
        started = _node(node_rp, "start", server.url, created["client_id"], secret, redirect_uri)
        url = urlsplit(str(started["url"]))
        assert url.path == "/authorize" and "request_uri=urn" in url.query
        assert "redirect_uri" not in url.query, "only client_id and request_uri travel"

        async def browse() -> str:
            async with httpx.AsyncClient(base_url=server.url) as browser:
                return await log_in_and_consent(
                    browser, f"{url.path}?{url.query}", "ada@example.com", "correct horse battery"
                )

        import asyncio

        callback = asyncio.run(browse())
        finished = _node(
            node_rp, "finish", server.url, created["client_id"], secret, callback,
            str(started["verifier"]), str(started["state"]), str(started["nonce"]),
        )  # fmt: skip
        claims = finished["claims"]
        assert isinstance(claims, dict) and claims["iss"] == server.url
        assert claims["aud"] == created["client_id"]


def _pkjwt(node_rp: Path, *args: str) -> dict[str, object]:
    run = subprocess.run(
        ["node", "pkjwt.mjs", *args], cwd=node_rp, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout)
    assert "error" not in result, result
    return result


def test_openid_client_6_authenticates_with_private_key_jwt(node_rp: Path, tmp_path: Path) -> None:
    """openid-client's PrivateKeyJwt signs the assertion with a key made by Node's
    WebCrypto; the client is registered with its public JWK set (--jwks-file). Then a
    web app registered with --require-signed-request-object and --require-par signs its
    request with that key (buildAuthorizationUrlWithJAR), pushes it
    (buildAuthorizationUrlWithPAR), and openid-client checks the callback and the ID
    token itself. Last, a client registered --profile fapi2 does all of it with DPoP
    (fapi2.mjs): PAR + JAR + private_key_jwt + PKCE + DPoP, refreshes not rotated."""
    from urllib.parse import urlsplit

    from joserfc.jwk import ECKey

    from tests.flow import log_in_and_consent

    keygen = subprocess.run(
        ["node", "pkjwt.mjs", "keygen"], cwd=node_rp, capture_output=True, text=True, timeout=60
    )
    assert keygen.returncode == 0, keygen.stderr
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(keygen.stdout)
    env = base_env(f"sqlite:///{tmp_path}/k.db")
    with Server(env, log_path=tmp_path / "server.log") as server:
        created = cli_json(server.env, "clients", "create", "--name", "node service",
                           "--grant-type", "client_credentials", "--scope", "api:read",
                           "--token-endpoint-auth-method", "private_key_jwt",
                           "--jwks-file", str(jwks_file))  # fmt: skip
        assert "client_secret" not in created and created["jwks"]["keys"][0]["kid"] == "node-1"
        run = subprocess.run(
            ["node", "pkjwt.mjs", "token", server.url, created["client_id"]],
            cwd=node_rp, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert "access_token" in result, result
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        claims = verify_access_token(
            result["access_token"], jwks, issuer=server.url, audience=server.url
        ).claims
        assert claims["client_id"] == created["client_id"]

        redirect_uri = "http://127.0.0.1:9/callback"
        cli(server.env, "users", "create", "--email", "ada@example.com", "--password-stdin",
            stdin="correct horse battery")  # fmt: skip
        web = cli_json(server.env, "clients", "create", "--name", "node jar app",
                       "--redirect-uri", redirect_uri, "--require-par",
                       "--require-signed-request-object",
                       "--token-endpoint-auth-method", "private_key_jwt",
                       "--jwks-file", str(jwks_file))  # fmt: skip
        assert web["require_signed_request_object"] is True
        client_id = str(web["client_id"])
        started = _pkjwt(node_rp, "jar-start", server.url, client_id, redirect_uri)
        url = urlsplit(str(started["url"]))
        assert url.path == "/authorize" and "request_uri=urn" in url.query

        async def browse() -> str:
            async with httpx.AsyncClient(base_url=server.url) as browser:
                return await log_in_and_consent(
                    browser, f"{url.path}?{url.query}", "ada@example.com", "correct horse battery"
                )

        import asyncio

        callback = asyncio.run(browse())
        finished = _pkjwt(
            node_rp, "jar-finish", server.url, client_id, callback,
            str(started["verifier"]), str(started["state"]), str(started["nonce"]),
        )  # fmt: skip
        id_claims = finished["claims"]
        assert isinstance(id_claims, dict) and id_claims["aud"] == client_id

        # All of it together, as FAPI 2.0 has it: a client registered --profile fapi2
        # with the same keys; openid-client signs the request, pushes it with a DPoP
        # proof, exchanges the code and refreshes twice with the one refresh token.
        fapi = cli_json(server.env, "clients", "create", "--name", "node fapi2 app",
                        "--redirect-uri", redirect_uri, "--profile", "fapi2",
                        "--jwks-file", str(jwks_file))  # fmt: skip
        assert fapi["profile"] == "fapi2" and fapi["dpop_bound_access_tokens"] is True
        assert fapi["token_endpoint_auth_method"] == "private_key_jwt"
        fapi_id = str(fapi["client_id"])
        started = _node(node_rp, "start", server.url, fapi_id, redirect_uri, script="fapi2.mjs")
        url = urlsplit(str(started["url"]))
        assert url.path == "/authorize" and "request_uri=urn" in url.query
        callback = asyncio.run(browse())
        finished = _node(
            node_rp, "finish", server.url, fapi_id, callback,
            str(started["verifier"]), str(started["state"]), str(started["nonce"]),
            json.dumps(started["keys"]), script="fapi2.mjs",
        )  # fmt: skip
        assert finished["token_type"] == "dpop"
        keys = started["keys"]
        assert isinstance(keys, dict)
        jkt = ECKey.import_key(keys["publicKey"]).thumbprint()
        refreshes = finished["refreshes"]
        assert isinstance(refreshes, list) and len(refreshes) == 2
        assert all(r["refresh_token"] is None for r in refreshes), "not rotated under fapi2"
        for token in [finished["access_token"], *(r["access_token"] for r in refreshes)]:
            claims = verify_access_token(
                str(token), jwks, issuer=server.url, audience=server.url
            ).claims
            assert claims["cnf"] == {"jkt": jkt} and claims["client_id"] == fapi_id
        userinfo = finished["userinfo"]
        assert isinstance(userinfo, dict) and userinfo["email"] == "ada@example.com"


def test_openid_client_6_signs_a_user_in_with_dpop_and_server_nonces(
    node_rp: Path, tmp_path: Path
) -> None:
    """A client registered with --dpop-bound-access-tokens: openid-client pushes the
    request with a proof (the code is bound to its key), exchanges the code, calls
    userinfo and refreshes, each with a fresh proof, answering ``use_dpop_nonce`` with the
    server's ``DPoP-Nonce`` itself; joserfc checks the tokens' ``cnf.jkt``."""
    import asyncio
    from urllib.parse import urlsplit

    from joserfc.jwk import ECKey

    from tests.flow import log_in_and_consent

    redirect_uri = "http://127.0.0.1:9/callback"
    env = base_env(f"sqlite:///{tmp_path}/d.db", ONEPASS_DPOP_REQUIRE_NONCE="true")
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password-stdin",
        stdin="correct horse battery")  # fmt: skip
    with Server(env, log_path=tmp_path / "server.log") as server:
        created = cli_json(server.env, "clients", "create", "--name", "node dpop app",
                           "--redirect-uri", redirect_uri, "--dpop-bound-access-tokens")  # fmt: skip
        assert created["dpop_bound_access_tokens"] is True
        secret = str(created["client_secret"])
        started = _node(node_rp, "start", server.url, created["client_id"], secret,
                        redirect_uri, script="dpop.mjs")  # fmt: skip
        url = urlsplit(str(started["url"]))

        async def browse() -> str:
            async with httpx.AsyncClient(base_url=server.url) as browser:
                return await log_in_and_consent(
                    browser, f"{url.path}?{url.query}", "ada@example.com", "correct horse battery"
                )

        callback = asyncio.run(browse())
        finished = _node(
            node_rp, "finish", server.url, created["client_id"], secret, callback,
            str(started["verifier"]), str(started["state"]), str(started["nonce"]),
            json.dumps(started["keys"]), script="dpop.mjs",
        )  # fmt: skip
        assert finished["token_type"] == finished["refreshed_token_type"] == "dpop"
        keys = started["keys"]
        assert isinstance(keys, dict)
        jkt = ECKey.import_key(keys["publicKey"]).thumbprint()
        userinfo = finished["userinfo"]
        assert isinstance(userinfo, dict) and userinfo["email"] == "ada@example.com"
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        for name in ("access_token", "refreshed_access_token"):
            claims = verify_access_token(
                str(finished[name]), jwks, issuer=server.url, audience=server.url
            ).claims
            assert claims["cnf"] == {"jkt": jkt}
        bearer = httpx.get(
            f"{server.url}/userinfo",
            headers={"authorization": f"Bearer {finished['access_token']}"},
        )
        assert bearer.status_code == 401
        assert bearer.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
        updated = cli_json(server.env, "clients", "update", created["client_id"],
                           "--no-dpop-bound-access-tokens")  # fmt: skip
        assert updated["dpop_bound_access_tokens"] is False
