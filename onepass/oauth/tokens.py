"""JWT access tokens (RFC 9068: JSON Web Token Profile for OAuth 2.0 Access Tokens)."""

from __future__ import annotations

from typing import Any

from onepass.keys.jwt import JWTSigner

ACCESS_TOKEN_TYP = "at+jwt"  # RFC 9068 §2.1


def bound(jkt: str | None) -> dict[str, Any] | None:
    """The claims binding an access token to a DPoP key (RFC 9449 §6.1: ``cnf.jkt``)."""
    return {"cnf": {"jkt": jkt}} if jkt is not None else None


def token_type(jkt: str | None) -> str:
    """The response's ``token_type``: ``DPoP`` for a bound token (RFC 9449 §5)."""
    return "DPoP" if jkt is not None else "Bearer"


def sign_access_token(
    signer: JWTSigner,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    scope: list[str],
    now: int,
    ttl: int,
    jti: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """Sign an access token with the claims RFC 9068 §2.2 requires."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "client_id": client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": jti,
    }
    if scope:
        claims["scope"] = " ".join(scope)
    if extra:
        claims.update(extra)
    return signer.sign(claims, typ=ACCESS_TOKEN_TYP)
