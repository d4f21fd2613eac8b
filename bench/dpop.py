"""Benchmark of ``POST /token`` with DPoP proofs (RFC 9449), 1pass against
node-oidc-provider 9, and against the same grants without DPoP on the same server.

Not a test: it measures. See bench/README.md ("DPoP") for what it does and how to read it.

    .venv/bin/python bench/dpop.py [--only W,...] [--workers N] [--duration S] [--runs N]
        [--warmup S] [--skip-postgres] [--skip-sqlite] [--skip-baseline] [--json]

Targets as bench/rp_paths.py starts them (node-oidc-provider 9 with ES256 JWT access
tokens and its default ``features.dPoP``, 1pass on SQLite, 1pass on PostgreSQL), each
server pinned to core 0 and wrk to core 1. Four workloads per target, taking turns in
each round:

- ``client_credentials`` (Bearer, token.lua) and ``client_credentials+dpop``: the same
  request with a ``DPoP`` header;
- ``refresh_token`` (a confidential client, client_secret_basic, rotation, each refresh
  token once, as bench/rp_paths.py) and ``refresh_token+dpop``: the same with a proof,
  which binds the new access token to the proof's key (a confidential client's refresh
  tokens are not bound, on either server).

Every DPoP request carries a fresh proof (a unique ``jti``, the current ``iat``, ``htm``
POST, ``htu`` the server's token endpoint), signed ES256 by one client key. wrk cannot
sign, so the proofs are made by this script just before each run (after its refresh
tokens are minted, so that none is stale), written one a line (``TOKEN<TAB>PROOF`` for
refreshes), and sent each once by code_flow.lua (``BENCH_DPOP=1``, ``BENCH_DPOP_TOKENS=1``);
a run that uses them all up is discarded and repeated with more, as code_flow.py does
for codes. Both servers refuse a replayed proof, so no proof is ever sent twice.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_flow as cf
import rp_paths as rp
import token_endpoint as te
from token_endpoint import BenchError, cpu_set, log

CC = "client_credentials"
CC_DPOP = "client_credentials+dpop"
REFRESH = "refresh_token"
REFRESH_DPOP = "refresh_token+dpop"
WORKLOADS = (CC, CC_DPOP, REFRESH, REFRESH_DPOP)
DPOP_OF = {CC_DPOP: CC, REFRESH_DPOP: REFRESH}  # each DPoP workload and its plain twin
REQUESTS = {
    CC: "POST /token grant_type=client_credentials (client_secret_basic), Bearer",
    CC_DPOP: "the same with a DPoP proof: a DPoP-bound access token",
    REFRESH: "POST /token grant_type=refresh_token (client_secret_basic, rotation, each "
    "token once), Bearer",
    REFRESH_DPOP: "the same with a DPoP proof: a DPoP-bound access token",
}
PG_DATABASE = "onepass_bench_dpop"
PROOF_WINDOW = 60  # s: 1pass's default ONEPASS_DPOP_PROOF_WINDOW (node-oidc-provider: 300)
MAX_DURATION = 40.0  # s: a run's proofs are made just before it and must stay in the window
INITIAL_RATE_GUESS = {CC_DPOP: 1000.0, REFRESH: 300.0, REFRESH_DPOP: 300.0}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class ProofMaker:
    """One client's ES256 key and the proofs it signs (``cryptography`` straight: some
    30,000 a second on one core, so making them stays short of the runs they feed)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        # RFC 7638: the required members, sorted, no whitespace
        self.jkt = b64url(hashlib.sha256(compact_json(self.jwk)).digest())
        self.header = b64url(compact_json({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}))

    def proofs(self, htu: str, n: int) -> list[str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        out = []
        for _ in range(n):
            claims = {
                "jti": secrets.token_urlsafe(16),
                "htm": "POST",
                "htu": htu,
                "iat": int(time.time()),
            }
            signing_input = f"{self.header}.{b64url(compact_json(claims))}"
            r, s = decode_dss_signature(
                self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
            )
            out.append(f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}")
        return out

    def proof(self, base_url: str) -> str:
        return self.proofs(f"{base_url}/token", 1)[0]


def post_token(
    base_url: str, authorization: str, fields: dict[str, str], proof: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {
        "Authorization": authorization,
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    if proof is not None:
        headers["DPoP"] = proof
    reply = cf.http_call(base_url, "POST", "/token", headers, cf.token_form(fields))
    try:
        body = json.loads(reply.body or b"{}")
    except ValueError:
        body = {"unparsed": reply.body[:300].decode(errors="replace")}
    return reply.status, body if isinstance(body, dict) else {"body": body}


def check_bound(
    what: str, status: int, body: dict[str, Any], maker: ProofMaker, jwks: dict[str, Any]
) -> str:
    """200, token_type DPoP, a JWT access token whose cnf.jkt is the key's thumbprint and
    whose signature verifies against the server's JWKS; returns the verdict."""
    if status != 200:
        raise BenchError(f"sanity {what}: HTTP {status}: {body}")
    if str(body.get("token_type", "")).lower() != "dpop":
        raise BenchError(f"sanity {what}: token_type {body.get('token_type')!r}, not DPoP")
    _, claims = cf.jwt_parts(body["access_token"], "access_token")
    if claims.get("cnf") != {"jkt": maker.jkt}:
        raise BenchError(f"sanity {what}: cnf {claims.get('cnf')!r}, not {{'jkt': {maker.jkt}}}")
    return te.verify_jws(body["access_token"], jwks)


def sanity_check(
    args: argparse.Namespace, t: rp.Target, maker: ProofMaker, jwks: dict[str, Any]
) -> dict[str, Any]:
    """Each workload once as wrk will send it, and that both servers refuse a replayed
    proof (which the DPoP workloads rely on) for the reason of the proof alone."""
    base, out = t.base, {}
    cc = {"grant_type": "client_credentials"}
    if CC_DPOP in args.only or CC in args.only:
        proof = maker.proof(base)
        status, body = post_token(base, t.cc_authorization, cc, proof)
        verdict = check_bound(CC_DPOP, status, body, maker, jwks)
        replayed, refusal = post_token(base, t.cc_authorization, cc, proof)
        if replayed != 400:
            raise BenchError(f"sanity {CC_DPOP}: a replayed proof answered HTTP {replayed}")
        bearer, plain = post_token(base, t.cc_authorization, cc, None)
        if bearer != 200 or str(plain.get("token_type")).lower() != "bearer":
            raise BenchError(f"sanity {CC}: HTTP {bearer}: {plain}")
        out[CC_DPOP] = {"cnf": "jkt ok", "signature": verdict, "replay": refusal.get("error")}
    if REFRESH in args.only:
        (token,) = t.mint(REFRESH, 1)
        fields = {"grant_type": "refresh_token", "refresh_token": token}
        out[REFRESH] = rp.check_grant(args, t, fields, jwks)  # rotated, once only
    if REFRESH_DPOP in args.only:
        first, second = t.mint(REFRESH, 2)
        proof = maker.proof(base)
        fields = {"grant_type": "refresh_token", "refresh_token": first}
        status, body = post_token(base, t.rp_authorization, fields, proof)
        verdict = check_bound(REFRESH_DPOP, status, body, maker, jwks)
        successor = body.get("refresh_token")
        if not successor or successor == first:
            raise BenchError(f"sanity {REFRESH_DPOP}: the refresh token was not rotated")
        # the same proof with another, unused refresh token: refused for the proof...
        other = {"grant_type": "refresh_token", "refresh_token": second}
        replayed, refusal = post_token(base, t.rp_authorization, other, proof)
        if replayed != 400:
            raise BenchError(f"sanity {REFRESH_DPOP}: a replayed proof answered HTTP {replayed}")
        # ...since that token, with a fresh proof, still works
        status, again = post_token(base, t.rp_authorization, other, maker.proof(base))
        check_bound(f"{REFRESH_DPOP} (after the replay)", status, again, maker, jwks)
        # a confidential client's refresh token is not bound: its successor refreshes
        # without a proof (recorded, not required)
        unbound, plain = post_token(
            base,
            t.rp_authorization,
            {"grant_type": "refresh_token", "refresh_token": successor},
            None,
        )
        out[REFRESH_DPOP] = {
            "cnf": "jkt ok",
            "signature": verdict,
            "fields": sorted(body),
            "replay": f"HTTP {replayed} {refusal.get('error')}",
            "successor_without_proof": (
                f"HTTP {unbound} {plain.get('token_type') or plain.get('error')}"
            ),
        }
    return out


def sanity_summary(sanity: dict[str, Any]) -> str:
    parts = []
    if CC_DPOP in sanity:
        s = sanity[CC_DPOP]
        parts.append(f"{CC_DPOP}: cnf.jkt ok, {s['signature']}, replay refused ({s['replay']})")
    if REFRESH in sanity:
        parts.append(f"{REFRESH}: rotated, second use {sanity[REFRESH]['second_use']}")
    if REFRESH_DPOP in sanity:
        s = sanity[REFRESH_DPOP]
        parts.append(
            f"{REFRESH_DPOP}: cnf.jkt ok, {s['signature']}, replayed proof {s['replay']} "
            f"(the token then refreshed with a fresh one), the rotated token without a proof "
            f"{s['successor_without_proof']}"
        )
    return "; ".join(parts)


# --------------------------------------------------------------------------- runs


def run_workload(
    args: argparse.Namespace,
    t: rp.Target,
    maker: ProofMaker,
    workload: str,
    seconds: float,
    warmup: bool,
) -> dict[str, Any]:
    assert t.server is not None
    server, base = t.server, t.base
    server.check_alive()

    def wrk(script: Path, env: dict[str, str]) -> Any:
        def run(s: float) -> dict[str, Any]:
            before = rp.server_cpu_seconds(server)
            r = cf.run_wrk(args, base, script, env, s)
            r["cpu_us_per_req"] = (rp.server_cpu_seconds(server) - before) / r["requests"] * 1e6
            return r

        return run

    if workload == CC:
        return wrk(cf.BASELINE_LUA, {"BENCH_AUTHORIZATION": t.cc_authorization})(seconds)
    tokens_file = server.log_path.parent / f"{workload.replace('+', '-')}.txt"
    if workload == CC_DPOP:
        env = {
            "BENCH_DPOP": "1",
            "BENCH_AUTHORIZATION": t.cc_authorization,
            "BENCH_BODY_PREFIX": "grant_type=client_credentials",
            "BENCH_BODY_SUFFIX": "",
        }
    else:
        env = cf.single_use_env(REFRESH, t.verifier, t.rp_authorization)
        if workload == REFRESH_DPOP:
            env["BENCH_DPOP_TOKENS"] = "1"
    env.update({"BENCH_TOKENS_FILE": str(tokens_file), "BENCH_IDLE_PATH": t.idle_path})

    def mint_batch(n: int) -> list[str]:
        lines: list[str] = []
        if workload in (REFRESH, REFRESH_DPOP):
            started = time.monotonic()
            lines = t.mint(REFRESH, n)
            took = time.monotonic() - started
            log(f"    minted {n:,} refresh tokens in {took:.1f}s ({n / took:,.0f}/s)")
            if len(set(lines)) != n:
                raise BenchError(f"minting gave {n - len(set(lines))} duplicate refresh tokens")
            server.check_alive()
        if workload in DPOP_OF:
            # made last, just before the run: their iat is now
            started = time.monotonic()
            proofs = maker.proofs(f"{base}/token", n)
            log(f"    made {n:,} proofs in {time.monotonic() - started:.1f}s")
            lines = [f"{a}\t{b}" for a, b in zip(lines, proofs, strict=True)] if lines else proofs
        return lines

    state = t.states.setdefault(
        workload, cf.GrantState(workload, INITIAL_RATE_GUESS.get(workload, 300.0))
    )
    return cf.run_single_use(
        args, state, seconds, warmup, tokens_file, mint_batch, wrk(cf.LUA_SCRIPT, env)
    )


def attempt(
    args: argparse.Namespace, t: rp.Target, maker: ProofMaker, workload: str, label: str
) -> None:
    """One run (or warm-up) of one workload on one target; a failure drops that pair."""
    result = t.results.setdefault(workload, {"runs": []})
    if "error" in result:
        return
    warmup = label == "warm-up"
    try:
        r = run_workload(args, t, maker, workload, args.warmup if warmup else args.duration, warmup)
    except BenchError as exc:
        result["error"] = str(exc)
        log(f"  FAILED {t.name} {workload}: {exc}")
        if t.server is not None:
            log(f"  --- server log (last lines) ---\n{cf.log_tail(t.server.log_path, 20)}")
        return
    log(
        f"  {label} {t.name:<18} {workload:<24} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:.2f} "
        f"p99 {r['p99_ms']:.2f} ms  {r['cpu_us_per_req']:,.0f} µs CPU/req"
    )
    if not warmup:
        result["runs"].append(r)


def measure(args: argparse.Namespace, t: rp.Target, workdir: Path) -> None:
    maker = ProofMaker()
    t.start(t, workdir)
    assert t.server is not None
    cpus = t.server.affinity()
    if any(cpu_set(c) != cpu_set(args.server_cpus) for c in cpus.values()):
        raise BenchError(f"the server's processes are not all on CPUs {args.server_cpus}")
    discovery = rp.get_json(t.base + rp.DISCOVERY_PATH, "discovery")
    jwks = rp.get_json(discovery["jwks_uri"], "jwks")
    t.sanity = sanity_check(args, t, maker, jwks)
    log(f"  sanity: {sanity_summary(t.sanity)}")
    if args.warmup > 0:
        for workload in args.only:
            attempt(args, t, maker, workload, "warm-up")
    # the workloads take turns run by run, so that a disturbance hits all of them alike
    for i in range(args.runs):
        for workload in args.only:
            attempt(args, t, maker, workload, f"run {i + 1}/{args.runs}")
    t.server.check_alive()


# --------------------------------------------------------------------------- report


def median(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in (*te.METRICS, "cpu_us_per_req")}


def report_of(
    args: argparse.Namespace, targets: list[rp.Target], skipped: list[str]
) -> dict[str, Any]:
    rows = []
    for t in targets:
        workloads: dict[str, Any] = {}
        for w in args.only:
            res = t.results.get(w, {"runs": []})
            if t.error or "error" in res or not res["runs"]:
                workloads[w] = {"error": t.error or res.get("error", "no run"), "runs": res["runs"]}
            else:
                state = t.states.get(w)
                workloads[w] = {
                    "runs": res["runs"],
                    "median": median(res["runs"]),
                    "discarded_runs": state.retries if state else 0,
                }
        rows.append(
            {
                "name": t.name,
                "server": t.kind,
                "database": t.database,
                "sanity": t.sanity,
                "workloads": workloads,
                **({"error": t.error} if t.error else {}),
            }
        )
    baseline = next((r for r in rows if r["server"] == "baseline"), None)
    ratios = []
    for r in rows:
        own = r["workloads"]
        for dpop, plain in DPOP_OF.items():
            if "median" in own.get(dpop, {}) and "median" in own.get(plain, {}):
                ratios.append(
                    {"target": r["name"], "workload": dpop, "versus": plain,
                     "throughput": own[dpop]["median"]["rps"] / own[plain]["median"]["rps"]}
                )  # fmt: skip
        if baseline is None or r is baseline:
            continue
        for w in args.only:
            b = baseline["workloads"].get(w, {}).get("median")
            if b and "median" in own.get(w, {}):
                m = own[w]["median"]
                ratios.append(
                    {"target": r["name"], "workload": w, "versus": f"{baseline['name']} {w}",
                     "throughput": m["rps"] / b["rps"], "p99": m["p99_ms"] / b["p99_ms"]}
                )  # fmt: skip
    return {
        "config": {
            "workloads": {w: REQUESTS[w] for w in args.only},
            "dpop": "ES256 proofs, one client key, a fresh proof per request",
            "scope": rp.SCOPE,
            "id_token_alg": args.id_token_alg,
            "access_token_alg": "ES256",
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
        f"POST /token with and without DPoP, {cfg['connections']} connections, server on CPU "
        f"{cfg['server_cpus']}, wrk on CPU {cfg['load_cpus']}, 1pass workers={cfg['workers']}, "
        f"ID tokens {cfg['id_token_alg']}, median of {cfg['runs']} x {cfg['duration']:g}s"
    )
    header = (
        f"{'target':<19} {'workload':<24} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'CPU µs/req':>10}  runs (req/s)"
    )
    print(header)
    print("-" * len(header))
    for t in report["targets"]:
        for w, result in t["workloads"].items():
            if "error" in result:
                print(f"{t['name']:<19} {w:<24} FAILED: {result['error'].splitlines()[0][:160]}")
                continue
            m = result["median"]
            each = ", ".join(f"{r['rps']:,.0f}" for r in result["runs"])
            print(
                f"{t['name']:<19} {w:<24} {m['rps']:>9,.0f} {m['p50_ms']:>8.2f} "
                f"{m['p95_ms']:>8.2f} {m['p99_ms']:>8.2f} {m['cpu_us_per_req']:>10,.0f}  {each}"
            )
    for s in report["skipped"]:
        print(f"skipped: {s}")
    print()
    for r in report["ratios"]:
        p99 = f", p99 {r['p99']:.2f}x" if "p99" in r else ""
        goal = "  (issue 14: >= 1.5x)" if "p99" in r and r["workload"] in DPOP_OF else ""
        print(
            f"{r['target']} {r['workload']} / {r['versus']}: throughput "
            f"{r['throughput']:.2f}x{p99}{goal}"
        )
    for t in report["targets"]:
        for p in t.get("server_log_problems", []):
            print(f"{t['name']}: server log, {p['count']}x: {p['problem']}")
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
        help="ID token alg of the refreshes, on both sides (default RS256, as users get)",
    )
    p.add_argument("--skip-baseline", action="store_true", help="no node-oidc-provider")
    args = p.parse_args(argv)
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    if not only or not only <= set(WORKLOADS):
        p.error(f"--only: workloads among {', '.join(WORKLOADS)}, not {args.only!r}")
    args.only = [w for w in WORKLOADS if w in only]
    cf.check_options(p, args)
    if max(args.duration, args.warmup) > MAX_DURATION and only & set(DPOP_OF):
        p.error(
            f"--duration and --warmup at most {MAX_DURATION:g}s: a run's proofs are made just "
            f"before it, and 1pass accepts a proof for {PROOF_WINDOW}s"
        )
    return args


def build_targets(args: argparse.Namespace) -> tuple[list[rp.Target], list[str]]:
    targets: list[rp.Target] = []
    skipped: list[str] = []
    if args.skip_baseline:
        skipped.append("node-oidc-provider (--skip-baseline)")
    else:
        targets.append(rp.Target("node-oidc-provider", "baseline", None, rp.start_baseline(args)))
    found, skipped_onepass = cf.onepass_targets(args, PG_DATABASE)
    for name, database, url, cleanup in found:
        targets.append(rp.Target(name, "onepass", database, rp.start_onepass(args, url), cleanup))
    return targets, skipped + skipped_onepass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets, skipped = build_targets(args)
    if not cf.ready_to_measure(args, targets):
        return 2
    problems: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="onepass-bench-dpop-") as tmp:
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
                problems[t.name] = cf.server_log_problems(workdir / "server.log")
    report = report_of(args, targets, skipped)
    for row in report["targets"]:
        row["server_log_problems"] = problems.get(row["name"], [])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    failed = any(t.get("error") for t in report["targets"]) or any(
        "error" in w for t in report["targets"] for w in t["workloads"].values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
