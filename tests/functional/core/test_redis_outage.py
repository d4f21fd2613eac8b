"""Redis goes away: logins, tokens and merges go on; an invalidation made during the
outage is applied in Redis once it is back, and another process soon stops reading the
stale answer. A real redis-server, killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from onepass.app import create_app
from onepass.cache import RedisCache
from onepass.runtime import Runtime
from tests.conftest import ISSUER, make_settings
from tests.factories import REDIRECT_URI, make_client, make_rp, make_user
from tests.flow import VERIFIER, authorize_url, log_in_and_consent, submit_login

REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A redis-server of the test's own, persisting to ``directory`` (so a key
    written before a crash is there again after the restart)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def raw(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("ONEPASS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{REDIS_SERVER} is missing; the Redis outage tests need it")
        pytest.skip(f"{REDIS_SERVER} is missing")
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


async def test_an_invalidation_lost_in_an_outage_is_made_when_redis_is_back(
    redis_process: RedisProcess,
) -> None:
    cache = RedisCache(redis_process.url)
    cache.RETRY_AFTER = 0.05  # type: ignore[misc]
    try:
        # Cached before the merge: user 7 is their own canonical user.
        await cache.set("user:canonical:7", "7", 3600)
        redis_process.kill()

        # The merge commits while Redis is down: its cache write falls back.
        started = time.monotonic()
        assert await cache.set("user:canonical:7", "9", 3600) is True
        assert await cache.get("user:canonical:7") == "9"
        assert time.monotonic() - started < 1, "an outage must not make callers wait"
        assert cache.lost_writes == 1
        # Counters go on per process.
        assert [await cache.incr("login:fail:x", 60) for _ in range(3)] == [1, 2, 3]

        redis_process.start()
        assert redis_process.raw().get("user:canonical:7") == "7", "the stale answer survived"
        time.sleep(0.06)
        # The first operation after the outage deletes the stale key in Redis.
        assert await cache.get("user:canonical:7") is None
        assert redis_process.raw().get("user:canonical:7") is None
        assert cache.lost_writes == 0
    finally:
        await cache.close()


async def test_another_process_stops_reading_the_stale_answer_soon_after_redis_is_back(
    redis_process: RedisProcess,
) -> None:
    merging = RedisCache(redis_process.url)  # the worker that ran the merge
    other = RedisCache(redis_process.url)  # another worker, another process
    for cache in (merging, other):
        cache.RETRY_AFTER = 0.05  # type: ignore[misc]
    try:
        await merging.set("user:canonical:7", "7", 3600)  # cached before the merge
        redis_process.kill()
        await merging.set("user:canonical:7", "9", 3600)  # the merge, during the outage
        assert merging.lost_writes == 1
        redis_process.start()

        # The merging worker gets no further request that touches the cache; the other
        # one serves logins. It must not read the pre-merge answer for long.
        deadline = asyncio.get_running_loop().time() + 2.0
        while await other.get("user:canonical:7") == "7":
            assert asyncio.get_running_loop().time() < deadline, (
                "another process still reads the pre-merge canonical user from Redis"
            )
            await asyncio.sleep(0.05)
        assert await other.get("user:canonical:7") is None
        assert merging.lost_writes == 0
    finally:
        await merging.close()
        await other.close()


async def test_logins_and_tokens_go_on_without_redis(runtime: Runtime, engine_name: str) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = make_settings(runtime.settings.database_url, down, login_max_failures_per_account=2)
    user = await make_user(runtime)
    rp = await make_rp(runtime)
    service = await make_client(runtime)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        assert (await http.get("/up")).status_code == 200
        token = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(service.client_id, service.client_secret or ""),
        )
        assert token.status_code == 200

        callback = await log_in_and_consent(http, authorize_url(rp), user.email, user.password)
        code = parse_qs(urlsplit(callback).query)["code"][0]
        exchanged = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": VERIFIER,
                "client_id": rp.client_id,
            },
            auth=(rp.client_id, rp.client_secret or ""),
        )
        assert exchanged.status_code == 200, exchanged.text
        userinfo = await http.get(
            "/userinfo", headers={"authorization": f"Bearer {exchanged.json()['access_token']}"}
        )
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == user.sub

        # Throttling still holds, counted in this process.
        http.cookies.clear()
        page = await http.get(authorize_url(rp))
        for _ in range(2):
            assert (await submit_login(http, page, user.email, "wrong password")).status_code == 401
        blocked = await submit_login(http, page, user.email, user.password)
        assert blocked.status_code == 429
