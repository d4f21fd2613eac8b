"""Login throttling under concurrency, its keys, and administrators at the end-user
login. SQLite with the in-process cache, and PostgreSQL with Redis."""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
from pathlib import Path

import httpx
import redis.asyncio as redis

from onepass.accounts import service as accounts
from onepass.accounts.models import User
from onepass.app import create_app
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from tests.conftest import ISSUER, make_settings, require_redis
from tests.e2e.server import free_port
from tests.factories import make_admin, make_rp, make_user
from tests.flow import authorize_url, hidden_fields, submit_login

WRONG = "Incorrect email or password."
THROTTLED = "Too many failed attempts"


async def concurrently(
    http: httpx.AsyncClient, page: httpx.Response, attempts: list[tuple[str, str]]
) -> list[httpx.Response]:
    fields = hidden_fields(page.text)
    return list(
        await asyncio.gather(
            *(
                http.post("/login", data={**fields, "email": email, "password": password})
                for email, password in attempts
            )
        )
    )


def answers(responses: list[httpx.Response]) -> tuple[int, int]:
    """(refused as wrong credentials, refused as throttled); nothing else is expected."""
    wrong = [r for r in responses if r.status_code == 401 and WRONG in r.text]
    throttled = [r for r in responses if r.status_code == 429 and THROTTLED in r.text]
    assert len(wrong) + len(throttled) == len(responses), {r.status_code for r in responses}
    return len(wrong), len(throttled)


async def test_concurrent_wrong_passwords_for_one_account_check_at_most_the_limit(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime)
    page = await http.get(authorize_url(await make_rp(runtime)))
    limit = runtime.settings.login_max_failures_per_account
    responses = await concurrently(http, page, [(user.email, "wrong password")] * 60)
    assert answers(responses) == (limit, 60 - limit)
    right = await submit_login(http, page, user.email, user.password)
    assert right.status_code == 429 and THROTTLED in right.text, "still locked out"


async def test_concurrent_wrong_passwords_from_one_ip_check_at_most_the_ip_limit(
    runtime: Runtime,
) -> None:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, login_max_failures_per_ip=10
    )
    client = await make_rp(runtime)
    other = await make_user(runtime, email="grace@example.com")
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        page = await http.get(authorize_url(client))
        attempts = [(f"user{i}@example.com", "wrong password") for i in range(60)]
        assert answers(await concurrently(http, page, attempts)) == (10, 50)
        right = await submit_login(http, page, other.email, other.password)
        assert right.status_code == 429 and THROTTLED in right.text


async def test_a_successful_login_gives_its_ip_attempt_back(runtime: Runtime) -> None:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, login_max_failures_per_ip=3
    )
    client = await make_rp(runtime)
    user = await make_user(runtime)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        page = await http.get(authorize_url(client))
        for _ in range(5):  # more sign-ins than the IP's limit, none of them failed
            assert (await submit_login(http, page, user.email, user.password)).status_code == 200
            http.cookies.delete("onepass_session")
        for i in range(3):
            wrong = await submit_login(http, page, f"user{i}@example.com", "wrong password")
            assert wrong.status_code == 401
        assert (await submit_login(http, page, user.email, user.password)).status_code == 429


async def test_an_administrators_password_at_the_end_user_login_is_refused_as_wrong(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await make_admin(runtime)
    page = await http.get(authorize_url(await make_rp(runtime)))
    refused = await submit_login(http, page, admin.email, admin.password)
    wrong = await submit_login(http, page, admin.email, "not the password")
    assert refused.status_code == wrong.status_code == 401
    assert WRONG in refused.text
    assert "onepass_session" not in refused.headers.get("set-cookie", "")
    assert _visible(refused.text, admin.password) == _visible(wrong.text, "not the password"), (
        "the same page: nothing tells an administrator's account from another"
    )


async def test_an_administrators_end_user_session_from_before_signs_in_to_no_rp(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await make_admin(runtime)
    async with runtime.database.session() as session:
        user = await session.get(User, admin.id)
        assert user is not None
        left = await accounts.create_login_session(
            session,
            runtime.hasher,
            runtime.clock,
            user,
            ttl=runtime.settings.login_session_ttl,
            amr=["pwd"],
            acr=accounts.ACR_PASSWORD,
            ip_address="127.0.0.1",
            user_agent="test",
        )
    http.cookies.set("onepass_session", left.token)
    page = await http.get(authorize_url(await make_rp(runtime)))
    assert page.status_code == 200, "the login form, not a redirect with a code"
    assert 'name="password"' in page.text


def _visible(page: str, password: str) -> str:
    """The page as its reader sees it: without the password typed, the hidden fields'
    values and the passkey options (the re-sealed interaction and a new passkey
    challenge differ from one answer to the next)."""
    page = page.replace(password, "")
    page = re.sub(r'data-options="[^"]*"', "", page)
    return re.sub(r'(type="hidden" name="\w+" value=)"[^"]*"', r"\1", page)


async def _login_keys(settings: Settings, email: str) -> set[str]:
    runtime = Runtime.build(settings)
    await prepare(runtime)
    try:
        client = await make_rp(runtime)
        app = create_app(settings)
        async with (
            app.api.router.lifespan_context(app.api),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
        ):
            page = await http.get(authorize_url(client))
            assert (await submit_login(http, page, email, "wrong password")).status_code == 401
    finally:
        await runtime.close()
    cache = redis.Redis.from_url(settings.redis_url or "", decode_responses=True)
    try:
        keys = {key async for key in cache.scan_iter(match="login:fail:account:*")}
        await cache.flushdb()
    finally:
        await cache.aclose()
    return keys


async def test_throttle_keys_in_redis_are_keyed_with_the_server_secret(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = require_redis()
    cache = redis.Redis.from_url(url)
    await cache.flushdb()
    await cache.aclose()
    email = "ada@example.com"
    keyed = []
    for secret in ("first-secret-" + "a" * 32, "second-secret-" + "b" * 32):
        path = tmp_path / f"{secret[:5]}.db"
        path.write_bytes(sqlite_template.read_bytes())
        with sqlite3.connect(path) as db:  # keys of this secret, made at start
            db.execute("DELETE FROM signing_keys")
        settings = make_settings(f"sqlite:///{path}", url).model_copy(update={"secret_key": secret})
        keys = await _login_keys(settings, email)
        assert len(keys) == 1, keys
        keyed.append(keys.pop())
    unsalted = hashlib.sha256(email.encode()).hexdigest()
    for key in keyed:
        assert unsalted[:16] not in key and email not in key
    assert keyed[0] != keyed[1], "another secret, another key"


async def test_concurrent_wrong_passwords_are_counted_per_process_while_redis_is_down(
    runtime: Runtime,
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = make_settings(runtime.settings.database_url, down)
    user = await make_user(runtime)
    client = await make_rp(runtime)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        page = await http.get(authorize_url(client))
        responses = await concurrently(http, page, [(user.email, "wrong password")] * 60)
        limit = settings.login_max_failures_per_account
        assert answers(responses) == (limit, 60 - limit)
