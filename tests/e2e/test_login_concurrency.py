"""Sign-ins under concurrency against the real server: the throttle counts across
workers (PostgreSQL + Redis, two workers), and SQLite does not answer 503 to many
console sign-ins at once."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import redis

from onepass.accounts import totp
from onepass.oauth import pkce
from tests.conftest import create_pg_database, drop_pg_database, require_postgres, require_redis
from tests.e2e.server import Server, base_env, cli, cli_json
from tests.flow import hidden_fields

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
WRONG = "Incorrect email or password."
THROTTLED = "Too many failed attempts"
CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')
# Cheap argon2 for the users the CLI makes and the server checks: the point is the count.
CHEAP_ARGON2 = {"ONEPASS_ARGON2_TIME_COST": "1", "ONEPASS_ARGON2_MEMORY_COST": "8192"}


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = asyncio.run(create_pg_database(require_postgres()))
    yield url
    asyncio.run(drop_pg_database(url))


def fresh_connections(url: str, **options: object) -> httpx.AsyncClient:
    """A client opening a new connection per request, so requests spread over the workers."""
    return httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(max_keepalive_connections=0), **options
    )


async def login_many(url: str, client_id: str, attempts: list[tuple[str, str]]) -> list[str]:
    """Post every attempt at once from one login page; what each person would see:
    "wrong", "throttled" or "signed in"."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": "https://rp.example/callback",
            "scope": "openid email",
            "state": "xyz",
            "code_challenge": pkce.s256("v" * 43),
            "code_challenge_method": "S256",
        }
    )
    async with fresh_connections(url) as http:
        page = await http.get(f"/authorize?{query}")
        assert page.status_code == 200, page.text[:300]
        fields = hidden_fields(page.text)
        responses = await asyncio.gather(
            *(
                http.post("/login", data={**fields, "email": email, "password": password})
                for email, password in attempts
            )
        )

    def seen(response: httpx.Response) -> str:
        if response.status_code == 401 and WRONG in response.text:
            return "wrong"
        if response.status_code == 429 and THROTTLED in response.text:
            return "throttled"
        assert response.status_code in (200, 303), (response.status_code, response.text[:300])
        return "signed in"

    return [seen(r) for r in responses]


def test_concurrent_wrong_passwords_on_two_workers_are_checked_at_most_the_limits(
    pg_url: str, tmp_path: Path
) -> None:
    redis_url = require_redis()
    redis.Redis.from_url(redis_url).flushdb()
    env = base_env(pg_url, ONEPASS_REDIS_URL=redis_url, **CHEAP_ARGON2)
    cli(env, "db", "upgrade")
    cli(env, "users", "create", "--email", "ada@example.com", "--password", PASSWORD)
    cli(env, "users", "create", "--email", "grace@example.com", "--password", PASSWORD)
    rp = cli_json(
        env, "clients", "create", "--name", "RP", "--redirect-uri", "https://rp.example/callback"
    )
    with Server(env, workers=2, log_path=tmp_path / "server.log") as server:
        per_account = asyncio.run(
            login_many(server.url, rp["client_id"], [("ada@example.com", "wrong")] * 60)
        )
        assert Counter(per_account) == {"wrong": 5, "throttled": 55}
        right = asyncio.run(
            login_many(server.url, rp["client_id"], [("ada@example.com", PASSWORD)])
        )
        assert right == ["throttled"], "the right password right after: still locked out"

        # The IP has 5 checked failures (the throttled attempts were never checked):
        # 25 more of its 30 are checked, whichever accounts they are for.
        per_ip = asyncio.run(
            login_many(
                server.url,
                rp["client_id"],
                [(f"user{i}@example.com", "wrong") for i in range(60)],
            )
        )
        assert Counter(per_ip) == {"wrong": 25, "throttled": 35}
        other = asyncio.run(
            login_many(server.url, rp["client_id"], [("grace@example.com", PASSWORD)])
        )
        assert other == ["throttled"], "this IP is locked out for every account"


async def console_sign_in(url: str, email: str, password: str, code: str) -> int:
    async with fresh_connections(url) as web:
        page = await web.get("/admin/login")
        found = CSRF_FIELD.search(page.text)
        assert found, page.text[:300]
        form = {"csrf_token": html.unescape(found.group(1)), "email": email}
        form.update(password=password, totp_code=code)
        return (await web.post("/admin/login", data=form)).status_code


def test_forty_concurrent_console_sign_ins_on_sqlite_get_no_503(tmp_path: Path) -> None:
    # Production argon2 parameters: checking a password takes long enough that holding
    # SQLite's write lock during the check queued sign-ins past the busy timeout. The
    # throttle is raised out of the way, so that every sign-in reaches the database.
    env = base_env(
        f"sqlite:///{tmp_path}/onepass.db",
        ONEPASS_LOGIN_MAX_FAILURES_PER_ACCOUNT="1000",
        ONEPASS_LOGIN_MAX_FAILURES_PER_IP="1000",
        ONEPASS_ADMIN_TOTP_MAX_FAILURES="1000",
    )
    cli(env, "db", "upgrade")
    cli(env, "admin", "create", "--email", "ops@example.com", "--password", PASSWORD)
    secret = cli_json(env, "admin", "enroll-totp", "--email", "ops@example.com")["secret"]

    async def everyone() -> list[int]:
        right = totp.code_at(secret, time.time())
        wrong = "000000" if right != "000000" else "111111"
        return list(
            await asyncio.gather(
                *(
                    console_sign_in(
                        server.url, "ops@example.com", PASSWORD, right if i % 2 else wrong
                    )
                    for i in range(40)
                )
            )
        )

    with Server(env, log_path=tmp_path / "server.log") as server:
        statuses = Counter(asyncio.run(everyone()))
        assert set(statuses) <= {303, 401}, statuses
        assert statuses[303] >= 1, "a right code signs in (once per TOTP step)"
        assert "database is locked" not in server.log()
