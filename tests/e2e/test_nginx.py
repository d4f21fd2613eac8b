"""deploy/nginx/onepass.conf, as an operator installs it, in front of a real
`onepass serve`: TLS with a test CA's certificate, HSTS, HTTP redirected, oversized
headers refused at the proxy, and X-Forwarded-For set by the proxy so that 1pass (with
ONEPASS_TRUSTED_PROXIES) sees the client's address and never a forged one."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli_json, free_port
from tests.oidc import verify_access_token
from tests.tls import make_ca_and_server_cert

pytestmark = pytest.mark.e2e

SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "onepass.conf"
CLIENT_ADDRESS = "127.0.0.3"  # the client connects from here: not the proxy's address


def render_site(upstream_port: int, http_port: int, https_port: int, tls: dict[str, Path]) -> str:
    """The shipped site with this machine's addresses, ports and paths: nothing else."""
    site = SITE.read_text()
    site = re.sub(r"    server 10\.0\.0\.\d+:8000[^\n]*\n", "", site)
    site = site.replace("keepalive 64;", f"server 127.0.0.1:{upstream_port};\n    keepalive 64;")
    site = re.sub(r"\n\s*listen \[::\]:\d+[^\n]*", "", site)  # no IPv6 needed here
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    site = site.replace("server_name id.example.com;", "server_name localhost;")
    site = site.replace("/etc/onepass/tls/fullchain.pem", str(tls["fullchain"]))
    site = site.replace("/etc/onepass/tls/privkey.pem", str(tls["privkey"]))
    site = site.replace("allow 10.0.0.0/8;", "allow 127.0.0.0/8;")
    return site


@pytest.fixture
def nginx() -> str:
    """Debian's nginx binary."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip("nginx is needed (.ci/run installs it)")
    return binary


def test_the_shipped_nginx_site_in_front_of_a_real_server(tmp_path: Path, nginx: str) -> None:
    tls = make_ca_and_server_cert(tmp_path)
    http_port, https_port = free_port(), free_port()
    issuer = f"https://localhost:{https_port}"
    env = base_env(
        f"sqlite:///{tmp_path}/n.db",
        ONEPASS_TRUSTED_PROXIES="127.0.0.1/32",
        ONEPASS_ACCESS_LOG="1",
    )
    with Server(env, log_path=tmp_path / "server.log", issuer=issuer) as server:
        prefix = tmp_path / "nginx"
        (prefix / "logs").mkdir(parents=True)
        (prefix / "site.conf").write_text(render_site(server.port, http_port, https_port, tls))
        (prefix / "nginx.conf").write_text(
            "user root;\nworker_processes 1;\npid nginx.pid;\nerror_log logs/error.log;\n"
            "events { worker_connections 128; }\n"
            "http {\n  access_log logs/access.log;\n"
            "  client_body_temp_path tmp_body;\n  proxy_temp_path tmp_proxy;\n"
            "  fastcgi_temp_path tmp_fcgi;\n  uwsgi_temp_path tmp_uwsgi;\n  scgi_temp_path tmp_scgi;\n"
            f"  include {prefix / 'site.conf'};\n}}\n"
        )
        check = subprocess.run(
            [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        proxy = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            trust = ssl.create_default_context(cafile=str(tls["ca"]))
            transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS, verify=trust)
            with httpx.Client(transport=transport, base_url=issuer, timeout=10) as client:
                for _ in range(100):
                    try:
                        discovery = client.get("/.well-known/openid-configuration")
                        break
                    except httpx.TransportError:
                        time.sleep(0.05)
                assert discovery.status_code == 200
                assert discovery.json()["issuer"] == issuer
                assert discovery.headers["strict-transport-security"] == (
                    "max-age=31536000; includeSubDomains"
                )
                assert client.get("/readyz").status_code == 200

                # An RP gets a token over TLS and verifies it with the JWKS it fetches.
                created = cli_json(
                    server.env, "clients", "create", "--name", "svc",
                    "--grant-type", "client_credentials", "--scope", "api:read",
                )  # fmt: skip
                token = client.post(
                    "/token",
                    data={"grant_type": "client_credentials", "scope": "api:read"},
                    auth=(created["client_id"], created["client_secret"]),
                )
                assert token.status_code == 200, token.text
                jwks = client.get(discovery.json()["jwks_uri"]).json()
                verify_access_token(
                    token.json()["access_token"], jwks, issuer=issuer, audience=issuer
                )

                # A forged X-Forwarded-For is replaced by the client's real address.
                forged = client.get("/livez", headers={"X-Forwarded-For": "203.0.113.9"})
                assert forged.status_code == 200
                # Headers past the proxy's bound never reach 1pass.
                huge = client.get("/livez", headers={"X-Padding": "a" * 20_000})
                assert huge.status_code in (400, 431)

            redirect = httpx.get(
                f"http://localhost:{http_port}/authorize?x=1", follow_redirects=False, timeout=5
            )
            assert redirect.status_code == 308
            # to the same host on 443 (where the site listens in production)
            assert redirect.headers["location"] == "https://localhost/authorize?x=1"
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
        log = server.log()
        # uvicorn's access log names the client as 1pass saw it: the real one, through
        # the proxy's header; the forged address appears nowhere.
        livez = [line for line in log.splitlines() if "GET /livez" in line]
        assert livez and all(CLIENT_ADDRESS in line for line in livez), livez
        assert "203.0.113.9" not in log
        assert "X-Padding" not in log and "a" * 100 not in log
