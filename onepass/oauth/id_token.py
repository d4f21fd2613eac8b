"""ID tokens (OpenID Connect Core 1.0 §2, §3.1.3.6)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any


def at_hash(access_token: str, alg: str = "RS256") -> str:
    """OIDC Core §3.1.3.6: the left half of the hash of the token, base64url, with "the
    hash algorithm used in the alg Header Parameter" of the ID token: SHA-256 for RS256,
    PS256 and ES256; SHA-512 for EdDSA on Ed25519 (which hashes with SHA-512 inside, as
    RFC 8032 §5.1; what openid-client and node-oidc-provider compute and check)."""
    data = access_token.encode("ascii")
    digest = hashlib.sha512(data).digest() if alg == "EdDSA" else hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def id_token_claims(
    *,
    issuer: str,
    subject: str,
    client_id: str,
    now: int,
    ttl: int,
    auth_time: int,
    nonce: str | None,
    access_token: str | None,
    acr: str | None,
    amr: list[str],
    sid: str | None,
    extra: dict[str, Any] | None = None,
    alg: str = "RS256",
) -> dict[str, Any]:
    """The claims of an ID token that ``alg`` will sign (``at_hash`` depends on it)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "exp": now + ttl,
        "iat": now,
        "auth_time": auth_time,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token, alg)
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = amr
    if sid:
        claims["sid"] = sid
    if extra:
        claims.update(extra)
    return claims
