"""Benchmark of JWS signing and verification per algorithm (RS256, PS256, ES256, EdDSA).

Not a test: it measures. See bench/README.md for what it does and how to read it.

    .venv/bin/python bench/signing.py [--runs N] [--iterations N] [--json]

Through 1pass's own code: ``keys.jwt.JWTSigner.sign`` (what the token endpoint calls for
every access and ID token) and ``keys.jws.JWSVerifier``'s signature check (what /userinfo
and introspection call for a token not yet remembered), on a freshly generated key of
each algorithm and claims shaped like an access token's. Each run times ``--iterations``
signatures and then as many verifications of each algorithm in turn (the algorithms
interleaved, so a change in the machine's load touches them all alike); every figure is
the median over ``--runs`` runs of the mean µs per operation, and its ratio to RS256's
median in the same invocation. One token of each algorithm is first verified by joserfc,
an independent implementation, so a figure never measures a broken signature.

Exit status: 0 when everything was measured, 1 when a sanity check failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from typing import Any

import orjson
from joserfc import jwt
from joserfc.jwk import KeySet

from onepass.keys.jws import JWSVerifier, PublicKey
from onepass.keys.jwt import SUPPORTED_ALGS, JWTSigner, generate_private_key, public_jwk

CLAIMS = {
    "iss": "https://id.example.com",
    "sub": "sXk2Vf7Qm1pZ9rT4yB3nLw",
    "aud": "https://id.example.com",
    "client_id": "c1d2e3f4g5h6i7j8k9l0m1n2",
    "scope": "openid profile email",
    "iat": 1_800_000_000,
    "exp": 1_800_003_600,
    "jti": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
}


class Ring:
    """What JWSVerifier reads of a KeyRing: the published JWK set."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.jwks = {"keys": keys}
        self.jwks_body = orjson.dumps(self.jwks)


def per_op_us(start: int, end: int, count: int) -> float:
    return (end - start) / count / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=400, help="operations per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    # joserfc (the sanity check) warns that RFC 9864 deprecates the name EdDSA.
    warnings.filterwarnings("ignore", message="EdDSA is deprecated")
    signers: dict[str, JWTSigner] = {}
    jwks = []
    for alg in SUPPORTED_ALGS:
        key = generate_private_key(alg)
        jwk = public_jwk(key, alg)
        signers[alg] = JWTSigner(jwk["kid"], alg, key)
        jwks.append(jwk)
    verifier = JWSVerifier(Ring(jwks))  # type: ignore[arg-type]
    keys: dict[str, PublicKey] = verifier.keys()
    keyset = KeySet.import_key_set({"keys": jwks})

    for alg, signer in signers.items():
        token = signer.sign(CLAIMS, typ="at+jwt")
        if jwt.decode(token, keyset, algorithms=[alg]).claims != CLAIMS:
            print(f"signing: joserfc does not read the {alg} token back", file=sys.stderr)
            return 1
        if verifier._verify(keys, token)[1] != CLAIMS:
            print(f"signing: 1pass's verifier does not read the {alg} token", file=sys.stderr)
            return 1

    sign: dict[str, list[float]] = {alg: [] for alg in signers}
    verify: dict[str, list[float]] = {alg: [] for alg in signers}
    n = args.iterations
    for _ in range(args.runs):
        for alg, signer in signers.items():
            start = time.perf_counter_ns()
            tokens = [signer.sign(CLAIMS, typ="at+jwt") for _ in range(n)]
            sign[alg].append(per_op_us(start, time.perf_counter_ns(), n))
            start = time.perf_counter_ns()
            for token in tokens:
                # The signature check itself: the verifier's memo of verified tokens
                # (``JWSVerifier.verify``) would make every repeat free.
                verifier._verify(keys, token)
            verify[alg].append(per_op_us(start, time.perf_counter_ns(), n))

    medians = {
        alg: {"sign_us": statistics.median(sign[alg]), "verify_us": statistics.median(verify[alg])}
        for alg in signers
    }
    base = medians["RS256"]
    for row in medians.values():
        row["sign_vs_rs256"] = row["sign_us"] / base["sign_us"]
        row["verify_vs_rs256"] = row["verify_us"] / base["verify_us"]
    if args.json:
        print(json.dumps({"runs": args.runs, "iterations": n, "algs": medians}, indent=2))
        return 0
    import cryptography

    print(
        f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{args.runs} runs x {n} operations, medians"
    )
    print(f"{'alg':<6} {'sign µs':>9} {'x RS256':>8} {'verify µs':>10} {'x RS256':>8}")
    for alg, row in medians.items():
        print(
            f"{alg:<6} {row['sign_us']:>9.1f} {row['sign_vs_rs256']:>8.2f} "
            f"{row['verify_us']:>10.1f} {row['verify_vs_rs256']:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
