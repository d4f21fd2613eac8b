"""Rolling upgrades and rollbacks (docs/deploying.md), with real processes.

- The previous release (the last one that landed, its code taken from git) serves,
  this release migrates the database under it, and the old processes go on serving a
  recorded set of requests: client_credentials, a sign-in with PKCE, refresh, userinfo.
  This release then serves beside it on the same database; tokens and refresh tokens
  cross between the two in both directions, which is also the rollback: the previous
  release reads what this one wrote.
- This release started on a schema a newer release has expanded (a rollback of this
  release): it starts, is ready, and serves.
"""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from onepass.oauth import pkce
from onepass.release import head_revision
from tests.e2e.server import Server, base_env, cli, cli_json
from tests.flow import VERIFIER, log_in_and_consent
from tests.oidc import verify_access_token

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The last release that landed (stop 21's, CI-green); update it when a release lands.
PREVIOUS_RELEASE = "11e399cd2183f207a74fec929e467dba03b0db04"
REDIRECT_URI = "https://rp.example/callback"


def previous_release(where: Path) -> Path:
    """The previous release's ``onepass`` package, from git, importable from ``where``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE, "onepass"],
        capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    return where


class OldServer(Server):
    """`onepass serve` of the previous release's code (same virtualenv): run from its
    directory, where `python -m onepass` finds that code first."""

    def __init__(self, code: Path, env: dict[str, str], **kwargs: object) -> None:
        super().__init__(env, cwd=code, **kwargs)  # type: ignore[arg-type]


def old_cli(code: Path, env: dict[str, str], *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "onepass", *args, "--json"],
        env=env, cwd=code, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = __import__("json").loads(result.stdout)
    return data


def client_credentials(url: str, client: dict[str, object]) -> str:
    response = httpx.post(
        f"{url}/token",
        data={"grant_type": "client_credentials", "scope": "api:read"},
        auth=(str(client["client_id"]), str(client["client_secret"])),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def sign_in(url: str, rp: dict[str, object]) -> dict[str, str]:
    """A person signs in through the pages (PKCE S256); the RP exchanges the code."""
    query = {
        "response_type": "code", "client_id": str(rp["client_id"]), "redirect_uri": REDIRECT_URI,
        "scope": "openid email offline_access", "state": "s1", "nonce": "n1",
        "code_challenge": pkce.s256(VERIFIER), "code_challenge_method": "S256",
        "prompt": "consent",
    }  # fmt: skip

    async def browse() -> str:
        async with httpx.AsyncClient(base_url=url, timeout=10) as browser:
            return await log_in_and_consent(
                browser, "/authorize?" + httpx.QueryParams(query).__str__(),
                "ada@example.com", "correct horse battery",
            )  # fmt: skip

    callback = asyncio.run(browse())
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = httpx.post(
        f"{url}/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
              "code_verifier": VERIFIER},
        auth=(str(rp["client_id"]), str(rp["client_secret"])), timeout=10,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    assert "refresh_token" in tokens and "id_token" in tokens
    return tokens


def refresh(url: str, rp: dict[str, object], token: str) -> dict[str, str]:
    response = httpx.post(
        f"{url}/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(str(rp["client_id"]), str(rp["client_secret"])),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


def userinfo(url: str, access_token: str) -> dict[str, object]:
    response = httpx.get(
        f"{url}/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    info: dict[str, object] = response.json()
    return info


def verified(url: str, issuer: str, access_token: str) -> None:
    jwks = httpx.get(f"{url}/.well-known/jwks.json", timeout=10).json()
    verify_access_token(access_token, jwks, issuer=issuer, audience=issuer)


def test_the_previous_release_serves_through_the_upgrade_and_reads_what_this_one_wrote(
    tmp_path: Path,
) -> None:
    code = previous_release(tmp_path / "previous")
    env = base_env(f"sqlite:///{tmp_path}/u.db")
    with OldServer(code, env, log_path=tmp_path / "old.log") as old:
        issuer = old.url
        # It is the previous release's code that serves: it has no /livez yet.
        assert httpx.get(f"{old.url}/livez", timeout=5).status_code == 404
        service = old_cli(code, old.env, "clients", "create", "--name", "svc",
                          "--grant-type", "client_credentials", "--scope", "api:read")  # fmt: skip
        rp = old_cli(code, old.env, "clients", "create", "--name", "rp",
                     "--redirect-uri", REDIRECT_URI)  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "onepass", "users", "create", "--email", "ada@example.com",
             "--password-stdin"],
            env=old.env, cwd=code, input="correct horse battery\n",
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        before = sign_in(old.url, rp)

        # This release migrates the database under the running previous release.
        cli(env, "db", "upgrade")
        with sqlite3.connect(tmp_path / "u.db") as conn:
            (at,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert at == head_revision()

        # The previous release goes on serving the recorded requests.
        verified(old.url, issuer, client_credentials(old.url, service))
        during = sign_in(old.url, rp)
        refreshed_old = refresh(old.url, rp, before["refresh_token"])
        assert userinfo(old.url, refreshed_old["access_token"])["email"] == "ada@example.com"

        # This release serves beside it, on the same issuer and database.
        with Server(env, log_path=tmp_path / "new.log", issuer=issuer) as new:
            assert httpx.get(f"{new.url}/readyz", timeout=5).status_code == 200
            # Tokens either release issued verify with the JWKS either serves.
            verified(new.url, issuer, client_credentials(old.url, service))
            verified(old.url, issuer, client_credentials(new.url, service))
            # A refresh token the previous release issued, redeemed by this one...
            refreshed_new = refresh(new.url, rp, during["refresh_token"])
            assert userinfo(new.url, refreshed_new["access_token"])["email"] == "ada@example.com"
            # ... and one this release issued, redeemed by the previous (the rollback).
            back = refresh(old.url, rp, refreshed_new["refresh_token"])
            assert userinfo(old.url, back["access_token"])["email"] == "ada@example.com"
            # A client this release's CLI creates works on the previous release.
            later = cli_json(new.env, "clients", "create", "--name", "later",
                             "--grant-type", "client_credentials", "--scope", "api:read")  # fmt: skip
            verified(new.url, issuer, client_credentials(old.url, later))
    assert "Traceback" not in old.log()


def test_this_release_starts_and_serves_on_a_schema_a_newer_release_expanded(
    tmp_path: Path,
) -> None:
    """A rollback of this release: the next one added a table and a column with a default
    and recorded its migration; this release starts on that schema without touching it."""
    db = tmp_path / "r.db"
    env = base_env(f"sqlite:///{db}")
    cli(env, "db", "upgrade")
    ahead = f"{int(head_revision()) + 1:04d}"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE future_things (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute(
            "ALTER TABLE oauth_applications ADD COLUMN future_flag BOOLEAN DEFAULT 0 NOT NULL"
        )
        conn.execute("UPDATE alembic_version SET version_num = ?", (ahead,))
    with Server(env, log_path=tmp_path / "server.log") as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert "expand/contract" in ready.json()["checks"]["schema"]
        client = cli_json(server.env, "clients", "create", "--name", "svc",
                          "--grant-type", "client_credentials", "--scope", "api:read")  # fmt: skip
        verified(server.url, server.url, client_credentials(server.url, client))
        assert "migrations.schema_ahead" in server.log()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (ahead,)
    assert os.path.exists(db)
