"""Benchmark of ``POST /token`` (client_credentials) with DPoP proofs (RFC 9449), 1pass
against node-oidc-provider 9, and against the same grant without DPoP on the same server.

Not a test: it measures. See bench/README.md ("DPoP") for what it does and how to read it.

    .venv/bin/python bench/dpop.py [--workers N] [--duration S] [--runs N] [--warmup S]
        [--skip-postgres] [--skip-sqlite] [--skip-baseline] [--json]

Targets as bench/token_endpoint.py builds them (node-oidc-provider ES256 with its default
``features.dPoP``, 1pass on SQLite, 1pass on PostgreSQL), each server pinned to core 0
and wrk to core 1. Two workloads per target, taking turns in each round:
``client_credentials`` (Bearer, token.lua) and ``client_credentials+dpop``: the same
request with a ``DPoP`` header, a fresh proof per request (a unique ``jti``, ``iat`` of
when the batch was made), signed ES256 by one client key. wrk cannot sign, so the proofs
are made by this script just before each run, written one a line, and sent each once by
code_flow.lua (``BENCH_DPOP=1``); a run that uses them all up is discarded and repeated
with more, as code_flow.py does for codes. Both servers refuse a replayed proof, so no
proof is ever sent twice.
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
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_flow as cf
import token_endpoint as te
from token_endpoint import BenchError, Server, cpu_set, log, tail

BEARER = "client_credentials"
DPOP = "client_credentials+dpop"
WORKLOADS = (BEARER, DPOP)
INITIAL_RATE_GUESS = 1000.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


class ProofMaker:
    """One client's ES256 key and the proofs it signs (``cryptography`` straight: some
    30,000 a second on one core, so minting stays short of the runs it feeds)."""

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

        iat = int(time.time())
        out = []
        for _ in range(n):
            claims = {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": htu, "iat": iat}
            signing_input = f"{self.header}.{b64url(compact_json(claims))}"
            r, s = decode_dss_signature(
                self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
            )
            out.append(f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}")
        return out


def post_token(base_url: str, authorization: str, proof: str | None) -> tuple[int, dict[str, Any]]:
    headers = {
        "Authorization": authorization,
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    if proof is not None:
        headers["DPoP"] = proof
    request = urllib.request.Request(  # noqa: S310 - base_url is http://127.0.0.1:PORT
        f"{base_url}/token", data=b"grant_type=client_credentials", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def sanity_check(base_url: str, authorization: str, maker: ProofMaker) -> dict[str, Any]:
    """A DPoP request: 200, token_type DPoP, a JWT whose cnf.jkt is the key's thumbprint
    and whose signature verifies against the server's JWKS; the same proof again: 400
    (the server refuses replays, as the workload relies on); a Bearer request: 200."""
    proof = maker.proofs(f"{base_url}/token", 1)[0]
    status, body = post_token(base_url, authorization, proof)
    if status != 200:
        raise BenchError(f"sanity DPoP request: HTTP {status}: {body}")
    if str(body.get("token_type", "")).lower() != "dpop":
        raise BenchError(f"sanity DPoP request: token_type {body.get('token_type')!r}")
    token = body["access_token"]
    claims = json.loads(te.b64url_decode(token.split(".")[1]))
    if claims.get("cnf") != {"jkt": maker.jkt}:
        raise BenchError(f"sanity DPoP request: cnf {claims.get('cnf')!r}, not {maker.jkt}")
    _, discovery = te.http_get(f"{base_url}/.well-known/openid-configuration")
    _, jwks = te.http_get(json.loads(discovery)["jwks_uri"])
    verdict = te.verify_jws(token, json.loads(jwks))
    replayed, refusal = post_token(base_url, authorization, proof)
    if replayed != 400:
        raise BenchError(f"sanity: a replayed proof answered HTTP {replayed}, not 400")
    bearer, plain = post_token(base_url, authorization, None)
    if bearer != 200 or str(plain.get("token_type")).lower() != "bearer":
        raise BenchError(f"sanity Bearer request: HTTP {bearer}: {plain}")
    return {"cnf": claims["cnf"], "signature": verdict, "replay": refusal.get("error")}


@dataclass
class Measured:
    target: te.Target
    server: Server | None = None
    authorization: str = ""
    sanity: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    state: cf.GrantState = field(default_factory=lambda: cf.GrantState(DPOP, INITIAL_RATE_GUESS))


def run_workload(
    args: argparse.Namespace,
    m: Measured,
    maker: ProofMaker,
    workload: str,
    seconds: float,
    warmup: bool,
) -> dict[str, Any]:
    assert m.server is not None
    base = m.server.base_url
    m.server.check_alive()
    if workload == BEARER:
        return cf.run_wrk(
            args, base, cf.BASELINE_LUA, {"BENCH_AUTHORIZATION": m.authorization}, seconds
        )
    proofs_file = m.server.log_path.parent / "proofs.txt"
    env = {
        "BENCH_DPOP": "1",
        "BENCH_AUTHORIZATION": m.authorization,
        "BENCH_BODY_PREFIX": "grant_type=client_credentials",
        "BENCH_BODY_SUFFIX": "",
        "BENCH_TOKENS_FILE": str(proofs_file),
    }

    def mint_batch(n: int) -> list[str]:
        started = time.monotonic()
        proofs = maker.proofs(f"{base}/token", n)
        log(f"    made {n:,} proofs in {time.monotonic() - started:.1f}s")
        return proofs

    return cf.run_single_use(
        args,
        m.state,
        seconds,
        warmup,
        proofs_file,
        mint_batch,
        lambda s: cf.run_wrk(args, base, cf.LUA_SCRIPT, env, s),
    )


def attempt(
    args: argparse.Namespace, m: Measured, maker: ProofMaker, workload: str, label: str
) -> None:
    if workload in m.errors:
        return
    warmup = label == "warm-up"
    try:
        r = run_workload(args, m, maker, workload, args.warmup if warmup else args.duration, warmup)
    except BenchError as exc:
        m.errors[workload] = str(exc)
        log(f"  FAILED {m.target.name} {workload}: {exc}")
        return
    log(
        f"  {label} {m.target.name:<26} {workload:<24} {r['rps']:>9,.0f} req/s  "
        f"p50 {r['p50_ms']:.2f}  p99 {r['p99_ms']:.2f} ms"
    )
    if not warmup:
        m.runs.setdefault(workload, []).append(r)


def measure(args: argparse.Namespace, m: Measured, workdir: Path) -> None:
    maker = ProofMaker()
    m.server, m.authorization = m.target.setup(workdir)
    with te.running(m.server):
        cpus = m.server.affinity()
        if any(cpu_set(c) != cpu_set(args.server_cpus) for c in cpus.values()):
            raise BenchError(f"the server's processes are not all on CPUs {args.server_cpus}")
        m.sanity = sanity_check(m.server.base_url, m.authorization, maker)
        log(f"  sanity: cnf.jkt ok, {m.sanity['signature']}, replay refused ({m.sanity['replay']})")
        if args.warmup > 0:
            for workload in WORKLOADS:
                attempt(args, m, maker, workload, "warm-up")
        for i in range(args.runs):
            for workload in WORKLOADS:
                attempt(args, m, maker, workload, f"run {i + 1}/{args.runs}")
        m.server.check_alive()


def median(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in te.METRICS}


def report_of(
    args: argparse.Namespace, measured: list[Measured], skipped: list[str]
) -> dict[str, Any]:
    targets = []
    for m in measured:
        workloads: dict[str, Any] = {}
        for w in WORKLOADS:
            if w in m.errors:
                workloads[w] = {"error": m.errors[w]}
            elif m.runs.get(w):
                workloads[w] = {"runs": m.runs[w], "median": median(m.runs[w])}
        targets.append(
            {
                "name": m.target.name,
                "server": m.target.kind,
                "sanity": m.sanity,
                "workloads": workloads,
            }
        )
    baseline = next(
        (
            t
            for t in targets
            if t["server"] == "baseline" and "median" in t["workloads"].get(DPOP, {})
        ),
        None,
    )
    ratios = []
    for t in targets:
        own = t["workloads"]
        if "median" in own.get(DPOP, {}) and "median" in own.get(BEARER, {}):
            ratios.append(
                {"target": t["name"], "versus": BEARER,
                 "throughput": own[DPOP]["median"]["rps"] / own[BEARER]["median"]["rps"]}
            )  # fmt: skip
        if baseline is not None and t is not baseline and "median" in own.get(DPOP, {}):
            b = baseline["workloads"][DPOP]["median"]
            ratios.append(
                {"target": t["name"], "versus": f"{baseline['name']} {DPOP}",
                 "throughput": own[DPOP]["median"]["rps"] / b["rps"],
                 "p99": own[DPOP]["median"]["p99_ms"] / b["p99_ms"]}
            )  # fmt: skip
    return {
        "config": {**cf.run_config(args), "endpoint": "POST /token client_credentials, DPoP ES256"},
        "versions": te.versions(),
        "targets": targets,
        "skipped": skipped,
        "ratios": ratios,
    }


def print_table(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"POST /token (client_credentials) with and without DPoP, {cfg['connections']} "
        f"connections, server on CPU {cfg['server_cpus']}, wrk on CPU {cfg['load_cpus']}, "
        f"1pass workers={cfg['workers']}, median of {cfg['runs']} x {cfg['duration']:g}s"
    )
    header = (
        f"{'target':<26} {'workload':<24} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8}  runs (req/s)"
    )
    print(header)
    print("-" * len(header))
    for t in report["targets"]:
        for w in WORKLOADS:
            result = t["workloads"].get(w, {"error": "not measured"})
            if "error" in result:
                print(f"{t['name']:<26} {w:<24} FAILED: {result['error'].splitlines()[0]}")
                continue
            m = result["median"]
            each = ", ".join(f"{r['rps']:,.0f}" for r in result["runs"])
            print(
                f"{t['name']:<26} {w:<24} {m['rps']:>9,.0f} {m['p50_ms']:>8.2f} "
                f"{m['p95_ms']:>8.2f} {m['p99_ms']:>8.2f}  {each}"
            )
    for s in report["skipped"]:
        print(f"skipped: {s}")
    print()
    for r in report["ratios"]:
        p99 = f", p99 {r['p99']:.2f}x" if "p99" in r else ""
        print(f"{r['target']} {DPOP} / {r['versus']}: throughput {r['throughput']:.2f}x{p99}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cf.add_options(p)
    p.add_argument("--skip-baseline", action="store_true", help="no node-oidc-provider")
    args = p.parse_args(argv)
    cf.check_options(p, args)
    args.baseline_rs256 = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets, skipped = te.build_targets(args)
    if args.skip_sqlite:
        skipped += ["1pass sqlite (--skip-sqlite)"]
        targets = [t for t in targets if t.database != "sqlite"]
    if not cf.ready_to_measure(args, targets):
        return 2
    measured = [Measured(t) for t in targets]
    with tempfile.TemporaryDirectory(prefix="onepass-bench-dpop-") as tmp:
        for m in measured:
            workdir = Path(tmp) / m.target.name.replace(" ", "-")
            workdir.mkdir()
            log(f"== {m.target.name}")
            try:
                measure(args, m, workdir)
            except BenchError as exc:
                for w in WORKLOADS:
                    m.errors.setdefault(w, str(exc))
                log(f"  FAILED: {exc}\n  --- server log ---\n{tail(workdir / 'server.log')}")
            finally:
                m.target.cleanup()
    report = report_of(args, measured, skipped)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 1 if any(m.errors for m in measured) else 0


if __name__ == "__main__":
    sys.exit(main())
