"""Benchmark of the authorization-code exchange and the refresh grant of 1pass.

Not a test: it measures. See bench/README.md for what it does and how to read it.

    .venv/bin/python bench/code_flow.py [--workers N] [--duration S] [--runs N]
        [--skip-postgres] [--json]

The companion of bench/token_endpoint.py (whose helpers it imports): the same server
pinning (``taskset -c 0``), the same ``wrk`` on the other core (``taskset -c 1``) with 32
keep-alive connections, warm-up, median of ``--runs`` runs, p50/p95/p99, and any non-2xx
response fails the target. Three grants are measured on one running 1pass server:

- ``client_credentials``: the baseline, exactly the request of token_endpoint.py;
- ``authorization_code``: ``POST /token`` redeeming a code (PKCE S256, client_secret_basic);
- ``refresh_token``: ``POST /token`` rotating a refresh token.

Codes and refresh tokens are single use, so before every run the script mints as many as
the run can send (a browser-like login once, then ``GET /authorize`` with the session
cookie answers 303 with a fresh code; a refresh token comes from exchanging one such
code), and bench/code_flow.lua sends each exactly once, every wrk thread its own slice.
A run that used up its tokens is discarded and repeated with more (never a token twice).

Targets: 1pass on SQLite (a fresh file) and on PostgreSQL (a fresh database
``onepass_bench_code``, dropped afterwards; skipped when PostgreSQL does not answer or with
``--skip-postgres``). It reports each grant's median req/s and p50/p95/p99, and its ratio
to client_credentials measured in the same run on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import http.client
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import token_endpoint as te  # bench/token_endpoint.py, found through sys.path
from token_endpoint import (
    METRICS,
    ONEPASS_CLI,
    BenchError,
    Server,
    b64url_decode,
    basic_auth,
    cpu_set,
    log,
    run_checked,
    tail,
)

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "code_flow.lua"
BASELINE_LUA = BENCH_DIR / "token.lua"

PG_DATABASE = "onepass_bench_code"
REDIRECT_URI = "http://127.0.0.1:9/cb"
USER_EMAIL = "bench@example.com"
SCOPE = "openid offline_access"
CODE_TTL = 600  # ONEPASS_AUTHORIZATION_CODE_TTL for the bench server (its maximum)

GRANTS = ("client_credentials", "authorization_code", "refresh_token")
BASELINE = "client_credentials"
SHORT = {"client_credentials": "cc", "authorization_code": "code", "refresh_token": "refresh"}

# req/s assumed before the warm-up has measured a grant (only sizes the warm-up's tokens)
INITIAL_RATE_GUESS = 300.0
MAX_ATTEMPTS = 3  # a run that used up its tokens is repeated at most this many times in all
MINT_EXCHANGE_ATTEMPTS = 3  # tries of one code exchange while minting refresh tokens


# --------------------------------------------------------------------------- HTTP, once


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        for k, v in self.headers:
            if k.lower() == "set-cookie":
                jar.load(v)
        return {name: morsel.value for name, morsel in jar.items()}


def http_call(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """One request, redirects not followed (urllib would follow the 303s)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


def token_form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def post_token(base_url: str, authorization: str, fields: dict[str, str]) -> Reply:
    return http_call(
        base_url,
        "POST",
        "/token",
        {
            "Authorization": authorization,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        token_form(fields),
    )


def code_from_location(location: str | None, what: str) -> str:
    query = parse_qs(urlsplit(location or "").query)
    if "code" not in query:
        raise BenchError(f"{what}: the redirect carries no code: Location {location!r}")
    return query["code"][0]


# --------------------------------------------------------------------------- the server


@dataclass
class Setup:
    server: Server
    cc_authorization: str  # the client_credentials client
    rp_authorization: str  # the relying party (authorization_code + refresh_token)
    rp_client_id: str
    password: str
    # how many code exchanges at a time while minting refresh tokens; 0: --mint-concurrency
    exchange_concurrency: int = 0
    mint_retries: int = 0  # exchanges retried after a 5xx while minting refresh tokens
    mint_retry_sample: str = ""
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))  # 64 chars
    scope: str = SCOPE

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def authorize_path(self) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.rp_client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": self.scope,
                "state": "s",
                "code_challenge": self.challenge,
                "code_challenge_method": "S256",
            },
            quote_via=quote,
        )
        return f"/authorize?{query}"


def create_client(cli: str, env: dict[str, str], extra: list[str]) -> dict[str, Any]:
    out = run_checked(
        [cli, "clients", "create", "--name", "bench", *extra, "--json"],
        env=env,
        what="onepass clients create",
    )
    try:
        client = json.loads(out)
        if not (client["client_id"] and client["client_secret"]):
            raise KeyError("client_secret")
    except (ValueError, KeyError, TypeError) as exc:
        raise BenchError(
            f"onepass clients create --json printed no client_id/client_secret: {out[:500]!r}"
        ) from exc
    return client


def onepass_setup(
    args: argparse.Namespace,
    workdir: Path,
    database_url: str,
    user_args: Sequence[str] = (),
    scope: str = SCOPE,
) -> Setup:
    """A database, a user (``user_args``: more ``onepass users create`` options), the
    relying party and a client_credentials client, and the server, not yet started."""
    port = te.free_port()
    env = te.onepass_env(port, database_url)
    env["ONEPASS_AUTHORIZATION_CODE_TTL"] = str(CODE_TTL)
    cli = str(ONEPASS_CLI)
    run_checked([cli, "db", "upgrade"], env=env, what="onepass db upgrade")
    password = secrets.token_urlsafe(18)
    proc = subprocess.run(
        [cli, "users", "create", "--email", USER_EMAIL, *user_args, "--password-stdin", "--json"],
        env=env,
        input=password + "\n",
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BenchError(
            f"onepass users create failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    rp_extra = [
        "--redirect-uri", REDIRECT_URI,
        "--grant-type", "authorization_code",
        "--grant-type", "refresh_token",
        "--first-party",
    ]  # fmt: skip
    if args.id_token_alg:
        rp_extra += ["--id-token-alg", args.id_token_alg]
    rp = create_client(cli, env, rp_extra)
    cc = create_client(cli, env, ["--grant-type", "client_credentials"])
    cmd = [
        "taskset", "-c", args.server_cpus,
        cli, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(args.workers),
    ]  # fmt: skip
    server = Server(
        "onepass", cmd, env, workdir, workdir / "server.log", f"http://127.0.0.1:{port}/up"
    )
    return Setup(
        server,
        cc_authorization=basic_auth(cc["client_id"], cc["client_secret"]),
        rp_authorization=basic_auth(rp["client_id"], rp["client_secret"]),
        rp_client_id=rp["client_id"],
        password=password,
        # Concurrent code exchanges fail on SQLite ("database is locked", see
        # bench/README.md); one at a time they do not, and minting is not measured.
        exchange_concurrency=1 if database_url.startswith("sqlite") else 0,
        scope=scope,
    )


def browser_login(setup: Setup) -> str:
    """Sign in once as a browser does; return the ``onepass_session`` cookie value."""
    base = setup.server.base_url
    page = http_call(base, "GET", setup.authorize_path(), {"Accept": "text/html"})
    if page.status != 200:
        raise BenchError(
            f"GET /authorize without a session: HTTP {page.status}, expected the login page: "
            f"{page.body[:300]!r}"
        )
    text = page.body.decode("utf-8", "replace")
    hidden = {
        name: html.unescape(m.group(1))
        for name in ("csrf_token", "interaction")
        if (m := re.search(rf'name="{name}"\s+value="([^"]*)"', text))
    }
    csrf_cookie = page.cookies().get("onepass_csrf")
    if len(hidden) != 2 or not csrf_cookie:
        raise BenchError(
            "GET /authorize: the login page has no csrf_token/interaction inputs or no "
            f"onepass_csrf cookie (found inputs {sorted(hidden)}, cookie {bool(csrf_cookie)})"
        )
    form = urlencode({**hidden, "email": USER_EMAIL, "password": setup.password}).encode()
    reply = http_call(
        base,
        "POST",
        "/login",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"onepass_csrf={csrf_cookie}",
        },
        form,
    )
    session = reply.cookies().get("onepass_session")
    if reply.status != 303 or not session:
        raise BenchError(
            f"POST /login: HTTP {reply.status} (expected 303 with an onepass_session cookie): "
            f"{reply.body[:300]!r}"
        )
    code_from_location(reply.header("location"), "POST /login")
    return session


# --------------------------------------------------------------------------- minting


async def _mint(
    setup: Setup,
    session_cookie: str,
    kind: str,
    n: int,
    concurrency: int,
    exchange_concurrency: int,
) -> list[str]:
    """``n`` fresh codes (kind "code") or refresh tokens (kind "refresh").

    Codes come from ``GET /authorize`` with the session cookie, ``concurrency`` at a
    time. A refresh token comes from exchanging one such code; the exchanges run after
    all the codes are minted, ``exchange_concurrency`` at a time."""
    import aiohttp

    base = setup.server.base_url
    authorize = base + setup.authorize_path()
    exchange_fields = {
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": setup.verifier,
    }

    async def one_code(http: aiohttp.ClientSession, _item: None) -> str:
        async with http.get(
            authorize,
            headers={"Cookie": f"onepass_session={session_cookie}"},
            allow_redirects=False,
        ) as r:
            body = await r.read()
            if r.status != 303:
                raise BenchError(
                    f"GET /authorize with the session cookie: HTTP {r.status}, expected 303: "
                    f"{body[:300]!r}"
                )
            return code_from_location(r.headers.get("Location"), "GET /authorize")

    async def one_exchange(http: aiohttp.ClientSession, code: str) -> str:
        # A 5xx rolled its transaction back, so the code is still unused: try it again
        # (minting is not measured; the retries are counted and reported). Any other
        # failure, or a third 5xx, stops the target.
        for attempt in range(1, MINT_EXCHANGE_ATTEMPTS + 1):
            async with http.post(
                base + "/token",
                data={**exchange_fields, "code": code},
                headers={"Authorization": setup.rp_authorization, "Accept": "application/json"},
            ) as r:
                body = await r.read()
                if r.status >= 500 and attempt < MINT_EXCHANGE_ATTEMPTS:
                    setup.mint_retries += 1
                    setup.mint_retry_sample = setup.mint_retry_sample or (
                        f"HTTP {r.status} {body[:200]!r}"
                    )
                    continue
                if r.status != 200:
                    raise BenchError(
                        f"minting a refresh token: POST /token (authorization_code) HTTP "
                        f"{r.status} (attempt {attempt}): {body[:300]!r}"
                    )
                token = json.loads(body).get("refresh_token")
                if not token:
                    raise BenchError(f"minting a refresh token: no refresh_token in {body[:300]!r}")
                return str(token)
        raise AssertionError("unreachable")

    async def each(
        http: aiohttp.ClientSession,
        items: list[Any],
        fn: Callable[[aiohttp.ClientSession, Any], Awaitable[str]],
        parallel: int,
    ) -> list[str]:
        out: list[str] = []
        queue = list(reversed(items))

        async def worker() -> None:
            while queue:
                out.append(await fn(http, queue.pop()))

        await asyncio.gather(*(worker() for _ in range(max(1, min(parallel, len(items))))))
        return out

    connector = aiohttp.TCPConnector(limit=max(concurrency, exchange_concurrency))
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        codes = await each(http, [None] * n, one_code, concurrency)
        if kind == "code":
            return codes
        return await each(http, codes, one_exchange, exchange_concurrency)


def mint(
    args: argparse.Namespace, setup: Setup, session_cookie: str, grant: str, n: int
) -> tuple[list[str], float]:
    kind = "code" if grant == "authorization_code" else "refresh"
    started = time.monotonic()
    tokens = asyncio.run(
        _mint(
            setup,
            session_cookie,
            kind,
            n,
            args.mint_concurrency,
            setup.exchange_concurrency or args.mint_concurrency,
        )
    )
    elapsed = time.monotonic() - started
    if len(set(tokens)) != len(tokens):
        raise BenchError(f"minting gave {len(tokens) - len(set(tokens))} duplicate {kind}s")
    return tokens, elapsed


# --------------------------------------------------------------------------- wrk


def run_wrk(
    args: argparse.Namespace, base_url: str, script: Path, env_extra: dict[str, str], seconds: float
) -> dict[str, Any]:
    """token_endpoint.run_wrk with a script and environment of one's choice."""
    cmd = [
        "taskset", "-c", args.load_cpus,
        "wrk",
        "-t", str(args.threads),
        "-c", str(args.connections),
        "-d", f"{seconds:g}s",
        "--timeout", "10s",
        "--latency",
        "-s", str(script),
        base_url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_PATH": "/token", "BENCH_THREADS": str(args.threads), **env_extra}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    return te.parse_wrk_output(proc)


@dataclass
class GrantState:
    """What one grant needs between runs: the rate that sizes the next batch of tokens."""

    grant: str
    rate: float = INITIAL_RATE_GUESS
    runs: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0


def single_use_env(grant: str, verifier: str, authorization: str) -> dict[str, str]:
    """code_flow.lua's environment for a code exchange or a refresh (the token file aside)."""
    if grant == "authorization_code":
        env = {
            "BENCH_BODY_PREFIX": "grant_type=authorization_code&code=",
            "BENCH_BODY_SUFFIX": "&"
            + urlencode({"redirect_uri": REDIRECT_URI, "code_verifier": verifier}),
        }
    else:
        env = {
            "BENCH_BODY_PREFIX": "grant_type=refresh_token&refresh_token=",
            "BENCH_BODY_SUFFIX": "",
        }
    env["BENCH_AUTHORIZATION"] = authorization
    return env


def run_single_use(
    args: argparse.Namespace,
    state: GrantState,
    seconds: float,
    warmup: bool,
    tokens_file: Path,
    mint_batch: Callable[[int], list[str]],
    run: Callable[[float], dict[str, Any]],
) -> dict[str, Any]:
    """One run of a grant whose tokens are single use: ``mint_batch(n)`` mints ``n`` fresh
    tokens into ``tokens_file``, ``run(seconds)`` runs wrk with code_flow.lua over them.
    A run whose tokens ran out is discarded and repeated with more (a warm-up is kept)."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # enough for the run at the rate seen so far, with a margin, plus what the
        # connections have in flight
        n = math.ceil(state.rate * seconds * args.margin) + 2 * args.connections
        tokens_file.write_text("\n".join(mint_batch(n)) + "\n")
        result = run(seconds)
        result["minted"] = n
        if result["sent"] > n:
            raise BenchError(f"wrk sent {result['sent']} requests for {n} tokens: a token twice")
        # Little's law: connections / mean latency, the rate the server sustained
        sustained = args.connections / (result["mean_ms"] / 1000) if result["mean_ms"] else 0.0
        if not result["exhausted"]:
            state.rate = result["rps"]
            return result
        if warmup:
            state.rate = max(sustained, state.rate)
            log(
                f"    (warm-up used up its {n:,} tokens; about {state.rate:,.0f} req/s: "
                "the measured runs will mint for that)"
            )
            return result
        state.retries += 1
        state.rate = max(sustained, state.rate) * 1.5
        log(
            f"    RUN DISCARDED: {result['exhausted']} wrk thread(s) used up their tokens "
            f"({result['sent']:,} of {n:,} sent) before {seconds:g}s; minting for "
            f"{state.rate:,.0f} req/s and repeating the run (attempt {attempt + 1}/{MAX_ATTEMPTS})"
        )
    raise BenchError(
        f"{state.grant}: the tokens ran out in {MAX_ATTEMPTS} attempts; raise --margin"
    )


def run_grant(
    args: argparse.Namespace,
    setup: Setup,
    session_cookie: str,
    workdir: Path,
    state: GrantState,
    seconds: float,
    warmup: bool,
) -> dict[str, Any]:
    base = setup.server.base_url
    if state.grant == BASELINE:
        return run_wrk(
            args, base, BASELINE_LUA, {"BENCH_AUTHORIZATION": setup.cc_authorization}, seconds
        )
    env = single_use_env(state.grant, setup.verifier, setup.rp_authorization)
    tokens_file = workdir / f"{SHORT[state.grant]}-tokens.txt"
    env["BENCH_TOKENS_FILE"] = str(tokens_file)
    retried = setup.mint_retries

    def mint_batch(n: int) -> list[str]:
        nonlocal retried
        tokens, took = mint(args, setup, session_cookie, state.grant, n)
        log(f"    minted {n:,} {SHORT[state.grant]} tokens in {took:.1f}s ({n / took:,.0f}/s)")
        if setup.mint_retries > retried:
            log(
                f"    WARNING: {setup.mint_retries - retried} code exchange(s) answered 5xx while "
                f"minting and were retried (first: {setup.mint_retry_sample})"
            )
            retried = setup.mint_retries
        setup.server.check_alive()
        return tokens

    return run_single_use(
        args,
        state,
        seconds,
        warmup,
        tokens_file,
        mint_batch,
        lambda s: run_wrk(args, base, LUA_SCRIPT, env, s),
    )


# --------------------------------------------------------------------------- sanity


def jwt_parts(token: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header_b64, payload_b64, _ = token.split(".")
        return json.loads(b64url_decode(header_b64)), json.loads(b64url_decode(payload_b64))
    except (ValueError, AttributeError) as exc:
        raise BenchError(f"sanity: the {what} is not a JWT: {str(token)[:80]!r}") from exc


def sanity_check(setup: Setup, session_cookie: str) -> dict[str, Any]:
    """client_credentials as token_endpoint.py checks it; then one minted code: the
    exchange gives an access token, a verified ID token and a refresh token; the refresh
    gives new ones; and both the code and the old refresh token are refused a second
    time (so each must be sent once only)."""
    base = setup.server.base_url
    out: dict[str, Any] = {
        "client_credentials": te.sanity_check(base, setup.cc_authorization, "ES256")
    }
    status, jwks_body = te.http_get(f"{base}/.well-known/openid-configuration")
    jwks_uri = json.loads(jwks_body)["jwks_uri"] if status == 200 else None
    jwks = json.loads(te.http_get(jwks_uri)[1]) if jwks_uri else {"keys": []}

    (code,), _ = mint(_ARGS_ONE, setup, session_cookie, "authorization_code", 1)
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": setup.verifier,
    }
    reply = post_token(base, setup.rp_authorization, exchange)
    if reply.status != 200:
        raise BenchError(f"sanity: code exchange HTTP {reply.status}: {reply.body[:500]!r}")
    body = json.loads(reply.body)
    for name in ("access_token", "id_token", "refresh_token"):
        if not body.get(name):
            raise BenchError(f"sanity: the code exchange returned no {name}: {sorted(body)}")
    id_header, id_claims = jwt_parts(body["id_token"], "id_token")
    if id_claims.get("aud") not in (setup.rp_client_id, [setup.rp_client_id]):
        raise BenchError(f"sanity: the id_token's aud is {id_claims.get('aud')!r}")
    at_header, _ = jwt_parts(body["access_token"], "access_token")
    out["authorization_code"] = {
        "fields": sorted(body),
        "scope": body.get("scope"),
        "access_token_alg": at_header.get("alg"),
        "id_token_alg": id_header.get("alg"),
        "id_token_claims": sorted(id_claims),
        "id_token_signature": te.verify_jws(body["id_token"], jwks),
        "response_bytes": len(reply.body),
    }

    first_refresh = body["refresh_token"]
    reply = post_token(
        base,
        setup.rp_authorization,
        {"grant_type": "refresh_token", "refresh_token": first_refresh},
    )
    if reply.status != 200:
        raise BenchError(f"sanity: refresh HTTP {reply.status}: {reply.body[:500]!r}")
    refreshed = json.loads(reply.body)
    if not refreshed.get("refresh_token") or refreshed["refresh_token"] == first_refresh:
        raise BenchError("sanity: the refresh grant did not rotate the refresh token")
    out["refresh_token"] = {
        "fields": sorted(refreshed),
        "id_token_signature": te.verify_jws(refreshed["id_token"], jwks)
        if refreshed.get("id_token")
        else "no id_token",
        "response_bytes": len(reply.body),
    }

    # single use: a second use is refused (and, by design, revokes that grant's tokens)
    replays = {
        "refresh_token": post_token(
            base,
            setup.rp_authorization,
            {"grant_type": "refresh_token", "refresh_token": first_refresh},
        ),
        "authorization_code": post_token(base, setup.rp_authorization, exchange),
    }
    for grant, r in replays.items():
        error = json.loads(r.body).get("error") if r.body.startswith(b"{") else None
        if r.status != 400 or error != "invalid_grant":
            raise BenchError(
                f"sanity: a {grant} used twice answered HTTP {r.status} {r.body[:200]!r}, "
                "expected 400 invalid_grant"
            )
        out[grant]["second_use"] = f"HTTP {r.status} {error}"
    return out


_ARGS_ONE = argparse.Namespace(mint_concurrency=1)  # mint() for a single code


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    database: str
    database_url: Callable[[Path], str]
    cleanup: Callable[[], None] = lambda: None
    kind: str = "onepass"  # for token_endpoint.preflight
    result: dict[str, Any] = field(default_factory=dict)


def pg_create(port: int, database: str = PG_DATABASE) -> None:
    """A fresh, empty database: drop what a killed run may have left, then create it."""
    options = te.pg_options(port)
    run_checked(["dropdb", *options, "--if-exists", "--force", database], what="dropdb")
    run_checked(["createdb", *options, database], what="createdb")


def pg_drop(port: int, database: str = PG_DATABASE) -> None:
    cmd = ["dropdb", *te.pg_options(port), "--if-exists", "--force", database]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"warning: could not drop database {database}: {proc.stderr.strip()}")


OnepassTarget = tuple[str, str, Callable[[Path], str], Callable[[], None]]


def onepass_targets(
    args: argparse.Namespace, pg_database: str = PG_DATABASE
) -> tuple[list[OnepassTarget], list[str]]:
    """(name, database, database URL for a workdir, cleanup) of each 1pass target the
    flags ask for, and the skipped ones with why."""
    targets: list[OnepassTarget] = []
    skipped: list[str] = []
    if args.skip_sqlite:
        skipped.append("1pass sqlite (--skip-sqlite)")
    else:
        targets.append(
            ("1pass sqlite", "sqlite", lambda w: f"sqlite:///{w / 'bench.db'}", lambda: None)
        )
    if args.skip_postgres:
        skipped.append("1pass postgresql (--skip-postgres)")
    elif not te.postgres_answers(args.postgres_port):
        skipped.append(
            f"1pass postgresql (PostgreSQL does not answer on {te.PG_HOST}:{args.postgres_port})"
        )
    else:
        port = args.postgres_port

        def pg_url(_workdir: Path) -> str:
            pg_create(port, pg_database)
            return f"postgresql://{te.PG_USER}@{te.PG_HOST}:{port}/{pg_database}"

        targets.append(
            ("1pass postgresql", "postgresql", pg_url, lambda: pg_drop(port, pg_database))
        )
    return targets, skipped


def build_targets(args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    found, skipped = onepass_targets(args)
    return [Target(*t[:3], cleanup=t[3]) for t in found], skipped


def log_run(label: str, r: dict[str, Any]) -> None:
    log(
        f"  {label}: {r['rps']:,.0f} req/s  p50 {r['p50_ms']:.2f} ms  p95 {r['p95_ms']:.2f} ms  "
        f"p99 {r['p99_ms']:.2f} ms  ({r['requests']:,} requests)"
    )


def summarize_log_line(line: str) -> str:
    """One short line for a server log line: for a structlog JSON record with a traceback,
    its event, the onepass frame that raised, the exception and the SQL (no parameters)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line[:300]
    if not isinstance(record, dict):
        return line[:300]
    exc = str(record.get("exception", ""))
    frames = re.findall(r'File "[^"]*?(onepass/[^"]+)", line (\d+), in (\w+)', exc)
    where = f" at {frames[-1][0]}:{frames[-1][1]} {frames[-1][2]}()" if frames else ""
    skip = ("Traceback", "The above", "During handling", "(Background", "[parameters")
    messages = [m for m in exc.splitlines() if m and not m[0].isspace() and not m.startswith(skip)]
    detail = " | ".join(messages[-2:])
    return f"{record.get('event')} ({record.get('level')}){where}: {detail}"[:500]


def server_log_problems(log_path: Path) -> list[dict[str, Any]]:
    """Tracebacks, 500s and error records in the server log, counted by kind."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    keys = ("Traceback", " 500 ", '"level": "error"', '"level": "critical"')
    counts: Counter[str] = Counter(
        summarize_log_line(line) for line in text.splitlines() if any(k in line for k in keys)
    )
    return [{"count": n, "problem": p} for p, n in counts.most_common(20)]


def log_tail(log_path: Path, lines: int = 8) -> str:
    return "\n".join(line[:300] for line in tail(log_path, lines).splitlines())


def measure(args: argparse.Namespace, target: Target, workdir: Path) -> dict[str, Any]:
    setup = onepass_setup(args, workdir, target.database_url(workdir))
    server = setup.server
    states = {g: GrantState(g) for g in GRANTS}
    errors: dict[str, str] = {}

    def attempt(grant: str, seconds: float, warmup: bool) -> dict[str, Any] | None:
        """One run of one grant; a failure drops that grant, the others go on."""
        try:
            server.check_alive()
            return run_grant(args, setup, session_cookie, workdir, states[grant], seconds, warmup)
        except BenchError as exc:
            errors[grant] = str(exc)
            log(f"  FAILED {grant}: {exc}")
            return None

    with te.running(server):
        cpus = server.affinity()
        if any(cpu_set(allowed) != cpu_set(args.server_cpus) for allowed in cpus.values()):
            raise BenchError(
                f"the server's processes are not all on CPUs {args.server_cpus}: {cpus}"
            )
        session_cookie = browser_login(setup)
        sanity = sanity_check(setup, session_cookie)
        sanity["server_processes"] = len(cpus)
        ac = sanity["authorization_code"]
        log(
            f"  sanity: code exchange -> {', '.join(ac['fields'])}; id_token {ac['id_token_alg']} "
            f"{ac['id_token_signature']}; refresh rotates; code and refresh token refused a "
            f"second time ({ac['second_use']}); {len(cpus)} server process(es) on CPUs "
            f"{args.server_cpus}"
        )
        if args.warmup > 0:
            for grant in GRANTS:
                log(f"  warm-up {grant} {args.warmup:g}s")
                attempt(grant, args.warmup, True)
        # the grants take turns run by run, so that a disturbance hits all of them alike
        for i in range(args.runs):
            for grant in GRANTS:
                if grant in errors:
                    continue
                r = attempt(grant, args.duration, False)
                if r is not None:
                    log_run(f"run {i + 1}/{args.runs} {grant}", r)
                    states[grant].runs.append(r)
        alive = server.proc is not None and server.proc.poll() is None
    if not alive:
        raise BenchError(f"the server died during the runs\n{log_tail(server.log_path, 20)}")
    grants: dict[str, dict[str, Any]] = {}
    for grant, s in states.items():
        if grant in errors:
            grants[grant] = {"error": errors[grant], "runs": s.runs}
            continue
        grants[grant] = {
            "runs": s.runs,
            "median": {m: statistics.median(r[m] for r in s.runs) for m in METRICS},
            "discarded_runs": s.retries,
        }
    ratios: dict[str, dict[str, float | None]] = {}
    base = grants[BASELINE].get("median")
    for g, v in grants.items():
        if g != BASELINE and base and "median" in v:
            ratios[g] = {
                "throughput": v["median"]["rps"] / base["rps"] if base["rps"] else None,
                "p99": v["median"]["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
            }
    return {
        "sanity": sanity,
        "grants": grants,
        "ratios": ratios,
        "mint_exchange_retries": setup.mint_retries,
        "server_log_problems": server_log_problems(server.log_path),
    }


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    v = te.versions()
    return {k: v[k] for k in ("python", "onepass", "wrk", "cpu") if k in v}


def print_table(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"POST /token: authorization_code and refresh_token against client_credentials, "
        f"{cfg['connections']} connections, server on CPU {cfg['server_cpus']}, wrk on CPU "
        f"{cfg['load_cpus']}, 1pass workers={cfg['workers']}, median of {cfg['runs']} x "
        f"{cfg['duration']:g}s"
    )
    header = (
        f"{'target':<18} {'grant':<20} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f"  {'vs cc req/s':>11} {'vs cc p99':>9}  runs (req/s)"
    )
    print(header)
    print("-" * len(header))
    for t in report["targets"]:
        if "error" in t:
            print(f"{t['name']:<18} FAILED: {t['error'].splitlines()[0]}")
            continue
        for j, (grant, g) in enumerate(t["grants"].items()):
            name = t["name"] if j == 0 else ""
            if "error" in g:
                print(f"{name:<18} {grant:<20} FAILED: {g['error'].splitlines()[0][:200]}")
                continue
            m = g["median"]
            ratio = t["ratios"].get(grant)
            tp = f"{ratio['throughput']:.2f}x" if ratio and ratio["throughput"] else "-"
            p99 = f"{ratio['p99']:.2f}x" if ratio and ratio["p99"] else "-"
            each = ", ".join(f"{r['rps']:,.0f}" for r in g["runs"])
            print(
                f"{name:<18} {grant:<20} {m['rps']:>8,.0f} "
                f"{m['p50_ms']:>8.2f} {m['p95_ms']:>8.2f} {m['p99_ms']:>8.2f}  {tp:>11} {p99:>9}"
                f"  {each}"
            )
    for s in report["skipped"]:
        print(f"{'':<18} skipped: {s}")
    for t in report["targets"]:
        if t.get("mint_exchange_retries"):
            print(
                f"{t['name']}: {t['mint_exchange_retries']} code exchange(s) answered 5xx while "
                "minting refresh tokens and were retried"
            )
        for p in t.get("server_log_problems", []):
            print(f"{t['name']}: server log, {p['count']}x: {p['problem']}")
    print()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))


# --------------------------------------------------------------------------- main


def add_options(p: argparse.ArgumentParser) -> None:
    """The options this script shares with bench/rp_paths.py."""
    p.add_argument("--workers", type=int, default=1, help="onepass serve --workers N (default 1)")
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured run (default 10)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        help="measured runs per grant or workload; the median is reported (default 3)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of warm-up per grant or workload, 0 for none (default 3)",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--margin",
        type=float,
        default=1.5,
        help="tokens minted per run = last req/s x duration x margin + 2 x connections (default 1.5)",
    )
    p.add_argument(
        "--mint-concurrency",
        type=int,
        default=16,
        help="concurrent requests while minting codes and refresh tokens (default 16)",
    )
    p.add_argument("--skip-postgres", action="store_true", help="do not measure on PostgreSQL")
    p.add_argument("--skip-sqlite", action="store_true", help="do not measure on SQLite")
    p.add_argument(
        "--postgres-port",
        type=int,
        default=5432,
        help="PostgreSQL port on 127.0.0.1 (default 5432)",
    )
    p.add_argument("--server-cpus", default="0", help="taskset CPU list for the server (default 0)")
    p.add_argument(
        "--load-cpus", default="1", help="taskset CPU list for wrk and the minting (default 1)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON on stdout instead of the table",
    )


def check_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.runs < 1 or args.duration <= 0 or args.workers < 1 or args.warmup < 0:
        p.error("--runs, --duration and --workers must be positive, --warmup not negative")
    if args.margin < 1 or args.mint_concurrency < 1 or args.threads < 1:
        p.error("--margin must be at least 1, --mint-concurrency and --threads at least 1")
    if args.connections < args.threads:
        p.error("--connections must be at least --threads")


def pin_to_load_cpus(args: argparse.Namespace) -> None:
    """The minting client (this process) stays off the server's core, as wrk does."""
    try:
        os.sched_setaffinity(0, cpu_set(args.load_cpus))
    except (AttributeError, OSError, ValueError) as exc:
        log(f"warning: could not pin this process to CPUs {args.load_cpus}: {exc}")


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The report's record of the options from add_options that shape the figures."""
    names = ("workers", "duration", "runs", "warmup", "connections", "threads", "margin")
    return {
        **{n: getattr(args, n) for n in names},
        "server_cpus": args.server_cpus,
        "load_cpus": args.load_cpus,
    }


def ready_to_measure(args: argparse.Namespace, targets: Sequence[Any]) -> bool:
    """False when there is nothing to measure; exits 2 when a tool is missing; pins this
    process to the load CPUs."""
    if not targets:
        log("nothing to measure")
        return False
    te.preflight(args, list(targets))  # only .kind is read
    pin_to_load_cpus(args)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_options(p)
    p.add_argument(
        "--id-token-alg",
        choices=("RS256", "ES256"),
        default=None,
        help="the relying party's ID token alg (default: the client default, RS256)",
    )
    args = p.parse_args(argv)
    check_options(p, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets, skipped = build_targets(args)
    if not ready_to_measure(args, targets):
        return 2

    failed = False
    with tempfile.TemporaryDirectory(prefix="onepass-bench-code-") as tmp:
        for target in targets:
            workdir = Path(tmp) / target.name.replace(" ", "-")
            workdir.mkdir()
            log(f"== {target.name}")
            try:
                target.result = measure(args, target, workdir)
                if any("error" in g for g in target.result["grants"].values()):
                    failed = True
            except BenchError as exc:
                failed = True
                target.result = {
                    "error": str(exc),
                    "server_log_problems": server_log_problems(workdir / "server.log"),
                }
                log(f"  FAILED: {exc}")
                log(f"  --- server log (last lines) ---\n{log_tail(workdir / 'server.log')}")
            finally:
                target.cleanup()
            for p in target.result.get("server_log_problems", []):
                log(f"  server log, {p['count']}x: {p['problem']}")

    report = {
        "config": {
            "endpoint": "POST /token grant_type=authorization_code | refresh_token | "
            "client_credentials (client_secret_basic)",
            "scope": SCOPE,
            "pkce": "S256",
            **run_config(args),
            "authorization_code_ttl": CODE_TTL,
        },
        "versions": versions(),
        "targets": [{"name": t.name, "database": t.database, **t.result} for t in targets],
        "skipped": skipped,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    if failed:
        log(
            "\nFAILED: at least one target could not be measured (see above); "
            "its figures are not reported"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
