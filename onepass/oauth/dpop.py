"""DPoP: OAuth 2.0 Demonstrating Proof of Possession (RFC 9449).

With each request a client proves that it holds the private key of the public key in
the proof's header: a compact JWS (``typ: dpop+jwt``, §4.2) over the request's method
(``htm``) and URL (``htu``), the time it was made (``iat``), a unique ``jti`` and, at a
resource, the access token's hash (``ath``). The token endpoint binds what it issues to
the key's JWK thumbprint (RFC 7638, SHA-256: the ``jkt``): the access token's
``cnf.jkt`` (§6.1), a public client's refresh tokens (§5), and ``/authorize`` and
``/par`` bind the code (``dpop_jkt``, §10).

``DPoP.check`` is §4.3, without state: exactly one ``DPoP`` header; ``typ``; ``alg``
asymmetric and one of ``ALGORITHMS`` (never ``none`` or an HMAC); ``jwk`` a public key
only, of the type ``alg`` names, which the signature verifies with (joserfc); ``htm``;
``htu`` against the URL 1pass advertises for the endpoint (the issuer's, as discovery
has it, never the ``Host`` header), compared without query or fragment after the
normalisation of RFC 3986 §6.2.2 and §6.2.3; ``iat`` within ``ONEPASS_DPOP_PROOF_WINDOW``
seconds of now either way; ``ath``; the server's nonce when required. ``DPoP.take``
then spends the ``jti`` (§11.1): once, in this process's memory (``SpentProofs``,
bounded) and in Redis when it is configured (every worker of every machine refuses a
replay), for as long as the proof's ``iat`` is acceptable.

Nonces (§8, §9) are stateless: an HMAC, keyed from ``ONEPASS_SECRET_KEY``, of the
current time step (one window long); the current and the previous step's are accepted,
so every worker accepts every other's and a nonce lives one to two windows.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry, extract_compact

from onepass.cache import Cache
from onepass.clock import Clock
from onepass.crypto import derive_key
from onepass.oauth_errors import (
    InvalidDPoPProofError,
    InvalidGrantError,
    OAuthError,
    UseDPoPNonceError,
)
from onepass.services import Service

PROOF_TYPE = "dpop+jwt"  # §4.2
# The asymmetric algorithms a proof may be signed with (discovery's
# dpop_signing_alg_values_supported), each with the key type it takes.
KEY_TYPES = {"ES256": "EC", "PS256": "RSA", "EdDSA": "OKP", "RS256": "RSA"}
ALGORITHMS = tuple(KEY_TYPES)
# The ``algs`` of a DPoP challenge (§7.1).
ALGS = f', algs="{" ".join(ALGORITHMS)}"'
MAX_PROOF = 8192
MAX_JTI = 256
MIN_RSA_BITS = 2048
# Members that make a JWK private (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2), or a secret.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# joserfc's default header limit (512 bytes) is less than an RSA key's jwk takes.
_REGISTRY = JWSRegistry(algorithms=ALGORITHMS)
_REGISTRY.max_header_length = MAX_PROOF
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ProofRefused(Exception):
    """Why a proof is refused (the endpoint answers ``invalid_dpop_proof``, or, with
    ``nonce``, ``use_dpop_nonce`` and a fresh ``DPoP-Nonce``)."""

    def __init__(self, reason: str, *, nonce: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.nonce = nonce


@dataclass(frozen=True)
class Proof:
    """A proof that passed ``DPoP.check``: the key's thumbprint, and what ``take`` spends."""

    jkt: str
    jti: str
    iat: float


class SpentProofs:
    """The proofs spent in this process, without Redis: each until its ``iat`` leaves
    the window. Entries come in nearly in expiry order (a proof's iat is about now), so
    the expired ones leave from the front, in constant time; past ``MAX`` entries (a
    sustained rate no process reaches with a signature to verify per proof) the oldest
    is forgotten, so memory stays bounded."""

    MAX = 1_000_000

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until: OrderedDict[bytes, float] = OrderedDict()

    def spend(self, key: bytes, until: float) -> bool:
        """Whether ``key`` was not spent yet (it is now, until ``until``)."""
        now = self._clock.timestamp()
        entries = self._until
        while entries and entries[next(iter(entries))] <= now:
            entries.popitem(last=False)
        seen = entries.get(key)
        if seen is not None:
            if seen > now:
                return False
            del entries[key]  # expired behind a later one: in again at the end
        if len(entries) >= self.MAX:
            entries.popitem(last=False)
        entries[key] = until
        return True


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(token: str) -> str:
    """``ath`` (§4.2): the base64url SHA-256 of the access token's ASCII text."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def is_thumbprint(value: str) -> bool:
    """Whether ``value`` can be a SHA-256 JWK thumbprint (``dpop_jkt``): 43 base64url."""
    return len(value) == 43 and _BASE64URL.fullmatch(value) is not None


@functools.lru_cache(maxsize=256)
def normalized_url(url: str) -> str | None:
    """``url`` without query and fragment, normalised as RFC 3986 §6.2.2 and §6.2.3 say
    (scheme and host in lower case, no default port, an empty path as ``/``,
    percent-escapes in upper case); None for what is not an http(s) URL."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = re.sub(r"%[0-9a-fA-F]{2}", lambda m: m.group(0).upper(), parts.path) or "/"
    return urlunsplit((scheme, netloc, path, "", ""))


def proof_header(values: list[bytes]) -> str | None:
    """The one ``DPoP`` header's value (§4.3: exactly one), None without one."""
    if not values:
        return None
    if len(values) > 1:
        raise ProofRefused("send exactly one DPoP header")
    return values[0].decode("latin-1")


class DPoP:
    """Checks proofs (``check``), spends their ``jti`` (``take``) and makes nonces."""

    MAX_KEYS = 4096

    def __init__(
        self,
        cache: Cache | None,
        clock: Clock,
        *,
        secret_key: str,
        window: int,
        require_nonce: bool,
    ) -> None:
        # Redis (shared by every worker), or None: this process's memory only.
        self._cache = cache
        self._spent = SpentProofs(clock)
        # a protected header's text -> (its key, its thumbprint)
        self._keys: OrderedDict[str, tuple[Any, str]] = OrderedDict()
        self._clock = clock
        self._window = window  # ONEPASS_DPOP_PROOF_WINDOW
        self.require_nonce = require_nonce  # ONEPASS_DPOP_REQUIRE_NONCE
        self._nonce_key = derive_key(secret_key, "dpop-nonce")

    # -- nonces (§8, §9) ----------------------------------------------------------------

    def _nonce_at(self, step: int) -> str:
        return b64url(hmac.new(self._nonce_key, str(step).encode(), hashlib.sha256).digest()[:24])

    def _step(self) -> int:
        return int(self._clock.timestamp() // self._window)

    def nonce(self) -> str:
        """The nonce to send in ``DPoP-Nonce`` now."""
        return self._nonce_at(self._step())

    def nonce_headers(self) -> dict[str, str]:
        """The ``DPoP-Nonce`` header of an answer, when nonces are required."""
        return {"dpop-nonce": self.nonce()} if self.require_nonce else {}

    def _nonce_ok(self, nonce: object) -> bool:
        if not isinstance(nonce, str):
            return False
        step = self._step()
        return any(
            hmac.compare_digest(nonce.encode(), self._nonce_at(s).encode())
            for s in (step, step - 1)
        )

    # -- proofs (§4.3) ------------------------------------------------------------------

    def check(self, proof: str, *, method: str, url: str, access_token: str | None = None) -> Proof:
        """``proof`` for a ``method`` request to ``url`` (an endpoint's advertised URL),
        with ``access_token`` at a resource (§7.1: ``ath``). Raises ``ProofRefused``."""
        if len(proof) > MAX_PROOF or proof.count(".") != 2:
            raise ProofRefused("the DPoP proof is not a compact JWS of at most 8 KB")
        try:
            compact = extract_compact(proof.encode("ascii"), registry=_REGISTRY)
            header = compact.protected
            claims = orjson.loads(compact.payload)
        except (JoseError, ValueError, UnicodeError, TypeError):
            raise ProofRefused("the DPoP proof is not a readable JWS") from None
        segment = proof[: proof.index(".")]
        key, jkt = self._key(segment, header)
        try:
            verified = jws.validate_compact(compact, key, registry=_REGISTRY)
        except (JoseError, ValueError, TypeError):
            verified = False
        if not verified:
            raise ProofRefused("the DPoP proof's signature does not verify with its jwk")
        if segment not in self._keys:  # kept once a proof verified with it
            if len(self._keys) >= self.MAX_KEYS:
                self._keys.popitem(last=False)
            self._keys[segment] = (key, jkt)
        if not isinstance(claims, dict):
            raise ProofRefused("the DPoP proof's payload is not a JSON object")
        self._check_claims(claims, method, url, access_token)
        return Proof(jkt=jkt, jti=claims["jti"], iat=float(claims["iat"]))

    def _key(self, segment: str, header: dict[str, Any]) -> tuple[Any, str]:
        """The header's public key and its thumbprint. A client signs every proof with
        one key, so the protected header's text comes back request after request: its
        key is imported and its thumbprint computed once (the costliest steps after the
        signature), and kept, once a proof verified with it, among the ``MAX_KEYS``
        latest."""
        known = self._keys.get(segment)
        if known is not None:
            return known
        if header.get("typ") != PROOF_TYPE:
            raise ProofRefused("the DPoP proof's typ must be dpop+jwt")
        alg = header.get("alg")
        if alg not in KEY_TYPES:
            raise ProofRefused(f"the DPoP proof's alg must be one of {', '.join(ALGORITHMS)}")
        key = _public_key(header.get("jwk"), KEY_TYPES[alg])
        return key, key.thumbprint()

    def _check_claims(
        self, claims: dict[str, Any], method: str, url: str, access_token: str | None
    ) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI:
            raise ProofRefused(f"the DPoP proof needs a jti of 1 to {MAX_JTI} characters")
        if claims.get("htm") != method:
            raise ProofRefused(f"the DPoP proof's htm must be {method}")
        htu = claims.get("htu")
        if not isinstance(htu, str) or normalized_url(htu) != normalized_url(url):
            raise ProofRefused(f"the DPoP proof's htu must be {url}")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise ProofRefused("the DPoP proof needs a numeric iat")
        if abs(iat - self._clock.timestamp()) > self._window:
            raise ProofRefused(
                f"the DPoP proof's iat is more than {self._window} seconds from the server's time"
            )
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str):
                raise ProofRefused("the DPoP proof needs ath, the access token's hash")
            if not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
                raise ProofRefused("the DPoP proof's ath is not the access token's hash")
        if self.require_nonce and not self._nonce_ok(claims.get("nonce")):
            what = "has no nonce" if "nonce" not in claims else "has an unknown or expired nonce"
            raise ProofRefused(
                f"the DPoP proof {what}: make it again with the DPoP-Nonce given", nonce=True
            )

    async def take(self, proof: Proof) -> None:
        """Spend the proof's ``jti`` (§11.1): a second use within the window is refused,
        in every worker that shares the cache. Call it once everything else passed."""
        digest = hashlib.sha256(f"{proof.jkt}\x00{proof.jti}".encode()).digest()[:16]
        # A proof is acceptable until its iat is a window old (check: at most two windows
        # from now, for an iat ahead of the server's clock).
        until = proof.iat + self._window + 1
        # This process's memory always (so a replay to it is refused even while Redis is
        # away and the shared cache falls back to a few seconds' memory), then Redis.
        fresh = self._spent.spend(digest, until)
        if fresh and self._cache is not None:
            ttl = max(until - self._clock.timestamp(), 1.0)
            fresh = await self._cache.set(f"dpop:jti:{b64url(digest)}", "1", ttl, nx=True)
        if not fresh:
            raise ProofRefused("this DPoP proof was already used: make a new one per request")


DPOP: Service[DPoP] = Service("oauth.dpop")


def request_error(refused: ProofRefused, dpop: DPoP) -> OAuthError:
    """A refused proof at the token endpoint or ``/par`` (§5, §8): 400 JSON,
    ``use_dpop_nonce`` with a fresh ``DPoP-Nonce``, else ``invalid_dpop_proof``."""
    if refused.nonce:
        return UseDPoPNonceError(refused.reason, headers={"dpop-nonce": dpop.nonce()})
    return InvalidDPoPProofError(refused.reason, headers=dpop.nonce_headers())


def resource_error(refused: ProofRefused, dpop: DPoP) -> OAuthError:
    """A refused proof at a protected resource (§7.1, §9): 401 with a DPoP challenge."""
    kind = UseDPoPNonceError if refused.nonce else InvalidDPoPProofError
    error = kind(refused.reason, status_code=401)
    error.headers["www-authenticate"] = (
        f'DPoP error="{kind.error}", error_description="{error.description}"{ALGS}'
    )
    error.headers.update({"dpop-nonce": dpop.nonce()} if refused.nonce else dpop.nonce_headers())
    return error


def _public_key(jwk: object, kty: str) -> Any:
    """The proof's ``jwk`` as a joserfc key: public, of ``kty``; ``ProofRefused`` else."""
    if not isinstance(jwk, dict):
        raise ProofRefused("the DPoP proof's header needs the public key as jwk")
    if any(member in jwk for member in PRIVATE_MEMBERS):
        raise ProofRefused("the DPoP proof's jwk must be a public key, without private members")
    if jwk.get("kty") != kty:
        raise ProofRefused(f"the DPoP proof's alg needs a {kty} key")
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProofRefused("the DPoP proof's jwk is not a valid public key") from None
    if key.is_private:
        raise ProofRefused("the DPoP proof's jwk must be a public key")
    raw = key.raw_value
    if isinstance(raw, rsa.RSAPublicKey) and raw.key_size < MIN_RSA_BITS:
        raise ProofRefused(f"the DPoP proof's RSA key must have at least {MIN_RSA_BITS} bits")
    return key


def check_binding(bound_to: str | None, jkt: str | None, what: str) -> None:
    """RFC 9449 §10 (a code's ``dpop_jkt``) and §5 (a public client's refresh token):
    the request's proof must be of the key ``bound_to``."""
    if bound_to is None or bound_to == jkt:
        return
    if jkt is None:
        raise InvalidGrantError(f"the {what} is bound to a DPoP key: send a DPoP proof of it")
    raise InvalidGrantError(f"the {what} is bound to another DPoP key than the proof's")
