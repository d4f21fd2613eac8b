"""A DPoP key holder, as an RP's client library is one (RFC 9449 §4): proofs made and
signed with joserfc."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tests.conftest import ISSUER

TOKEN_URL = f"{ISSUER}/token"
USERINFO_URL = f"{ISSUER}/userinfo"
PAR_URL = f"{ISSUER}/par"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode()).digest())


class Holder:
    """A key pair and the proofs it signs."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        if alg == "ES256":
            self.key: Any = ECKey.generate_key("P-256")
        elif alg in ("PS256", "RS256"):
            self.key = RSAKey.generate_key(2048)
        elif alg == "EdDSA":
            self.key = OKPKey.generate_key("Ed25519")
        else:
            raise ValueError(alg)

    @property
    def jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    @property
    def jkt(self) -> str:
        return str(self.key.thumbprint())

    def proof(
        self,
        htm: str = "POST",
        htu: str = TOKEN_URL,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        signer: Any = None,
    ) -> str:
        """A proof for ``htm htu``; ``header`` and ``claims`` change or add members (a
        value None removes one); ``signer``: sign with another key than the jwk's."""
        head: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(12),
            "htm": htm,
            "htu": htu,
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            body["ath"] = ath(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        for target, changes in ((head, header), (body, claims)):
            for name, value in (changes or {}).items():
                if value is None:
                    target.pop(name, None)
                else:
                    target[name] = value
        return jws.serialize_compact(
            head, orjson.dumps(body), signer or self.key, algorithms=[str(head["alg"])]
        )


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS with ``alg: none`` (RFC 7519 §6): no signature at all."""
    return f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}."
