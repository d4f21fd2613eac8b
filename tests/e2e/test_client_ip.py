"""The client address a real ``onepass serve`` throttles and audits: X-Forwarded-For is
believed only from ONEPASS_TRUSTED_PROXIES, and then its right-most untrusted hop."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from onepass.oauth import pkce
from tests.e2e.server import Server, base_env, cli, cli_json
from tests.flow import hidden_fields

pytestmark = pytest.mark.e2e

REDIRECT_URI = "https://rp.example/callback"
PER_IP = 3


def prepared_env(tmp_path: Path, **extra: str) -> tuple[dict[str, str], str, str]:
    """A database with an RP and an admin token that may read the audit log only."""
    env = base_env(
        f"sqlite:///{tmp_path}/onepass.db",
        ONEPASS_LOGIN_MAX_FAILURES_PER_IP=str(PER_IP),
        ONEPASS_LOGIN_MAX_FAILURES_PER_ACCOUNT="100",
        **extra,
    )
    cli(env, "db", "upgrade")
    rp = cli_json(env, "clients", "create", "--name", "rp", "--redirect-uri", REDIRECT_URI)
    cli(env, "admin", "create", "--email", "ops@example.com", "--password-stdin",
        stdin="correct horse battery\n")  # fmt: skip
    cli(env, "admin", "enroll-totp", "--email", "ops@example.com", "--json")
    token = cli_json(env, "admin", "tokens", "create", "--email", "ops@example.com",
                     "--scope", "audit:read")  # fmt: skip
    return env, rp["client_id"], token["token"]


def failed_login(http: httpx.Client, client_id: str, n: int, forwarded_for: str) -> int:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "code_challenge": pkce.s256("v" * 43),
        "code_challenge_method": "S256",
    }
    page = http.get("/authorize?" + urlencode(query))
    assert page.status_code == 200, page.text[:300]
    response = http.post(
        "/login",
        data={**hidden_fields(page.text), "email": f"user{n}@example.com", "password": "wrong"},
        headers={"x-forwarded-for": forwarded_for},
    )
    return response.status_code


def audited_ip(http: httpx.Client, token: str, forwarded_for: str) -> str | None:
    """The address the audit log records for a refused admin request."""
    auth = {"authorization": f"Bearer {token}"}
    refused = http.post(
        "/api/v1/admin/signing_keys/rotate",
        json={},
        headers={**auth, "x-forwarded-for": forwarded_for},
    )
    assert refused.status_code == 403, refused.text
    log = http.get("/api/v1/admin/audit_log", headers=auth).json()["entries"]
    return log[0]["ip_address"]


def test_forwarded_for_from_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    """Default: no trusted proxy, not even loopback (which uvicorn would trust)."""
    env, client_id, token = prepared_env(tmp_path)
    with (
        Server(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        statuses = [failed_login(http, client_id, n, f"198.51.100.{n}") for n in range(PER_IP + 1)]
        assert statuses == [401] * PER_IP + [429], "a new spoofed address each time"
        assert audited_ip(http, token, "198.51.100.77") == "127.0.0.1"


def test_forwarded_for_from_trusted_proxy_gives_rightmost_untrusted_hop(tmp_path: Path) -> None:
    """The proxy is 127.0.0.2 (a CIDR, and not uvicorn's default 127.0.0.1): its header
    is believed; the same header from 127.0.0.1, now an ordinary client, is not."""
    env, client_id, token = prepared_env(tmp_path, ONEPASS_TRUSTED_PROXIES="127.0.0.2/32")
    proxy = httpx.HTTPTransport(local_address="127.0.0.2")
    with (
        Server(env, log_path=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, transport=proxy) as http,
        httpx.Client(base_url=server.url) as direct,
    ):
        # The client put anything it liked on the left; the proxy appended its peer.
        for n in range(PER_IP):
            assert failed_login(http, client_id, n, f"10.9.9.{n}, 198.51.100.1") == 401
        assert failed_login(http, client_id, 50, "10.9.9.99, 198.51.100.1") == 429
        assert failed_login(http, client_id, 51, "198.51.100.2") == 401, "another client"
        # Hops that are trusted proxies themselves are skipped.
        assert failed_login(http, client_id, 52, "198.51.100.1, 127.0.0.2") == 429
        assert failed_login(direct, client_id, 53, "198.51.100.3") == 401
        assert audited_ip(http, token, "203.0.113.5, 198.51.100.9") == "198.51.100.9"
        assert audited_ip(direct, token, "198.51.100.9") == "127.0.0.1"
