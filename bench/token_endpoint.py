"""Benchmark of ``POST /token`` (client_credentials) for 1pass, against a baseline.

Not a test: it measures. See bench/README.md for what it does and how to read it.

    .venv/bin/python bench/token_endpoint.py [--workers N] [--duration S] [--runs N]
        [--skip-postgres] [--skip-baseline] [--baseline-rs256] [--json]

Each server runs as in production and is pinned to one core (``taskset -c 0``);
``wrk`` loads it from the other core (``taskset -c 1``) with 32 keep-alive connections,
each request a ``POST /token`` with ``grant_type=client_credentials`` and HTTP Basic
client authentication. Targets, in order:

- node-oidc-provider 9 (bench/node-oidc), JWT access tokens signed ES256: the baseline;
- 1pass on SQLite (``onepass serve``, a fresh database in a temporary folder);
- 1pass on PostgreSQL (a fresh database ``onepass_bench``, dropped afterwards), skipped
  when PostgreSQL does not answer or with ``--skip-postgres``;
- optionally node-oidc-provider with RS256 (``--baseline-rs256``).

For each target: one sanity request whose access token must be a JWT with the expected
``alg`` and a signature that verifies against the server's JWKS, a warm-up run, then
``--runs`` measured runs of ``--duration`` seconds. It reports the median requests/s and
the median p50/p95/p99 latency, and the ratio 1pass/baseline. Any non-2xx response or
socket error makes that target fail, and the script exits 1.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
NODE_DIR = BENCH_DIR / "node-oidc"
LUA_SCRIPT = BENCH_DIR / "token.lua"
ONEPASS_CLI = Path(sys.executable).parent / "onepass"

PG_HOST = "127.0.0.1"
PG_USER = "postgres"
PG_DATABASE = "onepass_bench"

BASELINE_CLIENT_ID = "bench"
BASELINE_CLIENT_SECRET = secrets.token_urlsafe(32)

METRICS = ("rps", "p50_ms", "p95_ms", "p99_ms")


class BenchError(Exception):
    """A target could not be measured; the message says why."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        # only http://127.0.0.1 URLs built by this script or read from its own servers
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def basic_auth(client_id: str, client_secret: str) -> str:
    # RFC 6749 section 2.3.1: both parts form-urlencoded before base64
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def cpu_set(cpu_list: str) -> set[int]:
    """'0-2,5' -> {0, 1, 2, 5}, as taskset and /proc/PID/status write CPU lists."""
    cpus: set[int] = set()
    for part in cpu_list.split(","):
        first, _, last = part.strip().partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def run_checked(cmd: list[str], env: dict[str, str] | None = None, what: str = "") -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(
            f"{what or cmd[0]} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"stdout: {proc.stdout.strip()[-2000:]}\nstderr: {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    """A server process started in its own session, so that its workers stop with it."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    ready_url: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        scheme, _, host, _ = self.ready_url.split("/", 3)
        return f"{scheme}//{host}"

    def start(self, timeout: float = 60.0) -> None:
        log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode} before answering "
                    f"{self.ready_url}\n--- log ---\n{tail(self.log_path)}"
                )
            try:
                status, _ = http_get(self.ready_url, timeout=2.0)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise BenchError(
            f"{self.name} did not answer 200 on {self.ready_url} within {timeout:.0f}s "
            f"(last: {last})\n--- log ---\n{tail(self.log_path)}"
        )

    def affinity(self) -> dict[int, str]:
        """CPU list allowed to each process of the server's session, by pid (Linux)."""
        if self.proc is None:
            return {}
        out = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # fields after "(comm)": state ppid pgrp session ...
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) != self.proc.pid:
                    continue
                status = (stat.parent / "status").read_text()
            except (OSError, IndexError, ValueError):
                continue
            for line in status.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    out[int(stat.parent.name)] = line.split(":", 1)[1].strip()
        return out

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(
                f"{self.name} is no longer running (exit {code})\n"
                f"--- log ---\n{tail(self.log_path)}"
            )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # the process leads its own session (start_new_session): signal only that group
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- wrk


def run_wrk(
    args: argparse.Namespace, base_url: str, authorization: str, seconds: float
) -> dict[str, Any]:
    cmd = [
        "taskset", "-c", args.load_cpus,
        "wrk",
        "-t", str(args.threads),
        "-c", str(args.connections),
        "-d", f"{seconds:g}s",
        "--timeout", "10s",
        "--latency",
        "-s", str(LUA_SCRIPT),
        base_url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_AUTHORIZATION": authorization, "BENCH_PATH": "/token"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    return parse_wrk_output(proc)


def parse_wrk_output(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The BENCH_RESULT line of token.lua-style scripts; BenchError for any failure,
    a non-2xx response or a socket error (a benchmark of errors is worthless)."""
    if proc.returncode != 0:
        raise BenchError(
            f"wrk failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
        )
    result: dict[str, Any] | None = None
    sample = ""
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
        elif line.startswith("BENCH_SAMPLE "):
            sample = line[len("BENCH_SAMPLE ") :]
    if result is None:
        raise BenchError(f"wrk printed no BENCH_RESULT line:\n{proc.stdout}\n{proc.stderr}")
    socket_errors = sum(
        result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    )
    result["socket_errors"] = socket_errors
    if result["requests"] == 0:
        raise BenchError("wrk completed no request")
    if result["non_2xx"] or socket_errors:
        raise BenchError(
            f"{result['non_2xx']} non-2xx responses and {socket_errors} socket errors "
            f"(connect {result['errors_connect']}, read {result['errors_read']}, write "
            f"{result['errors_write']}, timeout {result['errors_timeout']}) out of "
            f"{result['requests']} requests; first bad response: {sample or '(none)'}"
        )
    return result


# --------------------------------------------------------------------------- sanity


def verify_jws(token: str, jwks: dict[str, Any]) -> str:
    """Verify an ES256/RS256 compact JWS against a JWKS; return a one-line verdict."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    except ImportError:
        return "signature not verified (cryptography not installed)"
    header_b64, payload_b64, sig_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    keys = [k for k in jwks.get("keys", []) if header.get("kid") in (None, k.get("kid"))]
    if not keys:
        raise BenchError(f"no key with kid {header.get('kid')!r} in the JWKS")
    signing_input = f"{header_b64}.{payload_b64}".encode()
    signature = b64url_decode(sig_b64)
    for jwk in keys:

        def as_int(name: str, jwk: dict[str, Any] = jwk) -> int:
            return int.from_bytes(b64url_decode(jwk[name]), "big")

        try:
            if header["alg"] == "ES256" and jwk.get("kty") == "EC":
                public_key = ec.EllipticCurvePublicNumbers(
                    as_int("x"), as_int("y"), ec.SECP256R1()
                ).public_key()
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
                return f"signature verified with kid {jwk.get('kid')}"
            if header["alg"] == "RS256" and jwk.get("kty") == "RSA":
                rsa_key = rsa.RSAPublicNumbers(as_int("e"), as_int("n")).public_key()
                rsa_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
                return f"signature verified with kid {jwk.get('kid')}"
        except InvalidSignature:
            continue
    raise BenchError("the access token's signature does not verify against the server's JWKS")


def request_token(base_url: str, authorization: str) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - base_url is http://127.0.0.1:PORT
        f"{base_url}/token",
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": authorization,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def sanity_check(base_url: str, authorization: str, expected_alg: str) -> dict[str, Any]:
    """Two token requests: 200, JWT access tokens with the expected alg and a valid
    signature, and not the same token twice (a cached token would make the figures
    meaningless)."""
    tokens = []
    for _ in range(2):
        status, body = request_token(base_url, authorization)
        if status != 200:
            raise BenchError(f"sanity request: HTTP {status}: {body[:500]!r}")
        try:
            data = json.loads(body)
            token = data["access_token"]
            header_b64, payload_b64, _ = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            claims = json.loads(b64url_decode(payload_b64))
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                f"sanity request: the access token is not a JWT ({exc}): {body[:500]!r}"
            ) from exc
        if header.get("alg") != expected_alg:
            raise BenchError(
                f"sanity request: access token alg is {header.get('alg')!r}, "
                f"expected {expected_alg}"
            )
        tokens.append(token)
    if tokens[0] == tokens[1]:
        raise BenchError("sanity request: two requests returned the same access token")
    verdict = "signature not verified (no jwks_uri)"
    status, discovery = http_get(f"{base_url}/.well-known/openid-configuration")
    if status == 200:
        jwks_uri = json.loads(discovery).get("jwks_uri")
        if jwks_uri:
            status, jwks = http_get(jwks_uri)
            if status != 200:
                raise BenchError(f"sanity request: GET {jwks_uri} answered HTTP {status}")
            verdict = verify_jws(token, json.loads(jwks))
    return {
        "token_type": data.get("token_type"),
        "expires_in": data.get("expires_in"),
        "header": header,
        "claims": sorted(claims),
        "signature": verdict,
        "token_bytes": len(token),
    }


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    kind: str  # "baseline" or "onepass"
    database: str | None
    alg: str
    setup: Callable[[Path], tuple[Server, str]]  # workdir -> (server, Authorization header)
    cleanup: Callable[[], None] = lambda: None
    result: dict[str, Any] = field(default_factory=dict)


def onepass_env(port: int, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ONEPASS_DATABASE_URL": database_url,
            "ONEPASS_SECRET_KEY": secrets.token_urlsafe(32),
            "ONEPASS_ENV": "development",
            "ONEPASS_ISSUER": f"http://127.0.0.1:{port}",
            "ONEPASS_ACCESS_TOKEN_ALG": "ES256",
        }
    )
    return env


def onepass_setup(
    args: argparse.Namespace, database_url: Callable[[Path], str]
) -> Callable[[Path], tuple[Server, str]]:
    def setup(workdir: Path) -> tuple[Server, str]:
        port = free_port()
        env = onepass_env(port, database_url(workdir))
        cli = str(ONEPASS_CLI)
        run_checked([cli, "db", "upgrade"], env=env, what="onepass db upgrade")
        out = run_checked(
            [
                cli,
                "clients",
                "create",
                "--name",
                "bench",
                "--grant-type",
                "client_credentials",
                "--json",
            ],
            env=env,
            what="onepass clients create",
        )
        try:
            client = json.loads(out)
            authorization = basic_auth(client["client_id"], client["client_secret"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                f"onepass clients create --json printed no client_id/client_secret: {out[:500]!r}"
            ) from exc
        cmd = [
            "taskset", "-c", args.server_cpus,
            cli, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(args.workers),
        ]  # fmt: skip
        server = Server(
            "onepass", cmd, env, workdir, workdir / "server.log", f"http://127.0.0.1:{port}/up"
        )
        return server, authorization

    return setup


def baseline_setup(args: argparse.Namespace, alg: str) -> Callable[[Path], tuple[Server, str]]:
    def setup(workdir: Path) -> tuple[Server, str]:
        port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "NODE_ENV": "production",
                "BENCH_CLIENT_ID": BASELINE_CLIENT_ID,
                "BENCH_CLIENT_SECRET": BASELINE_CLIENT_SECRET,
            }
        )
        cmd = [
            "taskset", "-c", args.server_cpus,
            "node", "server.js", "--host", "127.0.0.1", "--port", str(port), "--alg", alg,
        ]  # fmt: skip
        ready = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
        server = Server(
            f"node-oidc-provider {alg}", cmd, env, NODE_DIR, workdir / "server.log", ready
        )
        return server, basic_auth(BASELINE_CLIENT_ID, BASELINE_CLIENT_SECRET)

    return setup


def postgres_answers(port: int) -> bool:
    if not shutil.which("pg_isready"):
        return False
    proc = subprocess.run(
        ["pg_isready", "-h", PG_HOST, "-p", str(port), "-U", PG_USER, "-t", "3"],
        capture_output=True,
    )
    return proc.returncode == 0


def pg_options(port: int) -> list[str]:
    return ["-h", PG_HOST, "-p", str(port), "-U", PG_USER]


def pg_create(port: int) -> None:
    """A fresh, empty database: drop what a killed run may have left, then create it."""
    run_checked(["dropdb", *pg_options(port), "--if-exists", PG_DATABASE], what="dropdb")
    run_checked(["createdb", *pg_options(port), PG_DATABASE], what="createdb")


def pg_drop(port: int) -> None:
    cmd = ["dropdb", *pg_options(port), "--if-exists", "--force", PG_DATABASE]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"warning: could not drop database {PG_DATABASE}: {proc.stderr.strip()}")


def build_targets(args: argparse.Namespace) -> tuple[list[Target], list[str]]:
    targets: list[Target] = []
    skipped: list[str] = []
    if not args.skip_baseline:
        targets.append(
            Target(
                "node-oidc-provider ES256", "baseline", None, "ES256", baseline_setup(args, "ES256")
            )
        )
    targets.append(
        Target(
            "1pass sqlite",
            "onepass",
            "sqlite",
            "ES256",
            onepass_setup(args, lambda workdir: f"sqlite:///{workdir / 'bench.db'}"),
        )
    )
    if args.skip_postgres:
        skipped.append("1pass postgresql (--skip-postgres)")
    elif not postgres_answers(args.postgres_port):
        skipped.append(
            f"1pass postgresql (PostgreSQL does not answer on {PG_HOST}:{args.postgres_port})"
        )
    else:
        port = args.postgres_port

        def pg_url(_workdir: Path) -> str:
            pg_create(port)
            return f"postgresql://{PG_USER}@{PG_HOST}:{port}/{PG_DATABASE}"

        targets.append(
            Target(
                "1pass postgresql",
                "onepass",
                "postgresql",
                "ES256",
                onepass_setup(args, pg_url),
                cleanup=lambda: pg_drop(port),
            )
        )
    if args.baseline_rs256 and not args.skip_baseline:
        targets.append(
            Target(
                "node-oidc-provider RS256", "baseline", None, "RS256", baseline_setup(args, "RS256")
            )
        )
    return targets, skipped


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


def measure(args: argparse.Namespace, target: Target, workdir: Path) -> dict[str, Any]:
    server, authorization = target.setup(workdir)
    base = server.base_url
    with running(server):
        sanity = sanity_check(base, authorization, target.alg)
        cpus = server.affinity()
        if any(cpu_set(allowed) != cpu_set(args.server_cpus) for allowed in cpus.values()):
            raise BenchError(
                f"the server's processes are not all on CPUs {args.server_cpus}: {cpus}"
            )
        sanity["server_processes"] = len(cpus)
        log(
            f"  sanity: JWT {sanity['header'].get('alg')} typ={sanity['header'].get('typ')} "
            f"kid={sanity['header'].get('kid')}; {sanity['signature']}; "
            f"{len(cpus)} server process(es) on CPUs {args.server_cpus}"
        )
        if args.warmup > 0:
            log(f"  warm-up {args.warmup:g}s")
            run_wrk(args, base, authorization, args.warmup)
        runs = []
        for i in range(args.runs):
            server.check_alive()
            r = run_wrk(args, base, authorization, args.duration)
            log(
                f"  run {i + 1}/{args.runs}: {r['rps']:,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                f"p95 {r['p95_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  ({r['requests']:,} requests)"
            )
            runs.append(r)
        server.check_alive()
    log_text = server.log_path.read_text(errors="replace")
    problems = [line for line in log_text.splitlines() if "Traceback" in line or " 500 " in line]
    return {
        "sanity": sanity,
        "runs": runs,
        "median": {m: statistics.median(r[m] for r in runs) for m in METRICS},
        "server_log_problems": problems[:20],
    }


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    out: dict[str, str] = {"python": platform.python_version()}
    try:
        out["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip()
        pkg = json.loads((NODE_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
        out["oidc-provider"] = pkg["version"]
    except (OSError, ValueError, KeyError):
        pass
    try:
        out["onepass"] = importlib.metadata.version("onepass")
    except importlib.metadata.PackageNotFoundError:
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    # its first line: "wrk debian/4.1.0-3+b2 [epoll] Copyright ..."
    first = (wrk.stdout or wrk.stderr or "?").splitlines()[0].split()
    out["wrk"] = first[1] if len(first) > 1 else first[0]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                out["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return out


def ratios(targets: list[Target]) -> list[dict[str, Any]]:
    baseline = next(
        (t for t in targets if t.kind == "baseline" and t.alg == "ES256" and "median" in t.result),
        None,
    )
    if baseline is None:
        return []
    b = baseline.result["median"]
    out = []
    for t in targets:
        if t.kind == "onepass" and "median" in t.result:
            m = t.result["median"]
            out.append(
                {
                    "target": t.name,
                    "baseline": baseline.name,
                    "throughput": m["rps"] / b["rps"] if b["rps"] else None,
                    "p99": m["p99_ms"] / b["p99_ms"] if b["p99_ms"] else None,
                }
            )
    return out


def print_table(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"POST /token (client_credentials), {cfg['connections']} connections, "
        f"server on CPU {cfg['server_cpus']}, "
        f"wrk on CPU {cfg['load_cpus']}, 1pass workers={cfg['workers']}, "
        f"median of {cfg['runs']} x {cfg['duration']:g}s"
    )
    header = f"{'target':<28} {'req/s':>10} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}  runs (req/s)"
    print(header)
    print("-" * len(header))
    for t in report["targets"]:
        if "error" in t:
            print(f"{t['name']:<28} FAILED: {t['error'].splitlines()[0]}")
            continue
        m = t["median"]
        each = ", ".join(f"{r['rps']:,.0f}" for r in t["runs"])
        print(
            f"{t['name']:<28} {m['rps']:>10,.0f} {m['p50_ms']:>9.2f} "
            f"{m['p95_ms']:>9.2f} {m['p99_ms']:>9.2f}  {each}"
        )
    for s in report["skipped"]:
        print(f"{'':<28} skipped: {s}")
    if report["ratios"]:
        print()
        for r in report["ratios"]:
            tp = "n/a" if r["throughput"] is None else f"{r['throughput']:.2f}x"
            p99 = "n/a" if r["p99"] is None else f"{r['p99']:.2f}x"
            print(f"{r['target']} / {r['baseline']}: throughput {tp}, p99 {p99}")
    print()
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))


# --------------------------------------------------------------------------- main


def preflight(args: argparse.Namespace, targets: list[Target]) -> None:
    missing = []
    if not shutil.which("wrk"):
        missing.append("wrk is not installed: apt-get install -y wrk")
    if not shutil.which("taskset"):
        missing.append("taskset is not installed: apt-get install -y util-linux")
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        log("warning: one CPU only: server and wrk share it, figures are not comparable")
        args.server_cpus = args.load_cpus = "0"
    if any(t.kind == "onepass" for t in targets) and not ONEPASS_CLI.exists():
        missing.append(
            f"the onepass CLI is not installed next to this Python "
            f"({ONEPASS_CLI.name} in {ONEPASS_CLI.parent.name}/); "
            "install the project into the venv (pip install -e .)"
        )
    if any(t.kind == "baseline" for t in targets):
        if not shutil.which("node") or not shutil.which("npm"):
            missing.append("node and npm are needed for the baseline (or pass --skip-baseline)")
        elif not (NODE_DIR / "node_modules" / "oidc-provider").exists():
            log("installing the baseline: npm ci in bench/node-oidc")
            proc = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                missing.append(f"npm ci in bench/node-oidc failed: {proc.stderr.strip()[-1000:]}")
    if missing:
        for m in missing:
            log(f"error: {m}")
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workers", type=int, default=1, help="onepass serve --workers N (default 1)")
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured run (default 10)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=3,
        help="measured runs per target; the median is reported (default 3)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of warm-up before measuring, 0 for none (default 3)",
    )
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument(
        "--skip-postgres", action="store_true", help="do not measure 1pass on PostgreSQL"
    )
    p.add_argument("--skip-baseline", action="store_true", help="do not measure node-oidc-provider")
    p.add_argument("--skip-onepass", action="store_true", help="measure the baseline only")
    p.add_argument(
        "--baseline-rs256",
        action="store_true",
        help="also measure node-oidc-provider with RS256 tokens",
    )
    p.add_argument(
        "--postgres-port",
        type=int,
        default=5432,
        help="PostgreSQL port on 127.0.0.1 (default 5432)",
    )
    p.add_argument(
        "--server-cpus", default="0", help="taskset CPU list for the servers (default 0)"
    )
    p.add_argument("--load-cpus", default="1", help="taskset CPU list for wrk (default 1)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON on stdout instead of the table",
    )
    args = p.parse_args(argv)
    if args.runs < 1 or args.duration <= 0 or args.workers < 1:
        p.error("--runs, --duration and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets, skipped = build_targets(args)
    if args.skip_onepass:
        skipped += [f"{t.name} (--skip-onepass)" for t in targets if t.kind == "onepass"]
        targets = [t for t in targets if t.kind != "onepass"]
    if not targets:
        log("nothing to measure")
        return 2
    preflight(args, targets)

    failed = False
    with tempfile.TemporaryDirectory(prefix="onepass-bench-") as tmp:
        for target in targets:
            workdir = Path(tmp) / target.name.replace(" ", "-")
            workdir.mkdir()
            log(f"== {target.name}")
            try:
                target.result = measure(args, target, workdir)
                for line in target.result["server_log_problems"]:
                    log(f"  server log: {line}")
            except BenchError as exc:
                failed = True
                target.result = {"error": str(exc)}
                log(f"  FAILED: {exc}")
                log(f"  --- server log (last lines) ---\n{tail(workdir / 'server.log')}")
            finally:
                target.cleanup()

    report = {
        "config": {
            "endpoint": "POST /token grant_type=client_credentials (client_secret_basic)",
            "workers": args.workers,
            "duration": args.duration,
            "runs": args.runs,
            "warmup": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "server_cpus": args.server_cpus,
            "load_cpus": args.load_cpus,
        },
        "versions": versions(),
        "targets": [
            {"name": t.name, "server": t.kind, "database": t.database, "alg": t.alg, **t.result}
            for t in targets
        ],
        "skipped": skipped,
        "ratios": ratios(targets),
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
