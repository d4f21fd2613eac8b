"""Benchmark of ``POST /token`` with ``grant_type=urn:ietf:params:oauth:grant-type:
token-exchange`` (RFC 8693), 1pass against node-oidc-provider 9 in the same run.

Not a test: it measures. See bench/README.md ("Token exchange") for how to read it.

    .venv/bin/python bench/token_exchange.py [--workers N] [--duration S] [--runs N]
        [--warmup S] [--skip-postgres] [--skip-sqlite] [--skip-baseline] [--json]

Targets as bench/rp_paths.py starts them (node-oidc-provider 9 with ES256 JWT access
tokens, 1pass on SQLite, 1pass on PostgreSQL, default settings), each server pinned to
core 0 and wrk to core 1. One workload: a confidential client (client_secret_basic)
exchanges one user access token (the subject token, sent by every request: an exchange
spends nothing) for an access token for the resource ``urn:onepass:bench:api``.

- 1pass: the resource server is registered (``onepass resources create``), the service
  client has the exchange policy (``--token-exchange-resource``), and the subject token
  is a real user's, from a code flow whose scope includes the resource's ``api``. Each
  exchange checks the signature, reads the user and the token's revocation (one
  statement), and signs a new ES256 token.
- node-oidc-provider has no built-in token exchange: bench/node-oidc/server.js registers
  one (``provider.registerGrantType``) that verifies the subject JWT with the provider's
  keys and signs a new one (no storage read). Its subject token is the provider's own
  JWT access token for the resource (client_credentials).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_flow as cf
import rp_paths as rp
import token_endpoint as te
from token_endpoint import BenchError, log

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
RESOURCE = "urn:onepass:bench:api"  # node-oidc-provider's (server.js) and 1pass's
PG_DATABASE = "onepass_bench_exchange"
GOAL = 1.5  # issue 15: >= 1.5x node-oidc-provider


def exchange_body(subject_token: str) -> str:
    return cf.token_form(
        {
            "grant_type": EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN,
            "resource": RESOURCE,
        }
    ).decode()


def start_baseline(args: argparse.Namespace) -> Any:
    start = rp.start_baseline(args)

    def begin(t: rp.Target, workdir: Path) -> None:
        start(t, workdir)
        reply = cf.post_token(
            t.base,
            t.cc_authorization,
            {"grant_type": "client_credentials", "resource": RESOURCE, "scope": "api"},
        )
        if reply.status != 200:
            raise BenchError(f"node client_credentials: HTTP {reply.status}: {reply.body[:300]!r}")
        t.paths["subject"] = json.loads(reply.body)["access_token"]
        t.paths["authorization"] = t.cc_authorization

    return begin


def start_onepass(args: argparse.Namespace, database_url: Any) -> Any:
    def begin(t: rp.Target, workdir: Path) -> None:
        setup = cf.onepass_setup(
            args,
            workdir,
            database_url(workdir),
            user_args=["--name", rp.USER_NAME, "--email-verified"],
            scope=rp.SCOPE + " api",
        )
        cli, env = str(cf.ONEPASS_CLI), setup.server.env

        def run(*argv: str) -> dict[str, Any]:
            proc = subprocess.run([cli, *argv, "--json"], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BenchError(f"onepass {' '.join(argv)}: {proc.stderr.strip()[-1000:]}")
            return dict(json.loads(proc.stdout))

        run("resources", "create", "--identifier", RESOURCE, "--scope", "api")
        scopes = [a for s in [*rp.SCOPE.split(), "api"] for a in ("--scope", s)]
        run("clients", "update", setup.rp_client_id, *scopes)
        service = run("clients", "create", "--name", "exchanger",
                      "--grant-type", "client_credentials", "--scope", "api",
                      "--token-exchange-resource", RESOURCE)  # fmt: skip
        t.server = setup.server
        t.rp_authorization = setup.rp_authorization
        t.rp_client_id = setup.rp_client_id
        t.verifier = setup.verifier
        t.server.start()
        cookie = cf.browser_login(setup)
        (code,) = cf.mint(args, setup, cookie, "authorization_code", 1)[0]
        t.paths["subject"] = rp.exchange_code(t, code)["access_token"]
        t.paths["authorization"] = te.basic_auth(service["client_id"], service["client_secret"])

    return begin


def sanity_check(t: rp.Target, jwks: dict[str, Any]) -> str:
    """One exchange as wrk will send it: 200, issued_token_type, aud the resource, a
    signature that verifies against the server's JWKS."""
    reply = cf.http_call(
        t.base,
        "POST",
        "/token",
        {
            "Authorization": t.paths["authorization"],
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        exchange_body(t.paths["subject"]).encode(),
    )
    if reply.status != 200:
        raise BenchError(f"sanity: HTTP {reply.status}: {reply.body[:300]!r}")
    body = json.loads(reply.body)
    if body.get("issued_token_type") != ACCESS_TOKEN:
        raise BenchError(f"sanity: issued_token_type {body.get('issued_token_type')!r}")
    _, claims = cf.jwt_parts(body["access_token"], "access_token")
    if claims.get("aud") != RESOURCE or claims.get("scope") != "api":
        raise BenchError(f"sanity: aud {claims.get('aud')!r}, scope {claims.get('scope')!r}")
    return f"aud {RESOURCE}, scope api, {te.verify_jws(body['access_token'], jwks)}"


def measure(args: argparse.Namespace, t: rp.Target, workdir: Path) -> None:
    t.start(t, workdir)
    assert t.server is not None
    server = t.server
    discovery = rp.get_json(t.base + rp.DISCOVERY_PATH, "discovery")
    jwks = rp.get_json(discovery["jwks_uri"], "jwks")
    t.sanity = {"exchange": sanity_check(t, jwks)}
    log(f"  sanity: {t.sanity['exchange']}")
    env = {
        "BENCH_AUTHORIZATION": t.paths["authorization"],
        "BENCH_BODY": exchange_body(t.paths["subject"]),
    }
    runs = t.results.setdefault("token_exchange", {"runs": []})["runs"]
    for i in range(args.runs + (1 if args.warmup > 0 else 0)):
        warmup = args.warmup > 0 and i == 0
        before = rp.server_cpu_seconds(server)
        r = cf.run_wrk(args, t.base, cf.BASELINE_LUA, env, args.warmup if warmup else args.duration)
        r["cpu_us_per_req"] = (rp.server_cpu_seconds(server) - before) / max(r["requests"], 1) * 1e6
        label = "warm-up" if warmup else f"run {i + (0 if args.warmup > 0 else 1)}/{args.runs}"
        log(f"  {label} {t.name:<22} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.2f} "
            f"p99 {r['p99_ms']:.2f} ms  {r['cpu_us_per_req']:,.0f} µs CPU/req")  # fmt: skip
        if not warmup:
            runs.append(r)
    server.check_alive()


def report_of(
    args: argparse.Namespace, targets: list[rp.Target], skipped: list[str]
) -> dict[str, Any]:
    rows = []
    for t in targets:
        runs = t.results.get("token_exchange", {"runs": []})["runs"]
        row: dict[str, Any] = {"name": t.name, "server": t.kind, "database": t.database,
                               "sanity": t.sanity, "runs": runs}  # fmt: skip
        if t.error or not runs:
            row["error"] = t.error or "no run"
        else:
            row["median"] = {
                k: statistics.median(r[k] for r in runs) for k in (*te.METRICS, "cpu_us_per_req")
            }
        rows.append(row)
    baseline = next((r for r in rows if r["server"] == "baseline" and "median" in r), None)
    ratios = []
    for r in rows:
        if baseline is not None and r is not baseline and "median" in r:
            ratios.append({
                "target": r["name"], "versus": baseline["name"],
                "throughput": r["median"]["rps"] / baseline["median"]["rps"],
                "p99": r["median"]["p99_ms"] / baseline["median"]["p99_ms"],
            })  # fmt: skip
    return {
        "config": {
            "request": f"POST /token grant_type={EXCHANGE}, resource {RESOURCE}",
            **cf.run_config(args),
        },
        "versions": te.versions(),
        "targets": rows,
        "skipped": skipped,
        "ratios": ratios,
    }


def print_table(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"token exchange (RFC 8693), {cfg['connections']} connections, server on CPU "
        f"{cfg['server_cpus']}, wrk on CPU {cfg['load_cpus']}, 1pass workers={cfg['workers']}, "
        f"median of {cfg['runs']} x {cfg['duration']:g}s"
    )
    header = (
        f"{'target':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>10}  runs (req/s)"
    )
    print(header)
    print("-" * len(header))
    for t in report["targets"]:
        if "error" in t:
            print(f"{t['name']:<22} FAILED: {t['error'].splitlines()[0][:160]}")
            continue
        m = t["median"]
        each = ", ".join(f"{r['rps']:,.0f}" for r in t["runs"])
        print(f"{t['name']:<22} {m['rps']:>9,.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
              f"{m['cpu_us_per_req']:>10,.0f}  {each}")  # fmt: skip
    for s in report["skipped"]:
        print(f"skipped: {s}")
    print()
    for r in report["ratios"]:
        print(f"{r['target']} / {r['versus']}: throughput {r['throughput']:.2f}x, "
              f"p99 {r['p99']:.2f}x  (issue 15: >= {GOAL}x)")  # fmt: skip
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cf.add_options(p)
    p.add_argument("--skip-baseline", action="store_true", help="no node-oidc-provider")
    args = p.parse_args(argv)
    args.id_token_alg = "RS256"  # as users get; the exchange signs no ID token
    cf.check_options(p, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets: list[rp.Target] = []
    skipped: list[str] = []
    if args.skip_baseline:
        skipped.append("node-oidc-provider (--skip-baseline)")
    else:
        targets.append(rp.Target("node-oidc-provider", "baseline", None, start_baseline(args)))
    found, skipped_onepass = cf.onepass_targets(args, PG_DATABASE)
    for name, database, url, cleanup in found:
        targets.append(rp.Target(name, "onepass", database, start_onepass(args, url), cleanup))
    skipped += skipped_onepass
    if not cf.ready_to_measure(args, targets):
        return 2
    with tempfile.TemporaryDirectory(prefix="onepass-bench-exchange-") as tmp:
        for t in targets:
            workdir = Path(tmp) / t.name.replace(" ", "-")
            workdir.mkdir()
            log(f"== {t.name}")
            try:
                measure(args, t, workdir)
            except BenchError as exc:
                t.error = str(exc)
                log(f"  FAILED: {exc}\n  --- server log ---\n{cf.log_tail(workdir / 'server.log')}")
            finally:
                if t.server is not None:
                    t.server.stop()
                t.cleanup()
    report = report_of(args, targets, skipped)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 1 if any("error" in t for t in report["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
