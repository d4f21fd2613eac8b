"""Every path an RP calls: 1pass side by side with node-oidc-provider 9, in one run.

Not a test: it measures. See bench/README.md ("Every path an RP calls: rp_paths.py").

    .venv/bin/python bench/rp_paths.py [--only W,...] [--id-token-alg RS256|ES256]
        [--duration S] [--runs N] [--warmup S] [--skip-baseline] [--skip-sqlite]
        [--skip-postgres] [--json]

Workloads: client_credentials, refresh_token (rotation, each token once),
authorization_code (PKCE S256, each code once), userinfo (GET, Bearer access token), jwks
(GET of the discovery document's jwks_uri) and discovery (GET
/.well-known/openid-configuration). Targets: node-oidc-provider 9 (bench/node-oidc, its
in-memory adapter, configured as 1pass is), 1pass on SQLite and 1pass on PostgreSQL. Every
server is started once, pinned to core 0; wrk runs on core 1 (32 connections, 2 threads).
After one sanity check per workload and target and a warm-up, each of ``--runs`` rounds
measures every workload on every target in turn, so that a disturbance of the machine
hits all of them alike. Codes and refresh tokens are minted fresh before every run
(bench/code_flow.py's way for 1pass, POST /bench/mint for node-oidc-provider) and sent
once each. It reports per workload and target the median req/s, p50/p95/p99 and server
CPU per request, and 1pass's ratios to node-oidc-provider against issue 12's targets.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_flow as cf  # bench/code_flow.py, found through sys.path
import token_endpoint as te  # bench/token_endpoint.py
from token_endpoint import METRICS, BenchError, Server, basic_auth, cpu_set, log

WORKLOADS = (
    "client_credentials",
    "refresh_token",
    "authorization_code",
    "userinfo",
    "jwks",
    "discovery",
)
SINGLE_USE = ("refresh_token", "authorization_code")
REQUESTS = {
    "client_credentials": "POST /token grant_type=client_credentials (client_secret_basic)",
    "refresh_token": "POST /token grant_type=refresh_token (rotation, each token once)",
    "authorization_code": "POST /token grant_type=authorization_code (PKCE S256, each code once)",
    "userinfo": "GET /userinfo, Authorization: Bearer (scope openid email profile)",
    "jwks": "GET jwks_uri",
    "discovery": "GET /.well-known/openid-configuration",
}
SCOPE = "openid offline_access email profile"
USER_NAME = "Bench User"
USERINFO_TOKENS = 256  # access tokens sent round robin at /userinfo (they are reusable)
PG_DATABASE = "onepass_bench_rp"
DISCOVERY_PATH = "/.well-known/openid-configuration"
SQLITE_GRANT_P99_MS = 250.0  # issue 12: SQLite's code and refresh grants under 32 connections


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One server under load, started once for the whole run."""

    name: str
    kind: str  # "baseline" or "onepass" (token_endpoint.preflight reads it)
    database: str | None
    start: Callable[[Target, Path], None]  # sets server, authorizations, mint; starts it
    cleanup: Callable[[], None] = lambda: None
    server: Server | None = None
    cc_authorization: str = ""
    rp_authorization: str = ""
    rp_client_id: str = ""
    verifier: str = ""
    idle_path: str = "/up"  # a GET that answers 200, for code_flow.lua's used-up slices
    mint: Callable[[str, int], list[str]] = lambda _grant, _n: []
    paths: dict[str, str] = field(default_factory=dict)  # jwks, discovery, userinfo
    userinfo_tokens_file: Path | None = None
    states: dict[str, cf.GrantState] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # by workload
    sanity: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.base_url


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def start_baseline(args: argparse.Namespace) -> Callable[[Target, Path], None]:
    def start(t: Target, workdir: Path) -> None:
        port = te.free_port()
        env = {
            **os.environ,
            "NODE_ENV": "production",
            "BENCH_CLIENT_ID": te.BASELINE_CLIENT_ID,
            "BENCH_CLIENT_SECRET": te.BASELINE_CLIENT_SECRET,
            "BENCH_REDIRECT_URI": cf.REDIRECT_URI,
            "BENCH_SCOPE": SCOPE,
            "BENCH_MINT": "1",
        }
        cmd = [
            "taskset", "-c", args.server_cpus,
            "node", "server.js", "--host", "127.0.0.1", "--port", str(port),
            "--alg", "ES256", "--id-token-alg", args.id_token_alg,
        ]  # fmt: skip
        ready = f"http://127.0.0.1:{port}{DISCOVERY_PATH}"
        t.server = Server(t.name, cmd, env, te.NODE_DIR, workdir / "server.log", ready)
        t.cc_authorization = t.rp_authorization = basic_auth(
            te.BASELINE_CLIENT_ID, te.BASELINE_CLIENT_SECRET
        )
        t.rp_client_id = te.BASELINE_CLIENT_ID
        t.verifier = secrets.token_urlsafe(48)  # 64 characters, as code_flow.Setup's
        t.idle_path = DISCOVERY_PATH

        def mint(grant: str, n: int) -> list[str]:
            kind = {"authorization_code": "code", "refresh_token": "refresh"}.get(grant, "access")
            query = {"kind": kind, "n": str(n)}
            if kind == "code":
                query["code_challenge"] = pkce_challenge(t.verifier)
            reply = cf.http_call(t.base, "POST", f"/bench/mint?{urlencode(query)}")
            tokens = reply.body.decode().split()
            if reply.status != 200 or len(tokens) != n:
                raise BenchError(
                    f"POST /bench/mint ({kind} x {n}): HTTP {reply.status}, {len(tokens)} "
                    f"tokens: {reply.body[:300]!r}"
                )
            return tokens

        t.mint = mint
        t.server.start()

    return start


def start_onepass(
    args: argparse.Namespace, database_url: Callable[[Path], str]
) -> Callable[[Target, Path], None]:
    def start(t: Target, workdir: Path) -> None:
        setup = cf.onepass_setup(
            args,
            workdir,
            database_url(workdir),
            user_args=["--name", USER_NAME, "--email-verified"],
            scope=SCOPE,
        )
        t.server = setup.server
        t.cc_authorization = setup.cc_authorization
        t.rp_authorization = setup.rp_authorization
        t.rp_client_id = setup.rp_client_id
        t.verifier = setup.verifier
        t.server.start()
        session_cookie = cf.browser_login(setup)

        def mint(grant: str, n: int) -> list[str]:
            if grant in SINGLE_USE:
                return cf.mint(args, setup, session_cookie, grant, n)[0]
            # access tokens for /userinfo: the code exchange's, one code each
            codes = cf.mint(args, setup, session_cookie, "authorization_code", n)[0]
            return [exchange_code(t, code)["access_token"] for code in codes]

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
    skipped += skipped_onepass
    return targets, skipped


# --------------------------------------------------------------------------- sanity


def exchange_code(t: Target, code: str) -> dict[str, Any]:
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": cf.REDIRECT_URI,
        "code_verifier": t.verifier,
    }
    reply = cf.post_token(t.base, t.rp_authorization, fields)
    if reply.status != 200:
        raise BenchError(f"code exchange: HTTP {reply.status}: {reply.body[:300]!r}")
    return dict(json.loads(reply.body))


def check_grant(
    args: argparse.Namespace, t: Target, fields: dict[str, str], jwks: dict[str, Any]
) -> dict[str, Any]:
    """One grant with a fresh token: 200 with an ES256 JWT access token, a verified ID
    token of the chosen alg for the client, a new refresh token; the same request again
    answers 400 invalid_grant."""
    grant = fields["grant_type"]
    reply = cf.post_token(t.base, t.rp_authorization, fields)
    if reply.status != 200:
        raise BenchError(f"sanity {grant}: HTTP {reply.status}: {reply.body[:500]!r}")
    body = json.loads(reply.body)
    missing = [k for k in ("access_token", "id_token", "refresh_token") if not body.get(k)]
    if missing or body["refresh_token"] == fields.get("refresh_token"):
        raise BenchError(f"sanity {grant}: no (new) {missing or 'refresh_token'}: {sorted(body)}")
    at_header, _ = cf.jwt_parts(body["access_token"], "access_token")
    id_header, id_claims = cf.jwt_parts(body["id_token"], "id_token")
    if at_header.get("alg") != "ES256" or id_header.get("alg") != args.id_token_alg:
        raise BenchError(
            f"sanity {grant}: access token alg {at_header.get('alg')}, ID token alg "
            f"{id_header.get('alg')} (expected ES256 and {args.id_token_alg})"
        )
    if id_claims.get("aud") not in (t.rp_client_id, [t.rp_client_id]):
        raise BenchError(f"sanity {grant}: the ID token's aud is {id_claims.get('aud')!r}")
    again = cf.post_token(t.base, t.rp_authorization, fields)
    error = json.loads(again.body).get("error") if again.body.startswith(b"{") else None
    if again.status != 400 or error != "invalid_grant":
        raise BenchError(
            f"sanity {grant}: the same token a second time answered HTTP {again.status} "
            f"{again.body[:200]!r}, expected 400 invalid_grant"
        )
    return {
        "fields": sorted(body),
        "access_token_alg": at_header.get("alg"),
        "id_token_alg": id_header.get("alg"),
        "id_token_claims": sorted(id_claims),
        "id_token_signature": te.verify_jws(body["id_token"], jwks),
        "second_use": f"HTTP {again.status} {error}",
        "response_bytes": len(reply.body),
    }


def get_json(url: str, what: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    parts = urlsplit(url)
    reply = cf.http_call(f"{parts.scheme}://{parts.netloc}", "GET", parts.path, headers)
    if reply.status != 200:
        raise BenchError(f"sanity {what}: GET {parts.path}: HTTP {reply.status}")
    return dict(json.loads(reply.body))


def sanity_check(args: argparse.Namespace, t: Target, workdir: Path) -> dict[str, Any]:
    """Every workload once, as wrk will send it; and the paths and userinfo tokens."""
    discovery = get_json(t.base + DISCOVERY_PATH, "discovery")
    if discovery.get("issuer") != t.base:
        raise BenchError(f"sanity discovery: issuer {discovery.get('issuer')!r}, not {t.base}")
    t.paths = {
        "discovery": DISCOVERY_PATH,
        "jwks": urlsplit(discovery["jwks_uri"]).path,
        "userinfo": urlsplit(discovery["userinfo_endpoint"]).path,
    }
    jwks = get_json(discovery["jwks_uri"], "jwks")
    out: dict[str, Any] = {
        "discovery": {"issuer": discovery["issuer"]},
        "jwks": {"keys": [f"{k.get('kty')} {k.get('alg')} {k.get('kid')}" for k in jwks["keys"]]},
        "client_credentials": te.sanity_check(t.base, t.cc_authorization, "ES256"),
    }
    if "authorization_code" in args.only:
        (code,) = t.mint("authorization_code", 1)
        out["authorization_code"] = check_grant(
            args,
            t,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": cf.REDIRECT_URI,
                "code_verifier": t.verifier,
            },
            jwks,
        )
    if "refresh_token" in args.only:
        (refresh,) = t.mint("refresh_token", 1)
        out["refresh_token"] = check_grant(
            args, t, {"grant_type": "refresh_token", "refresh_token": refresh}, jwks
        )
    if "userinfo" in args.only:
        started = time.monotonic()
        tokens = t.mint("userinfo", USERINFO_TOKENS)
        log(f"  minted {len(tokens)} userinfo access tokens in {time.monotonic() - started:.1f}s")
        t.userinfo_tokens_file = workdir / "userinfo-tokens.txt"
        t.userinfo_tokens_file.write_text("\n".join(tokens) + "\n")
        claims = get_json(
            t.base + t.paths["userinfo"], "userinfo", {"Authorization": f"Bearer {tokens[-1]}"}
        )
        if not all(claims.get(k) for k in ("sub", "email", "name")):
            raise BenchError(f"sanity userinfo: no sub, email and name in {claims}")
        out["userinfo"] = {"claims": sorted(claims), "token_bytes": len(tokens[-1])}
    return out


def sanity_summary(sanity: dict[str, Any]) -> str:
    parts = [f"{len(sanity['jwks']['keys'])} keys in the JWKS"]
    for grant in SINGLE_USE:
        if grant in sanity:
            g = sanity[grant]
            parts.append(
                f"{grant}: access token {g['access_token_alg']}, ID token {g['id_token_alg']} "
                f"({g['id_token_signature']}), second use {g['second_use']}"
            )
    if "userinfo" in sanity:
        parts.append(f"userinfo claims {', '.join(sanity['userinfo']['claims'])}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- runs


def server_cpu_seconds(server: Server) -> float:
    """utime + stime of every process in the server's session (its workers too)."""
    assert server.proc is not None
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # fields after "(comm)": state ppid pgrp session ... utime (12th) stime (13th)
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == server.proc.pid:
                ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def run_workload(
    args: argparse.Namespace, t: Target, workload: str, seconds: float, warmup: bool
) -> dict[str, Any]:
    assert t.server is not None
    server = t.server
    server.check_alive()

    def wrk(script: Path, env: dict[str, str]) -> Callable[[float], dict[str, Any]]:
        def run(s: float) -> dict[str, Any]:
            before = server_cpu_seconds(server)
            r = cf.run_wrk(args, t.base, script, env, s)
            r["cpu_us_per_req"] = (server_cpu_seconds(server) - before) / r["requests"] * 1e6
            return r

        return run

    if workload == "client_credentials":
        return wrk(cf.BASELINE_LUA, {"BENCH_AUTHORIZATION": t.cc_authorization})(seconds)
    if workload in ("jwks", "discovery"):
        return wrk(cf.BASELINE_LUA, {"BENCH_METHOD": "GET", "BENCH_PATH": t.paths[workload]})(
            seconds
        )
    tokens_file = t.userinfo_tokens_file
    env = {"BENCH_BEARER": "1", "BENCH_CYCLE": "1", "BENCH_PATH": t.paths["userinfo"]}
    if workload in SINGLE_USE:
        tokens_file = Path(server.log_path.parent / f"{cf.SHORT[workload]}-tokens.txt")
        env = cf.single_use_env(workload, t.verifier, t.rp_authorization)
    assert tokens_file is not None
    env.update({"BENCH_TOKENS_FILE": str(tokens_file), "BENCH_IDLE_PATH": t.idle_path})
    if workload == "userinfo":
        return wrk(cf.LUA_SCRIPT, env)(seconds)

    def mint_batch(n: int) -> list[str]:
        started = time.monotonic()
        tokens = t.mint(workload, n)
        took = time.monotonic() - started
        log(f"    minted {n:,} {cf.SHORT[workload]} tokens in {took:.1f}s ({n / took:,.0f}/s)")
        if len(set(tokens)) != len(tokens):
            raise BenchError(f"minting gave {len(tokens) - len(set(tokens))} duplicate tokens")
        server.check_alive()
        return tokens

    state = t.states.setdefault(workload, cf.GrantState(workload))
    return cf.run_single_use(
        args, state, seconds, warmup, tokens_file, mint_batch, wrk(cf.LUA_SCRIPT, env)
    )


def attempt(args: argparse.Namespace, t: Target, workload: str, seconds: float, label: str) -> None:
    """One run (or warm-up) of one workload on one target; a failure drops that pair."""
    result = t.results.setdefault(workload, {"runs": []})
    if "error" in result or t.error:
        return
    warmup = label == "warm-up"
    try:
        r = run_workload(args, t, workload, seconds, warmup)
    except BenchError as exc:
        result["error"] = str(exc)
        log(f"  FAILED {t.name} {workload}: {exc}")
        if t.server is not None:
            log(f"  --- server log (last lines) ---\n{cf.log_tail(t.server.log_path, 20)}")
        return
    log(
        f"  {label} {t.name:<18} {workload:<18} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.2f} "
        f"p99 {r['p99_ms']:.2f} ms  {r['cpu_us_per_req']:,.0f} µs CPU/req"
    )
    if not warmup:
        result["runs"].append(r)


# --------------------------------------------------------------------------- report


def goal(args: argparse.Namespace, workload: str, database: str | None) -> dict[str, Any]:
    """Issue 12's target for one 1pass row against node-oidc-provider."""
    ratio = 1.5
    if workload == "client_credentials":
        ratio = 2.0
    elif workload in SINGLE_USE and args.id_token_alg == "RS256":
        ratio = 1.25
    p99_ms = SQLITE_GRANT_P99_MS if database == "sqlite" and workload in SINGLE_USE else None
    text = f">= {ratio:g}x, p99 <= NOP" + (f", p99 <= {p99_ms:g} ms" if p99_ms else "")
    return {"throughput": ratio, "p99_ms": p99_ms, "text": text}


def summarize(args: argparse.Namespace, targets: list[Target]) -> dict[str, Any]:
    workloads: dict[str, dict[str, Any]] = {}
    for w in args.only:
        rows: dict[str, Any] = {}
        for t in targets:
            res = t.results.get(w, {"runs": []})
            row: dict[str, Any] = {"runs": res["runs"]}
            if t.error or "error" in res or not res["runs"]:
                row["error"] = t.error or res.get("error", "no run")
            else:
                row["median"] = {
                    m: statistics.median(r[m] for r in res["runs"])
                    for m in (*METRICS, "cpu_us_per_req")
                }
                row["discarded_runs"] = t.states[w].retries if w in t.states else 0
            rows[t.name] = row
        nop = rows.get("node-oidc-provider", {}).get("median")
        for t in targets:
            m = rows[t.name].get("median")
            if t.kind != "onepass" or not m or not nop:
                continue
            g = goal(args, w, t.database)
            tp = m["rps"] / nop["rps"]
            p99 = m["p99_ms"] / nop["p99_ms"]
            met = tp >= g["throughput"] and p99 <= 1 and m["p99_ms"] <= (g["p99_ms"] or m["p99_ms"])
            rows[t.name]["vs_nop"] = {"throughput": tp, "p99": p99, "goal": g["text"], "met": met}
        workloads[w] = rows
    return workloads


def print_json(report: dict[str, Any]) -> None:
    print(json.dumps(report, indent=2))


def print_table(report: dict[str, Any]) -> None:
    cfg = report["config"]
    setting = (
        f"{cfg['connections']} connections",
        f"servers on CPU {cfg['server_cpus']}",
        f"wrk on CPU {cfg['load_cpus']}",
        f"1pass workers={cfg['workers']}",
        f"ID tokens {cfg['id_token_alg']}",
        f"median of {cfg['runs']} x {cfg['duration']:g}s",
    )
    print("Every path an RP calls: " + ", ".join(setting))
    for w, rows in report["workloads"].items():
        print(f"\n{w}: {REQUESTS[w]}")
        header = (
            f"{'target':<19} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>10}"
            f" {'vs NOP':>7} {'p99 vs':>7}  {'target':<41} {'met':<4} runs (req/s)"
        )
        print(header)
        print("-" * len(header))
        for name, row in rows.items():
            if "error" in row:
                print(f"{name:<19} FAILED: {row['error'].splitlines()[0][:160]}")
                continue
            m, v = row["median"], row.get("vs_nop")
            cells = [
                f"{name:<19}",
                f"{m['rps']:>8,.0f}",
                f"{m['p50_ms']:>8.2f}",
                f"{m['p99_ms']:>8.2f}",
                f"{m['cpu_us_per_req']:>10,.0f}",
                f"{v['throughput']:>6.2f}x" if v else " " * 7,
                f"{v['p99']:>6.2f}x " if v else " " * 8,
                f"{v['goal']:<41}" if v else " " * 41,
                f"{('yes' if v['met'] else 'NO') if v else '':<4}",
                ", ".join(f"{r['rps']:,.0f}" for r in row["runs"]),
            ]
            print(" ".join(cells))
    for s in report["skipped"]:
        print(f"skipped: {s}")
    for t in report["targets"]:
        for p in t.get("server_log_problems", []):
            print(f"{t['name']}: server log, {p['count']}x: {p['problem']}")
    print(
        "\nCPU µs/req: the server's processes (utime+stime from /proc) over the run, divided by "
        "its requests; PostgreSQL's own backends are not in it."
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cf.add_options(p)
    p.add_argument(
        "--only",
        default=",".join(WORKLOADS),
        help=f"comma-separated workloads to measure (default all: {','.join(WORKLOADS)})",
    )
    p.add_argument(
        "--id-token-alg",
        choices=("RS256", "ES256"),
        default="RS256",
        help="ID token alg on both sides (default RS256)",
    )
    p.add_argument("--skip-baseline", action="store_true", help="no node-oidc-provider")
    args = p.parse_args(argv)
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    if not only or not only <= set(WORKLOADS):
        p.error(f"--only: workloads among {', '.join(WORKLOADS)}, not {args.only!r}")
    args.only = [w for w in WORKLOADS if w in only]
    cf.check_options(p, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets, skipped = build_targets(args)
    if not cf.ready_to_measure(args, targets):
        return 2

    with tempfile.TemporaryDirectory(prefix="onepass-bench-rp-") as tmp:
        try:
            for t in targets:
                workdir = Path(tmp) / t.name.replace(" ", "-")
                workdir.mkdir()
                log(f"== {t.name}: start and sanity checks")
                try:
                    t.start(t, workdir)
                    assert t.server is not None
                    cpus = t.server.affinity()
                    if any(cpu_set(c) != cpu_set(args.server_cpus) for c in cpus.values()):
                        raise BenchError(f"the server's processes are not all on CPUs: {cpus}")
                    t.sanity = sanity_check(args, t, workdir)
                    t.sanity["server_processes"] = len(cpus)
                    log(f"  sanity: {sanity_summary(t.sanity)}")
                except BenchError as exc:
                    t.error = str(exc)
                    log(f"  FAILED: {exc}")
                    log(f"  --- server log (last lines) ---\n{cf.log_tail(workdir / 'server.log')}")
            live = [t for t in targets if not t.error]
            if args.warmup > 0:
                log(f"== warm-up, {args.warmup:g}s each")
                for w in args.only:
                    for t in live:
                        attempt(args, t, w, args.warmup, "warm-up")
            # every target's workload in turn, round by round: drift hits all alike
            for i in range(args.runs):
                log(f"== round {i + 1}/{args.runs}")
                for w in args.only:
                    for t in live:
                        attempt(args, t, w, args.duration, f"run {i + 1}")
        finally:
            for t in targets:
                if t.server is not None:
                    t.server.stop()
                t.cleanup()
        problems = {t.name: cf.server_log_problems(t.server.log_path) for t in targets if t.server}

    workloads = summarize(args, targets)
    failed = any("error" in row for rows in workloads.values() for row in rows.values())
    report = {
        "config": {
            "workloads": {w: REQUESTS[w] for w in args.only},
            "scope": SCOPE,
            "id_token_alg": args.id_token_alg,
            "access_token_alg": "ES256",
            "userinfo_tokens": USERINFO_TOKENS,
            **cf.run_config(args),
        },
        "versions": te.versions(),
        "targets": [
            {
                "name": t.name,
                "server": t.kind,
                "database": t.database,
                "sanity": t.sanity,
                "server_log_problems": problems.get(t.name, []),
                **({"error": t.error} if t.error else {}),
            }
            for t in targets
        ],
        "workloads": workloads,
        "skipped": skipped,
    }
    (print_json if args.json else print_table)(report)
    if not failed:
        return 0
    log("\nFAILED: at least one workload could not be measured on a target (see above)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
