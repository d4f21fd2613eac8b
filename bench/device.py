"""Benchmark of device-flow polling (RFC 8628 §3.4): ``POST /token`` with the
device_code grant answering ``authorization_pending`` for many pending device codes,
1pass against node-oidc-provider 9's ``features.deviceFlow``, in one run.

Not a test: it measures. See bench/README.md ("Device flow polling: device.py").

    .venv/bin/python bench/device.py [--duration S] [--runs N] [--warmup S]
        [--skip-baseline] [--skip-sqlite] [--skip-postgres] [--json]

Shaped as users poll: many devices, each polling at its interval (5 s), not one code
hammered into ``slow_down``. Before every run each server gets fresh pending device
codes of a public client (1pass: its own ``POST /device_authorization``; node-oidc-
provider: ``POST /bench/mint?kind=device``, bench-only, its own ``DeviceCode`` model),
enough for the last run's rate x the interval x ``--margin``; wrk (bench/device.lua,
``--threads`` threads, each going round its own slice) then polls each code once per
slice, so each code is polled again only after at least the interval. A run whose
slices came round faster than the interval (the rate rose), or that got anything but
``authorization_pending`` (1pass answers ``slow_down`` to an early poll;
node-oidc-provider does not implement it), is discarded and run again with more codes.
Servers are pinned to ``--server-cpus``, wrk and the minting to ``--load-cpus``;
default settings on both servers (1pass: one worker). It reports the median req/s,
latency and server CPU per request of ``--runs`` runs, and 1pass's ratio to
node-oidc-provider (target: 1.5x).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_flow as cf  # bench/code_flow.py, found through sys.path
import rp_paths as rp
import token_endpoint as te
from token_endpoint import BenchError, Server, cpu_set, log

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
INTERVAL = 5.0  # s: both servers' (RFC 8628 §3.2's default)
LUA = Path(__file__).resolve().parent / "device.lua"
PG_DATABASE = "onepass_bench_device"
NODE_CLIENT_ID = "bench-device"
SCOPE = "openid email"
TARGET_RATIO = 1.5
INITIAL_RATE_GUESS = 2000.0
MAX_RETRIES = 3


@dataclass
class Target:
    name: str
    kind: str  # "baseline" or "onepass" (token_endpoint.preflight reads it)
    database: str | None
    start: Callable[[Target, Path], None]
    cleanup: Callable[[], None] = lambda: None
    server: Server | None = None
    client_id: str = ""
    mint: Callable[[int], list[str]] = lambda _n: []
    rate: float = INITIAL_RATE_GUESS
    runs: list[dict[str, Any]] = field(default_factory=list)
    discarded: int = 0
    sanity: str = ""
    error: str | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.base_url


def start_baseline(args: argparse.Namespace) -> Callable[[Target, Path], None]:
    def start(t: Target, workdir: Path) -> None:
        port = te.free_port()
        env = {
            **os.environ,
            "NODE_ENV": "production",
            "BENCH_MINT": "1",
            "BENCH_DEVICE_CLIENT_ID": NODE_CLIENT_ID,
            "BENCH_SCOPE": SCOPE,
        }
        cmd = [
            "taskset", "-c", args.server_cpus,
            "node", "server.js", "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        ready = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
        t.server = Server(
            "node-oidc-provider", cmd, env, te.NODE_DIR, workdir / "server.log", ready
        )
        t.client_id = NODE_CLIENT_ID
        t.server.start()

        def mint(n: int) -> list[str]:
            codes: list[str] = []
            while len(codes) < n:
                chunk = min(20_000, n - len(codes))
                query = urlencode({"kind": "device", "n": str(chunk)})
                reply = cf.http_call(t.base, "POST", f"/bench/mint?{query}")
                got = reply.body.decode().split()
                if reply.status != 200 or len(got) != chunk:
                    raise BenchError(f"POST /bench/mint (device x {chunk}): HTTP {reply.status}")
                codes += got
            return codes

        t.mint = mint

    return start


def start_onepass(
    args: argparse.Namespace, database_url: Callable[[Path], str]
) -> Callable[[Target, Path], None]:
    def start(t: Target, workdir: Path) -> None:
        port = te.free_port()
        env = te.onepass_env(port, database_url(workdir))
        cli = str(te.ONEPASS_CLI)
        te.run_checked([cli, "db", "upgrade"], env=env, what="onepass db upgrade")
        out = te.run_checked(
            [cli, "clients", "create", "--name", "bench tv", "--public", "--grant-type", GRANT,
             "--scope", SCOPE, "--json"],
            env=env,
            what="onepass clients create",
        )  # fmt: skip
        t.client_id = json.loads(out)["client_id"]
        cmd = [
            "taskset", "-c", args.server_cpus,
            cli, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(args.workers),
        ]  # fmt: skip
        t.server = Server(
            "onepass", cmd, env, workdir, workdir / "server.log", f"http://127.0.0.1:{port}/up"
        )
        t.server.start()

        def mint(n: int) -> list[str]:
            # In a process of its own, stored as /device_authorization stores them
            # (mint_codes): an HTTP request each would take minutes for the tens of
            # thousands a run needs.
            out = te.run_checked(
                [sys.executable, __file__, "--mint-codes", str(n), t.client_id],
                env=env,
                what="minting device codes",
            )
            codes = out.split()
            if len(codes) != n:
                raise BenchError(f"minted {len(codes)} device codes, not {n}")
            return codes

        t.mint = mint

    return start


def build_targets(args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    targets: list[Target] = []
    skipped: list[str] = []
    if args.skip_baseline:
        skipped.append("node-oidc-provider (--skip-baseline)")
    else:
        targets.append(Target("node-oidc-provider", "baseline", None, start_baseline(args)))
    found, skipped_onepass = cf.onepass_targets(args, PG_DATABASE)
    for name, database, url, cleanup in found:
        targets.append(Target(name, "onepass", database, start_onepass(args, url), cleanup))
    return targets, skipped + skipped_onepass


def poll(t: Target, device_code: str) -> tuple[int, dict[str, Any]]:
    body = urlencode({"grant_type": GRANT, "device_code": device_code, "client_id": t.client_id})
    reply = cf.http_call(
        t.base,
        "POST",
        "/token",
        {"Content-Type": "application/x-www-form-urlencoded"},
        body.encode(),
    )
    return reply.status, json.loads(reply.body or b"{}")


def sanity_check(t: Target) -> str:
    """A fresh code answers authorization_pending; an unknown one invalid_grant."""
    (code,) = t.mint(1)
    status, body = poll(t, code)
    if (status, body.get("error")) != (400, "authorization_pending"):
        raise BenchError(f"sanity: a pending code answered HTTP {status} {body}")
    status, unknown = poll(t, code + "x")
    if (status, unknown.get("error")) != (400, "invalid_grant"):
        raise BenchError(f"sanity: an unknown code answered HTTP {status} {unknown}")
    status, again = poll(t, code)  # at once: 1pass slows it down, node does not
    return f"pending, unknown code invalid_grant, an early second poll {again.get('error')}"


def run_wrk(
    args: argparse.Namespace, t: Target, codes_file: Path, seconds: float
) -> dict[str, Any]:
    assert t.server is not None
    cmd = [
        "taskset", "-c", args.load_cpus,
        "wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds:g}s",
        "--timeout", "10s", "--latency", "-s", str(LUA), t.base,
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_CLIENT_ID": t.client_id,
        "BENCH_CODES_FILE": str(codes_file),
        "BENCH_THREADS": str(args.threads),
    }
    before = rp.server_cpu_seconds(t.server)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 120)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip()}")
    result: dict[str, Any] | None = None
    sample = ""
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
        elif line.startswith("BENCH_SAMPLE "):
            sample = line[len("BENCH_SAMPLE ") :]
    if result is None or not result["requests"]:
        raise BenchError(f"wrk printed no result:\n{proc.stdout}\n{proc.stderr}")
    errors = sum(
        result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    )
    if result["other"] or errors:
        raise BenchError(
            f"{result['other']} answers other than authorization_pending/slow_down and "
            f"{errors} socket errors; first: {sample or '(none)'}"
        )
    result["cpu_us_per_req"] = (rp.server_cpu_seconds(t.server) - before) / result["requests"] * 1e6
    return result


def one_run(args: argparse.Namespace, t: Target, workdir: Path, seconds: float, label: str) -> None:
    """Mint enough codes, poll them; again with more while a run was too fast for them."""
    assert t.server is not None
    for _ in range(MAX_RETRIES + 1):
        n = math.ceil(t.rate * INTERVAL * args.margin) + 2 * args.connections
        started = time.monotonic()
        codes = t.mint(n)
        log(f"    {t.name}: {n:,} pending device codes in {time.monotonic() - started:.1f}s")
        codes_file = workdir / "codes.txt"
        codes_file.write_text("\n".join(codes) + "\n")
        t.server.check_alive()
        r = run_wrk(args, t, codes_file, seconds)
        cycle = n / r["rps"]  # seconds for a slice to come round to a code again
        r["codes"], r["cycle_s"] = n, round(cycle, 2)
        t.rate = max(t.rate, r["rps"])
        if cycle >= INTERVAL and not r["slow_down"]:
            log(
                f"  {label} {t.name:<20} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.2f} "
                f"p99 {r['p99_ms']:.2f} ms  {r['cpu_us_per_req']:,.0f} µs CPU/req  "
                f"(each code every {cycle:.1f}s)"
            )
            if label != "warm-up":
                t.runs.append(r)
            return
        t.discarded += 1
        log(
            f"    discarded: each code polled every {cycle:.1f}s, {r['slow_down']} slow_down; "
            "again with more codes"
        )
    raise BenchError(f"{t.name}: runs stayed faster than the interval after {MAX_RETRIES} retries")


def measure(args: argparse.Namespace, targets: list[Target], root: Path) -> None:
    for t in targets:
        workdir = root / t.name.replace(" ", "-")
        workdir.mkdir()
        log(f"{t.name}: starting")
        try:
            t.start(t, workdir)
            assert t.server is not None
            if any(cpu_set(c) != cpu_set(args.server_cpus) for c in t.server.affinity().values()):
                raise BenchError(f"the server's processes are not all on CPUs {args.server_cpus}")
            t.sanity = sanity_check(t)
            log(f"  sanity: {t.sanity}")
            if args.warmup > 0:
                one_run(args, t, workdir, args.warmup, "warm-up")
            for i in range(args.runs):
                one_run(args, t, workdir, args.duration, f"run {i + 1}/{args.runs}")
        except BenchError as exc:
            t.error = str(exc)
            log(f"  FAILED {t.name}: {exc}")
        finally:
            if t.server is not None:
                t.server.stop()
            t.cleanup()


def report_of(
    args: argparse.Namespace, targets: list[Target], skipped: list[str]
) -> dict[str, Any]:
    rows = []
    for t in targets:
        row: dict[str, Any] = {"name": t.name, "server": t.kind, "database": t.database}
        if t.error or not t.runs:
            row["error"] = t.error or "no run"
        else:
            row["median"] = {
                k: statistics.median(r[k] for r in t.runs)
                for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "cpu_us_per_req")
            }
        rows.append({**row, "sanity": t.sanity, "runs": t.runs, "discarded_runs": t.discarded})
    baseline = next((r for r in rows if r["server"] == "baseline" and "median" in r), None)
    ratios = [
        {
            "target": r["name"],
            "throughput": r["median"]["rps"] / baseline["median"]["rps"],
            "p99": r["median"]["p99_ms"] / baseline["median"]["p99_ms"],
            "goal": TARGET_RATIO,
        }
        for r in rows
        if baseline is not None and r is not baseline and "median" in r
    ]
    return {
        "config": {
            "request": f"POST /token grant_type={GRANT} (public client), pending device codes",
            "interval_s": INTERVAL,
            **cf.run_config(args),
        },
        "versions": te.versions(),
        "targets": rows,
        "ratios": ratios,
        "skipped": skipped,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['config']['request']}, each code polled at most every {INTERVAL:g}s")
    print(f"{'target':<22}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'µs CPU/req':>12}")
    for r in report["targets"]:
        if "median" not in r:
            print(f"{r['name']:<22}  error: {r['error']}")
            continue
        m = r["median"]
        print(
            f"{r['name']:<22}{m['rps']:>10,.0f}{m['p50_ms']:>9.2f}{m['p95_ms']:>9.2f}"
            f"{m['p99_ms']:>9.2f}{m['cpu_us_per_req']:>12,.0f}"
        )
    for ratio in report["ratios"]:
        verdict = "meets" if ratio["throughput"] >= ratio["goal"] else "misses"
        print(
            f"{ratio['target']}: {ratio['throughput']:.2f}x node-oidc-provider's throughput "
            f"(p99 {ratio['p99']:.2f}x); {verdict} the {ratio['goal']}x target"
        )
    for s in report["skipped"]:
        print(f"skipped: {s}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cf.add_options(p)
    p.add_argument("--skip-baseline", action="store_true", help="do not run node-oidc-provider")
    p.set_defaults(duration=15.0)
    args = p.parse_args(argv)
    cf.check_options(p, args)
    return args


async def mint_codes(n: int, client_id: str) -> None:
    """``--mint-codes N CLIENT_ID``: N pending device codes of the client, one a line on
    stdout, stored as onepass.oauth.device.start stores them (hashed device code,
    normalised user code, interval 5 s, ONEPASS_DEVICE_CODE_TTL), in one multi-row
    INSERT against ONEPASS_DATABASE_URL (start's savepoint per code is for a live
    server's user-code collisions; a bench-only batch does without)."""
    import secrets
    from datetime import timedelta

    from sqlalchemy import insert, select

    from onepass.clients.models import OAuthApplication
    from onepass.oauth import device
    from onepass.oauth.models import DeviceAuthorization
    from onepass.runtime import Runtime
    from onepass.settings import load_settings

    runtime = Runtime.build(load_settings())
    now = runtime.clock.now()
    expires_at = now + timedelta(seconds=runtime.settings.device_code_ttl)
    codes = [secrets.token_urlsafe(32) for _ in range(n)]
    try:
        async with runtime.database.session() as session:
            app_id = await session.scalar(
                select(OAuthApplication.id).where(OAuthApplication.client_id == client_id)
            )
            assert app_id is not None, client_id
            # user codes are unique over every row, expired ones too (start() draws
            # again on a clash): a batch of tens of thousands avoids the ones taken
            taken = set(await session.scalars(select(DeviceAuthorization.user_code)))
            user_codes: list[str] = []
            while len(user_codes) < n:
                drawn = device.new_user_code()
                if drawn not in taken:
                    taken.add(drawn)
                    user_codes.append(drawn)
            rows = [
                {
                    "device_code_hash": runtime.hasher.hash(code),
                    "user_code": user_code,
                    "oauth_application_id": app_id,
                    "scope": SCOPE,
                    "created_at": now,
                    "expires_at": expires_at,
                    "status": device.PENDING,
                    "poll_interval": device.INTERVAL,
                }
                for code, user_code in zip(codes, user_codes, strict=True)
            ]
            for i in range(0, n, 5000):
                await session.execute(insert(DeviceAuthorization), rows[i : i + 5000])
    finally:
        await runtime.close()
    sys.stdout.write("".join(f"{code}\n" for code in codes))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--mint-codes"]:
        import asyncio

        asyncio.run(mint_codes(int(argv[1]), argv[2]))
        return 0
    args = parse_args(argv)
    targets, skipped = build_targets(args)
    if not cf.ready_to_measure(args, targets):
        return 1
    with tempfile.TemporaryDirectory(prefix="onepass-bench-device-") as tmp:
        measure(args, targets, Path(tmp))
    report = report_of(args, targets, skipped)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0 if all(not t.error for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
