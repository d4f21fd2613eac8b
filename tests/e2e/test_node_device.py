"""A real device on openid-client 6 (``initiateDeviceAuthorization`` and
``pollDeviceAuthorizationGrant``, RFC 8628) against a real server: the client is made
with ``onepass clients create --grant-type urn:ietf:params:oauth:grant-type:device_code``,
node polls while a person (httpx, as a browser without JavaScript) enters the user code
at /device, signs in and approves, or denies. Installs the locked packages with
``npm ci``."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli_json
from tests.flow import hidden_fields
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EMAIL, PASSWORD = "tv@example.com", "correct horse battery"


def _person_decides(server: Server, user_code: str, decision: str) -> None:
    """The person, on their phone: the code, the sign-in, then Approve or Deny."""
    with httpx.Client(base_url=server.url, timeout=10) as phone:
        entered = phone.post(
            "/device",
            data={**hidden_fields(phone.get("/device").text), "user_code": user_code.lower()},
        )
        assert entered.status_code == 303 and entered.headers["location"] == "/account"
        signed_in = phone.post(
            "/account/login",
            data={
                **hidden_fields(phone.get("/account").text),
                "email": EMAIL,
                "password": PASSWORD,
            },
            follow_redirects=True,
        )
        assert f'value="{user_code}"' in signed_in.text, signed_in.text[:500]
        confirm = phone.post(
            "/device", data={**hidden_fields(signed_in.text), "user_code": user_code}
        )
        assert "Living Room TV" in confirm.text
        code = re.search(r'name="user_code" value="([^"]+)"', confirm.text)
        assert code is not None
        done = phone.post(
            "/device/decide",
            data={**hidden_fields(confirm.text), "user_code": code.group(1), "decision": decision},
        )
        assert done.status_code == 200, done.text[:500]


def _device_flow(node_rp: Path, tmp_path: Path, decision: str) -> tuple[Server, dict, dict]:
    env = base_env(f"sqlite:///{tmp_path}/d.db")
    server = Server(env, log_path=tmp_path / "server.log")
    with server:
        created = cli_json(
            server.env,
            "clients",
            "create",
            "--name",
            "Living Room TV",
            "--public",
            "--grant-type",
            GRANT,
            "--grant-type",
            "refresh_token",
        )
        assert created["grant_types"] == [GRANT, "refresh_token"]
        user = cli_json(server.env, "users", "create", "--email", EMAIL, "--password", PASSWORD)
        device = subprocess.Popen(
            ["node", "device.mjs", server.url, created["client_id"], "openid email offline_access"],
            cwd=node_rp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert device.stdout is not None
            started = json.loads(device.stdout.readline())
            assert "user_code" in started, started
            _person_decides(server, started["user_code"], decision)
            out, err = device.communicate(timeout=60)
        finally:
            if device.poll() is None:
                device.kill()
        assert device.returncode == 0, err
        outcome = json.loads(out.strip().splitlines()[-1])
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        return server, started, {**outcome, "jwks": jwks, "user_sub": user["sub"]}


def test_openid_client_6_device_gets_tokens_once_the_person_approves(
    node_rp: Path, tmp_path: Path
) -> None:
    server, started, outcome = _device_flow(node_rp, tmp_path, "approve")
    assert started["verification_uri"] == f"{server.url}/device"
    assert started["interval"] == 5 and started["expires_in"] == 600
    assert "error" not in outcome, outcome
    claims = verify_access_token(
        outcome["access_token"], outcome["jwks"], issuer=server.url, audience=server.url
    ).claims
    # openid-client checked the ID token (signature, iss, aud); its subject is the person's.
    assert outcome["claims"]["sub"] == claims["sub"] == outcome["user_sub"]
    assert outcome["claims"]["amr"] == ["pwd"]
    assert outcome["refresh_token"]
    assert outcome["scope"] == "openid email offline_access"


def test_openid_client_6_device_is_told_access_denied_when_the_person_denies(
    node_rp: Path, tmp_path: Path
) -> None:
    _, _, outcome = _device_flow(node_rp, tmp_path, "deny")
    assert outcome["error"] == "access_denied", outcome
