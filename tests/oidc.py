"""Independent verification of what 1pass issues, with joserfc."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet


def verify_access_token(
    token: str, jwks: dict[str, Any], *, issuer: str, audience: str
) -> jwt.Token:
    """Verify signature and the RFC 9068 claims; return the decoded token."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256"])
    assert decoded.header["typ"] == "at+jwt"
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        sub={"essential": True},
        client_id={"essential": True},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    registry.validate(decoded.claims)
    return decoded
