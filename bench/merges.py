"""Benchmark of account merges: ``resolve_canonical`` latency and the link backfill to an RP.

Not a test: it measures. See bench/README.md for what it does and how to read it.

    .venv/bin/python bench/merges.py [--users N] [--links N] [--samples N] [--runs N]
        [--backfill N] [--json] [--keep-db] [--profile]

Against PostgreSQL (a fresh database ``onepass_bench_merges``, migrated with
``onepass db upgrade`` and dropped afterwards) and Redis (database 13 of
``redis://127.0.0.1:6379``, the only one it flushes):

1. loads ``--users`` users and ``--links`` identity links (one hop: every target is a user
   that is not itself merged) with asyncpg's ``copy_records_to_table``;
2. times ``CanonicalResolver.resolve`` (``resolve_canonical``) on ``--samples`` random
   distinct users, uncached (Redis flushed: a miss, one PostgreSQL query, a SET) and
   cached (the same users again: one GET), beside bare asyncpg and bare Redis baselines;
3. times ``backfill_links`` of ``--backfill`` links to one RP subscribed to
   ``identity.link.created`` (first run, then the idempotent second run), beside a bare
   ``INSERT … SELECT`` of the same rows into a scratch copy of the outbox table.

Every figure is the median of ``--runs`` runs. Exit status: 0 when everything was
measured and checked, 1 when a check failed (a wrong canonical user, a wrong count),
2 when PostgreSQL, Redis or the ``onepass`` CLI is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import os
import platform
import pstats
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

ONEPASS_CLI = Path(sys.executable).parent / "onepass"
PG_DATABASE = "onepass_bench_merges"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
BACKFILL_TARGET = 20_000  # entries/s, issue 4
CANONICAL_TTL = 3600.0  # Settings.canonical_cache_ttl's default
BATCH_CALLS = 100  # calls per session in the "open transaction" variant
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)

BARE_SELECT = "SELECT target_user_id FROM identity_links WHERE source_user_id = $1"

# The backfill's baseline: the same rows, built by PostgreSQL alone, in one statement.
BASELINE_INSERT = """
INSERT INTO bench_outbox_scratch
    (oauth_application_id, event_type, payload, idempotency_key,
     created_at, enqueued_at, attempts, due_at, key_epoch)
SELECT $1::bigint, 'identity.link.created',
       jsonb_build_object(
           'link_id', l.id, 'source_sub', s.sub, 'target_sub', t.sub,
           'created_at', to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       'identity.link.created:' || l.id || ':' || $1::bigint,
       now(), now(), 0, now(), 0
FROM identity_links l
JOIN users s ON s.id = l.source_user_id
JOIN users t ON t.id = l.target_user_id
ORDER BY l.id
ON CONFLICT (oauth_application_id, idempotency_key) DO NOTHING
"""


class BenchError(Exception):
    """Something the run needs is missing (exit 2)."""


class CheckFailed(Exception):
    """A measured operation gave a wrong answer (exit 1)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def summarize(latencies_ns: list[int]) -> dict[str, float]:
    """p50/p99/mean in microseconds; ops/s = 1 / mean (one caller, calls in sequence)."""
    ordered = sorted(latencies_ns)
    n = len(ordered)

    def pct(p: float) -> float:  # nearest rank
        return ordered[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] / 1000

    mean_us = sum(ordered) / n / 1000
    return {
        "p50_us": pct(50),
        "p99_us": pct(99),
        "mean_us": mean_us,
        "ops_per_s": 1e6 / mean_us if mean_us else 0.0,
        "calls": n,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


# --------------------------------------------------------------------------- setup


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


def onepass_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEPASS_")}
    env.pop("ENFORCE_CANONICAL_RESOLUTION", None)
    env.update(
        ONEPASS_DATABASE_URL=db_url,
        ONEPASS_SECRET_KEY=secrets.token_urlsafe(48),
        ONEPASS_ENV="development",
    )
    return env


def onepass(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run([str(ONEPASS_CLI), *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CheckFailed(
            f"onepass {' '.join(args)} failed (exit {proc.returncode})\n"
            f"stdout: {proc.stdout.strip()[-2000:]}\nstderr: {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


async def create_database(server_url: str) -> None:
    conn = await asyncpg.connect(database_url(server_url, "postgres"), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        await conn.close()


async def drop_database(server_url: str) -> None:
    conn = await asyncpg.connect(database_url(server_url, "postgres"), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


# --------------------------------------------------------------------------- data


def user_records(count: int) -> Iterator[tuple[Any, ...]]:
    # id, sub, email, email_normalized, email_verified, name, password_hash,
    # created_at, updated_at, disabled_at
    for i in range(1, count + 1):
        created = BASE_TIME - timedelta(seconds=count - i)
        yield (
            i,
            secrets.token_hex(16),
            f"User{i}@Bench.Example",
            f"user{i}@bench.example",
            True,
            None,
            None,
            created,
            created,
            None,
        )


USER_COLUMNS = [
    "id", "sub", "email", "email_normalized", "email_verified", "name", "password_hash",
    "created_at", "updated_at", "disabled_at",
]  # fmt: skip
LINK_COLUMNS = ["id", "source_user_id", "target_user_id", "created_at", "actor", "reason"]


def plan_links(users: int, links: int, rng: random.Random) -> dict[int, int]:
    """``links`` distinct sources, each merged into a user that is not itself a source."""
    if links >= users:
        raise BenchError("--links must be smaller than --users (every target must be unmerged)")
    ids = list(range(1, users + 1))
    rng.shuffle(ids)
    sources, targets = ids[:links], ids[links:]
    return {source: rng.choice(targets) for source in sources}


async def load(server_url: str, users: int, plan: dict[int, int]) -> dict[str, float]:
    conn = await asyncpg.connect(database_url(server_url, PG_DATABASE))
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        await conn.copy_records_to_table("users", records=user_records(users), columns=USER_COLUMNS)
        timings["users_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        link_rows = (
            (n, source, target, BASE_TIME + timedelta(seconds=n), "bench", "bench merge")
            for n, (source, target) in enumerate(plan.items(), start=1)
        )
        await conn.copy_records_to_table("identity_links", records=link_rows, columns=LINK_COLUMNS)
        timings["links_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), "
            "(SELECT coalesce(max(id), 0) + 1 FROM users), false)"
        )
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('identity_links', 'id'), "
            "(SELECT coalesce(max(id), 0) + 1 FROM identity_links), false)"
        )
        # What a live database has after autovacuum: statistics and a visibility map.
        await conn.execute("VACUUM ANALYZE users")
        await conn.execute("VACUUM ANALYZE identity_links")
        timings["vacuum_analyze_s"] = time.perf_counter() - t0
        timings["total_s"] = sum(timings.values())
        got_users = await conn.fetchval("SELECT count(*) FROM users")
        got_links = await conn.fetchval("SELECT count(*) FROM identity_links")
        if got_users != users or got_links != len(plan):
            raise CheckFailed(f"loaded {got_users} users and {got_links} links")
        bad = await conn.fetchval(
            "SELECT count(*) FROM identity_links a JOIN identity_links b "
            "ON b.source_user_id = a.target_user_id"
        )
        if bad:
            raise CheckFailed(f"{bad} links point to a merged user (chains must be one hop)")
    finally:
        await conn.close()
    return timings


# --------------------------------------------------------------------------- resolve


async def timed_loop(
    ids: list[int], call: Callable[[int], Awaitable[Any]]
) -> tuple[list[int], list[Any]]:
    latencies: list[int] = []
    results: list[Any] = []
    clock = time.perf_counter_ns
    for uid in ids:
        t0 = clock()
        value = await call(uid)
        latencies.append(clock() - t0)
        results.append(value)
    return latencies, results


def check_answers(what: str, ids: list[int], got: list[Any], plan: dict[int, int]) -> None:
    for uid, value in zip(ids, got, strict=True):
        expected = plan.get(uid, uid)
        if value is None and expected == uid and what.startswith("bare SELECT"):
            continue  # the bare query answers NULL for an unmerged user
        if value is None or int(value) != expected:
            raise CheckFailed(f"{what}: user {uid} resolved to {value}, expected {expected}")


async def bench_resolve(
    db_url: str, redis_url: str, plan: dict[int, int], users: int, samples: int, runs: int,
    rng: random.Random,
) -> dict[str, Any]:  # fmt: skip
    from onepass.cache import RedisCache
    from onepass.db import Database
    from onepass.identity.canonical import CanonicalResolver, cache_key

    samples = min(samples, users)
    pool = rng.sample(range(1, users + 1), min(users, samples + 1000))
    ids, warm_ids = pool[:samples], pool[samples:]
    merged = sum(1 for uid in ids if uid in plan)

    database = Database(db_url)
    cache = RedisCache(redis_url)
    resolver = CanonicalResolver(cache, CANONICAL_TTL)
    bare_redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    bare_pg = await asyncpg.connect(db_url)

    async def resolve_own_session(uid: int) -> int:
        async with database.session() as session:
            return await resolver.resolve(session, uid)

    async def bare_get(uid: int) -> Any:
        return await bare_redis.get(cache_key(uid))

    async def bare_select(uid: int) -> int | None:
        return await bare_pg.fetchval(BARE_SELECT, uid)

    async def bare_miss(uid: int) -> int:
        key = cache_key(uid)
        await bare_redis.get(key)
        target = await bare_pg.fetchval(BARE_SELECT, uid)
        value = target if target is not None else uid
        await bare_redis.set(key, str(value), px=int(CANONICAL_TTL * 1000))
        return value

    async def in_open_transaction(batch_ids: list[int]) -> tuple[list[int], list[Any]]:
        """Like the app's endpoints: the request's session already holds a connection and
        an open transaction (it loaded the user) when it resolves."""
        latencies: list[int] = []
        results: list[Any] = []
        for start in range(0, len(batch_ids), BATCH_CALLS):
            async with database.session() as session:
                await session.connection()  # checkout + BEGIN, not timed

                async def in_session(uid: int, session: Any = session) -> int:
                    return await resolver.resolve(session, uid)

                lat, res = await timed_loop(batch_ids[start : start + BATCH_CALLS], in_session)
            latencies += lat
            results += res
        return latencies, results

    names = {
        "redis_get": "bare Redis GET (baseline)",
        "pg_select": "bare SELECT on asyncpg (baseline)",
        "bare_miss": "bare GET + SELECT + SET (baseline)",
        "cached": "resolve cached, session per call",
        "uncached": "resolve uncached, session per call",
        "uncached_open_tx": f"resolve uncached, in an open transaction ({BATCH_CALLS} calls/session)",
    }
    per_run: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    try:
        # Warm-up on other users: pool connections, prepared statements, code paths.
        await bare_redis.flushdb()
        await timed_loop(warm_ids, resolve_own_session)
        await timed_loop(warm_ids, resolve_own_session)
        await timed_loop(warm_ids, bare_select)
        for run in range(1, runs + 1):
            cpu0 = time.process_time()
            await bare_redis.flushdb()
            lat, got = await timed_loop(ids, resolve_own_session)
            check_answers("uncached", ids, got, plan)
            stored = await bare_redis.dbsize()
            if stored != len(ids):
                raise CheckFailed(f"uncached pass left {stored} keys in Redis, expected {len(ids)}")
            per_run["uncached"].append(summarize(lat))

            lat, got = await timed_loop(ids, resolve_own_session)
            check_answers("cached", ids, got, plan)
            per_run["cached"].append(summarize(lat))

            lat, got = await timed_loop(ids, bare_get)
            check_answers("bare GET", ids, got, plan)
            per_run["redis_get"].append(summarize(lat))

            lat, got = await timed_loop(ids, bare_select)
            check_answers("bare SELECT", ids, got, plan)
            per_run["pg_select"].append(summarize(lat))

            await bare_redis.flushdb()
            lat, got = await timed_loop(ids, bare_miss)
            check_answers("bare miss", ids, got, plan)
            per_run["bare_miss"].append(summarize(lat))

            await bare_redis.flushdb()
            lat, got = await in_open_transaction(ids)
            check_answers("uncached in open transaction", ids, got, plan)
            per_run["uncached_open_tx"].append(summarize(lat))
            log(
                f"  resolve run {run}/{runs}: uncached p50 {per_run['uncached'][-1]['p50_us']:.0f} µs, "
                f"cached p50 {per_run['cached'][-1]['p50_us']:.0f} µs "
                f"(client CPU {time.process_time() - cpu0:.1f} s)"
            )
    finally:
        await bare_pg.close()
        await bare_redis.aclose()
        await cache.close()
        await database.close()

    results: dict[str, dict[str, Any]] = {
        key: {"name": names[key], "median": median_of(runs_), "runs": runs_}
        for key, runs_ in per_run.items()
    }
    m: dict[str, dict[str, float]] = {k: v["median"] for k, v in results.items()}
    ratios = {
        "cached_vs_redis_get": {
            "p50": ratio(m["cached"]["p50_us"], m["redis_get"]["p50_us"]),
            "p99": ratio(m["cached"]["p99_us"], m["redis_get"]["p99_us"]),
        },
        "uncached_vs_pg_select": {
            "p50": ratio(m["uncached"]["p50_us"], m["pg_select"]["p50_us"]),
            "p99": ratio(m["uncached"]["p99_us"], m["pg_select"]["p99_us"]),
        },
        "uncached_vs_bare_miss": {
            "p50": ratio(m["uncached"]["p50_us"], m["bare_miss"]["p50_us"]),
            "p99": ratio(m["uncached"]["p99_us"], m["bare_miss"]["p99_us"]),
        },
        "uncached_open_tx_vs_pg_select": {
            "p50": ratio(m["uncached_open_tx"]["p50_us"], m["pg_select"]["p50_us"]),
            "p99": ratio(m["uncached_open_tx"]["p99_us"], m["pg_select"]["p99_us"]),
        },
        "uncached_open_tx_vs_bare_miss": {
            "p50": ratio(m["uncached_open_tx"]["p50_us"], m["bare_miss"]["p50_us"]),
            "p99": ratio(m["uncached_open_tx"]["p99_us"], m["bare_miss"]["p99_us"]),
        },
    }
    return {
        "samples": len(ids),
        "merged_in_sample": merged,
        "measurements": results,
        "ratios": ratios,
    }


# --------------------------------------------------------------------------- backfill


async def bench_backfill(
    db_url: str, app_id: int, plan_count: int, backfill: int, runs: int, profile: bool
) -> dict[str, Any]:
    from onepass.clock import SystemClock
    from onepass.db import Database
    from onepass.identity.backfill import backfill_links

    conn = await asyncpg.connect(db_url)
    database = Database(db_url)
    count = min(backfill, plan_count)
    parked = plan_count - count
    result: dict[str, Any] = {"links": count, "parked_links": parked}
    try:
        if parked:
            # backfill_links sends every link: park those past the first `count` ids.
            await conn.execute(
                "CREATE TABLE bench_parked_links AS SELECT * FROM identity_links WHERE id > $1",
                count,
            )
            await conn.execute("DELETE FROM identity_links WHERE id > $1", count)
            await conn.execute("VACUUM ANALYZE identity_links")
        await conn.execute(
            "CREATE TABLE bench_outbox_scratch "
            "(LIKE webhook_outbox_entries INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
        first: list[dict[str, float]] = []
        second: list[dict[str, float]] = []
        base_first: list[float] = []
        base_second: list[float] = []
        for run in range(1, runs + 1):
            await conn.execute("TRUNCATE webhook_outbox_entries CASCADE")
            await conn.execute("CHECKPOINT")
            cpu0, t0 = time.process_time(), time.perf_counter()
            one = await backfill_links(database, SystemClock(), app_id)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if (one.enqueued, one.skipped) != (count, 0):
                raise CheckFailed(f"first backfill: enqueued {one.enqueued}, skipped {one.skipped}")
            await check_outbox(conn, app_id, count)
            first.append(
                {"seconds": elapsed, "entries_per_s": count / elapsed, "client_cpu_s": cpu}
            )

            cpu0, t0 = time.process_time(), time.perf_counter()
            two = await backfill_links(database, SystemClock(), app_id)
            elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if (two.enqueued, two.skipped) != (0, count):
                raise CheckFailed(
                    f"second backfill: enqueued {two.enqueued}, skipped {two.skipped}"
                )
            second.append({"seconds": elapsed, "links_per_s": count / elapsed, "client_cpu_s": cpu})

            await conn.execute("TRUNCATE bench_outbox_scratch")
            await conn.execute("CHECKPOINT")
            t0 = time.perf_counter()
            status = await conn.execute(BASELINE_INSERT, app_id)
            base_first.append(time.perf_counter() - t0)
            if status != f"INSERT 0 {count}":
                raise CheckFailed(f"baseline INSERT … SELECT: {status}")
            t0 = time.perf_counter()
            status = await conn.execute(BASELINE_INSERT, app_id)
            base_second.append(time.perf_counter() - t0)
            if status != "INSERT 0 0":
                raise CheckFailed(f"baseline second INSERT … SELECT: {status}")
            log(
                f"  backfill run {run}/{runs}: {first[-1]['entries_per_s']:,.0f} entries/s "
                f"({first[-1]['seconds']:.2f} s, client CPU {first[-1]['client_cpu_s']:.2f} s), "
                f"second run {second[-1]['seconds']:.2f} s, baseline {base_first[-1]:.2f} s"
            )

        if profile:
            await conn.execute("TRUNCATE webhook_outbox_entries CASCADE")
            result["profile"] = await profile_backfill(database, app_id)

        m1, m2 = median_of(first), median_of(second)
        b1, b2 = statistics.median(base_first), statistics.median(base_second)
        result.update(
            first_run={"median": m1, "runs": first},
            second_run={"median": m2, "runs": second},
            baseline_first={
                "median": {"seconds": b1, "entries_per_s": count / b1},
                "runs": [{"seconds": s} for s in base_first],
            },
            baseline_second={
                "median": {"seconds": b2},
                "runs": [{"seconds": s} for s in base_second],
            },
            ratio_first_vs_baseline=ratio(m1["seconds"], b1),
            ratio_second_vs_baseline=ratio(m2["seconds"], b2),
            target_entries_per_s=BACKFILL_TARGET,
            meets_target=m1["entries_per_s"] >= BACKFILL_TARGET,
        )
    finally:
        await database.close()
        try:
            await conn.execute("DROP TABLE IF EXISTS bench_outbox_scratch")
            await conn.execute("TRUNCATE webhook_outbox_entries CASCADE")
            if parked:
                await conn.execute("INSERT INTO identity_links SELECT * FROM bench_parked_links")
                await conn.execute("DROP TABLE bench_parked_links")
        finally:
            await conn.close()
    return result


async def check_outbox(conn: asyncpg.Connection, app_id: int, count: int) -> None:
    got = await conn.fetchval(
        "SELECT count(*) FROM webhook_outbox_entries WHERE oauth_application_id = $1 "
        "AND event_type = 'identity.link.created'",
        app_id,
    )
    if got != count:
        raise CheckFailed(f"outbox holds {got} identity.link.created entries, expected {count}")
    wrong = await conn.fetchval(
        """
        SELECT count(*) FROM webhook_outbox_entries e
        JOIN identity_links l ON l.id = (e.payload->>'link_id')::bigint
        JOIN users s ON s.id = l.source_user_id
        JOIN users t ON t.id = l.target_user_id
        WHERE e.oauth_application_id = $1
          AND (e.payload->>'source_sub' <> s.sub OR e.payload->>'target_sub' <> t.sub
               OR e.idempotency_key <> 'identity.link.created:' || l.id || ':' || $1::bigint)
        """,
        app_id,
    )
    if wrong:
        raise CheckFailed(f"{wrong} outbox entries do not match their link")


async def profile_backfill(database: Any, app_id: int) -> dict[str, Any]:
    """One more first run under cProfile: where the client's time goes."""
    from onepass.clock import SystemClock
    from onepass.identity.backfill import backfill_links

    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    await backfill_links(database, SystemClock(), app_id)
    profiler.disable()
    wall = time.perf_counter() - t0
    entries = pstats.Stats(profiler).stats.items()  # type: ignore[attr-defined]

    def short(filename: str) -> str:
        for marker in ("/site-packages/", "/onepass/", "/lib/python"):
            if marker in filename:
                tail = filename.split(marker, 1)[1]
                return ("onepass/" + tail) if marker == "/onepass/" else tail
        return filename

    def row(key: Any, value: Any) -> dict[str, Any]:
        (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) = key, value
        return {
            "function": f"{short(filename)}:{line}({func})",
            "calls": ncalls,
            "tottime_s": round(tottime, 3),
            "cumtime_s": round(cumtime, 3),
        }

    own = [row(k, v) for k, v in sorted(entries, key=lambda kv: kv[1][2], reverse=True)[:20]]
    ours = [
        row(k, v)
        for k, v in sorted(entries, key=lambda kv: kv[1][3], reverse=True)
        if "/onepass/" in k[0]
    ][:12]
    log(f"\ncProfile of one backfill run: {wall:.2f} s wall (slowed by the profiler)")
    for title, rows in (("by own time", own), ("onepass functions, by cumulative time", ours)):
        log(f"  {title}:")
        log(f"    {'own s':>7} {'cum s':>7} {'calls':>8}  function")
        for r in rows:
            log(
                f"    {r['tottime_s']:>7.3f} {r['cumtime_s']:>7.3f} {r['calls']:>8}  {r['function']}"
            )
    return {"wall_s": wall, "by_own_time": own, "onepass_by_cumulative_time": ours}


# --------------------------------------------------------------------------- output


def print_table(report: dict[str, Any]) -> None:
    p = report["parameters"]
    out = []
    load = report["load"]
    out.append(
        f"\nData: {p['users']:,} users, {p['links']:,} identity links "
        f"(PostgreSQL {report['environment']['postgresql']}, Redis {report['environment']['redis']})"
    )
    out.append(
        f"  load: users {load['users_s']:.1f} s, links {load['links_s']:.1f} s, "
        f"VACUUM ANALYZE {load['vacuum_analyze_s']:.1f} s, total {load['total_s']:.1f} s"
    )
    if "resolve" in report:
        r = report["resolve"]
        out.append(
            f"\nresolve_canonical: {r['samples']:,} distinct random users "
            f"({r['merged_in_sample']:,} merged), one caller, median of {p['runs']} runs"
        )
        header = f"  {'measurement':<62} {'p50 µs':>8} {'p99 µs':>8} {'mean µs':>8} {'ops/s':>8}"
        out.append(header)
        out.append("  " + "-" * (len(header) - 2))
        for key in (
            "redis_get",
            "pg_select",
            "bare_miss",
            "cached",
            "uncached",
            "uncached_open_tx",
        ):
            m = r["measurements"][key]
            med = m["median"]
            out.append(
                f"  {m['name']:<62} {med['p50_us']:>8.0f} {med['p99_us']:>8.0f} "
                f"{med['mean_us']:>8.0f} {med['ops_per_s']:>8,.0f}"
            )
        ra = r["ratios"]
        out.append("  ratios (p50 / p99):")
        out.append(
            f"    cached / bare GET                         {ra['cached_vs_redis_get']['p50']} / {ra['cached_vs_redis_get']['p99']}"
        )
        out.append(
            f"    uncached / bare SELECT                    {ra['uncached_vs_pg_select']['p50']} / {ra['uncached_vs_pg_select']['p99']}"
        )
        out.append(
            f"    uncached / bare GET+SELECT+SET            {ra['uncached_vs_bare_miss']['p50']} / {ra['uncached_vs_bare_miss']['p99']}"
        )
        out.append(
            f"    uncached in open tx / bare SELECT         {ra['uncached_open_tx_vs_pg_select']['p50']} / {ra['uncached_open_tx_vs_pg_select']['p99']}"
        )
        out.append(
            f"    uncached in open tx / bare GET+SELECT+SET {ra['uncached_open_tx_vs_bare_miss']['p50']} / {ra['uncached_open_tx_vs_bare_miss']['p99']}"
        )
    if "backfill" in report:
        b = report["backfill"]
        out.append(
            f"\nbackfill_links: {b['links']:,} links to one RP"
            + (
                f" ({b['parked_links']:,} other links parked meanwhile)"
                if b["parked_links"]
                else ""
            )
            + f", median of {p['runs']} runs"
        )
        header = f"  {'measurement':<46} {'seconds':>8} {'entries/s':>10} {'client CPU s':>13}"
        out.append(header)
        out.append("  " + "-" * (len(header) - 2))
        f1, f2 = b["first_run"]["median"], b["second_run"]["median"]
        out.append(
            f"  {'backfill_links, first run (all enqueued)':<46} {f1['seconds']:>8.2f} "
            f"{f1['entries_per_s']:>10,.0f} {f1['client_cpu_s']:>13.2f}"
        )
        out.append(
            f"  {'backfill_links, second run (enqueues 0)':<46} {f2['seconds']:>8.2f} "
            f"{'-':>10} {f2['client_cpu_s']:>13.2f}"
        )
        b1, b2 = b["baseline_first"]["median"], b["baseline_second"]["median"]
        out.append(
            f"  {'INSERT … SELECT, first (baseline)':<46} {b1['seconds']:>8.2f} "
            f"{b1['entries_per_s']:>10,.0f} {'-':>13}"
        )
        out.append(
            f"  {'INSERT … SELECT, second (baseline)':<46} {b2['seconds']:>8.2f} {'-':>10} {'-':>13}"
        )
        verdict = "meets" if b["meets_target"] else "BELOW"
        out.append(
            f"  first run {f1['entries_per_s']:,.0f} entries/s: {verdict} the target of "
            f"{b['target_entries_per_s']:,}/s; time ratio to the baseline: first "
            f"{b['ratio_first_vs_baseline']}x, second {b['ratio_second_vs_baseline']}x"
        )
    print("\n".join(out))


# --------------------------------------------------------------------------- main


async def server_versions(db_url: str, redis_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(db_url)
    try:
        pg = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return {"postgresql": str(pg), "redis": str(info.get("redis_version"))}


async def preflight(server_url: str, redis_url: str) -> None:
    if not ONEPASS_CLI.exists():
        raise BenchError(f"the onepass CLI is not next to {sys.executable}: install the project")
    try:
        conn = await asyncpg.connect(database_url(server_url, "postgres"), timeout=5)
        await conn.close()
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"PostgreSQL does not answer at {server_url}: {exc}") from None
    path = urlsplit(redis_url).path.strip("/")
    if not path.isdigit():
        raise BenchError(f"--redis-url must name a database number (it is flushed): {redis_url}")
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        raise BenchError(f"Redis does not answer at {redis_url}: {exc}") from None
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    await preflight(args.postgres_url, args.redis_url)
    db_url = database_url(args.postgres_url, PG_DATABASE)
    rng = random.Random(args.seed)
    report: dict[str, Any] = {
        "parameters": {
            "users": args.users, "links": args.links, "samples": args.samples,
            "runs": args.runs, "backfill": args.backfill, "seed": args.seed,
        },
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
    }  # fmt: skip
    log(f"creating database {PG_DATABASE}")
    await create_database(args.postgres_url)
    try:
        env = onepass_env(db_url)
        onepass(["db", "upgrade"], env)
        report["environment"].update(await server_versions(db_url, args.redis_url))

        log(f"loading {args.users:,} users and {args.links:,} links")
        plan = plan_links(args.users, args.links, rng)
        report["load"] = await load(args.postgres_url, args.users, plan)
        log(f"  loaded in {report['load']['total_s']:.1f} s")

        if not args.skip_resolve:
            log(f"resolve_canonical: {args.samples:,} users x {args.runs} runs")
            report["resolve"] = await bench_resolve(
                db_url, args.redis_url, plan, args.users, args.samples, args.runs, rng
            )

        if not args.skip_backfill:
            created = json.loads(
                onepass(
                    [
                        "clients", "create", "--name", "rp",
                        "--grant-type", "client_credentials",
                        "--webhook-url", "https://rp.example/hook",
                        "--event", "identity.link.created", "--json",
                    ],
                    env,
                )
            )  # fmt: skip
            app_id = int(created["id"])
            log(f"backfill_links: {min(args.backfill, len(plan)):,} links x {args.runs} runs")
            report["backfill"] = await bench_backfill(
                db_url, app_id, len(plan), args.backfill, args.runs, args.profile
            )
    finally:
        client = aioredis.Redis.from_url(args.redis_url)
        try:
            if not args.keep_db:
                await client.flushdb()
        finally:
            await client.aclose()
        if args.keep_db:
            log(f"kept database {PG_DATABASE} ({db_url}) and Redis {args.redis_url}")
        else:
            await drop_database(args.postgres_url)
            log(f"dropped database {PG_DATABASE}")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark resolve_canonical and backfill_links on PostgreSQL and Redis."
    )
    parser.add_argument("--users", type=int, default=1_000_000, help="users to load")
    parser.add_argument("--links", type=int, default=200_000, help="identity links to load")
    parser.add_argument("--samples", type=int, default=20_000, help="users resolved per pass")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--backfill", type=int, default=100_000, help="links backfilled")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--keep-db", action="store_true", help="keep the database and Redis data")
    parser.add_argument("--profile", action="store_true", help="cProfile one more backfill run")
    parser.add_argument("--skip-resolve", action="store_true")
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data and the samples")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="server URL, no database")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="flushed: use a spare DB")
    args = parser.parse_args(argv)
    if min(args.users, args.samples, args.runs, args.backfill) < 1 or args.links < 1:
        parser.error("--users, --links, --samples, --runs and --backfill must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(main_async(args))
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except CheckFailed as exc:
        log(f"check failed: {exc}")
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
