"""``private_key_jwt`` (RFC 7523 §2.2 and §3, OIDC Core §9): a client proves who it is
with a JWT it signed with one of its registered keys, instead of a secret.

The assertion's ``iss`` and ``sub`` are the client_id; its ``aud`` is 1pass (the issuer,
or the URL of the endpoint called: RP libraries send either; for a client under the
FAPI 2.0 profile, the issuer as a string and nothing else, ``clients.profiles``); it expires within five
minutes of now (a short-lived proof, not a credential); its ``jti`` is accepted once
(written to ``used_client_assertions`` until the assertion would have expired), on
every process. It is signed with RS256, PS256, ES256 or EdDSA by a key of the client's
JWK set, registered inline or fetched from its ``jwks_uri`` (``KeySource``; an unknown
``kid`` makes 1pass fetch the set again, so a client can rotate its keys without
telling anyone). ``none`` and the HMAC algorithms are refused: a public key must never
be usable as an HMAC secret.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from onepass.clients import profiles
from onepass.clients.models import UsedClientAssertion
from onepass.clock import Clock
from onepass.db import Database

if TYPE_CHECKING:
    from onepass.clients.registry import ClientRecord

log = structlog.get_logger("onepass.clients.auth")

ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
MAX_ASSERTION = 8192
MAX_LIFETIME = 300  # seconds an assertion may still have to live
LEEWAY = 30  # seconds of clock difference tolerated


class AssertionRefused(Exception):
    """Why an assertion does not authenticate (for the log; the client is told only
    ``invalid_client``)."""

    def __init__(self, reason: str, client_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.client_id = client_id


class KeySource(Protocol):
    async def key_set(self, client: ClientRecord, *, refresh: bool) -> KeySet | None:
        """The client's public keys (``refresh``: the cached set lacks a ``kid``)."""


@dataclass(frozen=True)
class Unverified:
    client_id: str
    kid: str | None


def peek(assertion: str) -> Unverified:
    """The client an assertion claims to come from, before anything is verified."""
    if not assertion or len(assertion) > MAX_ASSERTION or assertion.count(".") != 2:
        raise AssertionRefused("not a compact JWS of at most 8 KB")
    try:
        compact = extract_compact(assertion.encode("ascii"))
        header = compact.protected
        claims = orjson.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise AssertionRefused("unreadable assertion") from None
    if header.get("alg") not in ALGORITHMS:
        raise AssertionRefused(f"algorithm {str(header.get('alg'))[:20]!r} is not accepted")
    if not isinstance(claims, dict):
        raise AssertionRefused("the payload is not a JSON object")
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not iss or iss != sub:
        raise AssertionRefused("iss and sub must both be the client_id")
    kid = header.get("kid")
    return Unverified(iss, kid if isinstance(kid, str) else None)


class AssertionVerifier:
    """Checks client assertions (``ClientAuthenticator`` asks it)."""

    def __init__(self, database: Database, clock: Clock, issuer: str, keys: KeySource) -> None:
        self.database = database
        self.clock = clock
        self.keys = keys
        self.issuer = issuer
        # The issuer, and every endpoint that authenticates clients.
        self.audiences = frozenset(
            {issuer}
            | {
                f"{issuer}{path}"
                for path in ("/token", "/par", "/revoke", "/introspect", "/webhooks/signing-keys")
            }
        )

    async def verify(self, assertion: str, claimed: Unverified, client: ClientRecord) -> None:
        """Raise ``AssertionRefused`` unless ``assertion`` (``claimed``: what ``peek``
        read of it) authenticates ``client``."""
        keys = await self.keys.key_set(client, refresh=False)
        kid = claimed.kid
        if keys is None or (kid is not None and not _has_kid(keys, kid)):
            keys = await self.keys.key_set(client, refresh=True)
        if keys is None:
            raise AssertionRefused("the client's keys are not available", client.client_id)
        try:
            claims: dict[str, Any] = dict(
                jwt.decode(
                    assertion, keys, algorithms=profiles.signing_algs(client, ALGORITHMS)
                ).claims
            )
        except (JoseError, ValueError, TypeError) as exc:
            raise AssertionRefused(
                f"signature not verified: {type(exc).__name__}", client.client_id
            ) from None
        now = self.clock.timestamp()
        self._check_claims(claims, client, now)
        await self._take_jti(client.client_id, str(claims["jti"]), float(claims["exp"]))

    def _check_claims(self, claims: dict[str, Any], client: ClientRecord, now: float) -> None:
        def refuse(reason: str) -> AssertionRefused:
            return AssertionRefused(reason, client.client_id)

        aud = claims.get("aud")
        if profiles.exact_assertion_audience(client):
            if aud != self.issuer:
                raise refuse("aud must be the issuer, as a string (the client's profile: fapi2)")
        else:
            audiences = (
                {aud}
                if isinstance(aud, str)
                else {a for a in aud if isinstance(a, str)}
                if isinstance(aud, list)
                else set()
            )
            if not audiences & self.audiences:
                raise refuse("aud is not 1pass (the issuer or the endpoint's URL)")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise refuse("exp is required")
        if exp <= now - LEEWAY:
            raise refuse("the assertion has expired")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise refuse("exp is more than five minutes away: assertions are short-lived")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int | float) or value > now + LEEWAY):
                raise refuse(f"{name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 200:
            raise refuse("jti is required (at most 200 characters)")

    async def _take_jti(self, client_id: str, jti: str, exp: float) -> None:
        digest = hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()
        now = self.clock.now()
        try:
            async with self.database.session() as session:
                await session.execute(
                    delete(UsedClientAssertion).where(UsedClientAssertion.expires_at < now)
                )
                session.add(
                    UsedClientAssertion(
                        jti_hash=digest,
                        expires_at=datetime.fromtimestamp(exp + LEEWAY, UTC),
                    )
                )
        except IntegrityError:
            raise AssertionRefused(
                "the jti was used before (a replayed assertion)", client_id
            ) from None


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys)


class InlineKeys:
    """The JWK sets registered with the clients (``--jwks-file``), parsed once each;
    ``fetch`` answers for clients registered with a ``jwks_uri``."""

    def __init__(self, fetch: KeySource | None = None) -> None:
        self._parsed: dict[str, KeySet] = {}
        self._fetch = fetch

    async def key_set(self, client: ClientRecord, *, refresh: bool) -> KeySet | None:
        if client.jwks is not None:
            found = self._parsed.get(client.jwks)
            if found is None:
                if len(self._parsed) > 1000:
                    self._parsed.clear()
                found = KeySet.import_key_set(orjson.loads(client.jwks))
                self._parsed[client.jwks] = found
            return found
        if client.jwks_uri is not None and self._fetch is not None:
            return await self._fetch.key_set(client, refresh=refresh)
        return None
