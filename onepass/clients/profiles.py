"""The security profiles a client may be registered under (``clients create|update
--profile``): 1pass's default (NULL), and ``fapi2``, the FAPI 2.0 Security Profile
(final, §5.3: the authorization server's requirements; docs/security.md maps
each clause to its code and test).

One place holds the profile's rules, and both sides ask it:

- registration (``registry.ClientSettings.checked``) calls ``apply``: the flags the
  profile demands are set (PAR required, DPoP-bound access tokens), and what an
  operator must choose is refused with a message saying what to give instead (a public
  client, an authentication method other than ``private_key_jwt``, an ``http`` redirect
  URI, an ID token algorithm outside ``FAPI2_ID_TOKEN_ALGS``);
- every request asks again, so that a row edited by hand, or a registration made before
  a rule, cannot weaken the profile: ``registration_problems`` (``/authorize``, ``/par``
  refuse a client that no longer meets it), ``requires_par``, ``requires_dpop`` (folded
  into ``ClientRecord`` by ``ClientRecord.of``), ``requires_pkce``, ``code_ttl``,
  ``exact_assertion_audience``, ``requires_private_key_jwt`` and
  ``rotates_refresh_tokens``.

Leaving the profile (``--profile default``) changes no flag: PAR and DPoP stay on until
the operator turns them off (``--no-require-par``...), so nothing is weakened by
accident.

This module imports nothing of 1pass but the auth method names: the registry imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

FAPI2 = "fapi2"
DEFAULT = "default"
# What ``--profile`` takes; DEFAULT is stored as NULL.
PROFILES = (DEFAULT, FAPI2)

# FAPI 2.0 §5.4 (cryptography): PS256, ES256 or EdDSA (Ed25519); never RS256. The
# ID token algorithms a fapi2 client may register: those of these that the key ring
# signs with (``registry.ID_TOKEN_ALGS``), in this order of preference.
FAPI2_ID_TOKEN_ALGS = ("ES256", "PS256", "EdDSA")
# §5.4: the algorithms of every JWS of a profile client (its client assertions and
# request objects too).
FAPI2_SIGNING_ALGS = frozenset(FAPI2_ID_TOKEN_ALGS)
# §5.3, general: "shall issue authorization codes with a maximum lifetime of 60 seconds".
FAPI2_CODE_TTL = 60
PRIVATE_KEY_JWT = "private_key_jwt"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class Registration(Protocol):
    """What the profile looks at: ``ClientSettings`` at registration, ``ClientRecord``
    at request time (the same names)."""

    @property
    def profile(self) -> str | None: ...
    @property
    def token_endpoint_auth_method(self) -> str: ...
    @property
    def redirect_uris(self) -> Sequence[str]: ...
    @property
    def id_token_signed_response_alg(self) -> str: ...
    @property
    def authorization_signed_response_alg(self) -> str | None: ...


class ProfileRefused(Exception):
    """Settings the profile cannot accept; the message says what to do instead."""


def stored(profile: str | None) -> str | None:
    """The column's value for what an operator gave (``default`` is NULL), or
    ``ProfileRefused`` for an unknown profile."""
    if profile is None or profile == DEFAULT:
        return None
    if profile not in PROFILES:
        raise ProfileRefused(f"unknown profile {profile[:40]!r}; profiles: {', '.join(PROFILES)}")
    return profile


def is_fapi2(client: Registration) -> bool:
    return client.profile == FAPI2


def id_token_algs(available: Sequence[str]) -> list[str]:
    """The ID token algorithms a fapi2 client may register, of those ``available``."""
    return [alg for alg in FAPI2_ID_TOKEN_ALGS if alg in available]


def registration_problems(
    client: Registration, *, production: bool, id_token_algs_available: Sequence[str]
) -> list[str]:
    """What in ``client``'s registration its profile refuses (none: it meets it). The
    flags the profile sets itself (PAR, DPoP) are not among them: ``apply`` sets them
    and ``ClientRecord`` reads them as set."""
    if not is_fapi2(client):
        return []
    problems = []
    method = client.token_endpoint_auth_method
    if method == "none":
        problems.append(
            "the fapi2 profile takes only confidential clients: a public client cannot have it"
        )
    elif method != PRIVATE_KEY_JWT:
        problems.append(
            f"the fapi2 profile authenticates clients with private_key_jwt, not {method}: "
            "give --token-endpoint-auth-method private_key_jwt with --jwks-uri or --jwks-file"
        )
    for uri in client.redirect_uris:
        if not https_or_local(uri, production=production):
            problems.append(
                f"the fapi2 profile takes only https redirect URIs (http only on a loopback "
                f"address outside production): {uri[:200]!r}"
            )
    allowed = id_token_algs(id_token_algs_available)
    if client.id_token_signed_response_alg not in allowed:
        problems.append(
            f"the fapi2 profile signs ID tokens with {' or '.join(allowed)}, not "
            f"{client.id_token_signed_response_alg}: give --id-token-alg {allowed[0]}"
        )
    jarm_alg = client.authorization_signed_response_alg
    if jarm_alg is not None and jarm_alg not in FAPI2_SIGNING_ALGS:
        problems.append(
            f"the fapi2 profile signs authorization responses (JARM) with "
            f"{' or '.join(allowed)}, not {jarm_alg}: give "
            f"--authorization-signed-response-alg {allowed[0] if allowed else 'ES256'}"
        )
    return problems


def authorization_response_alg(client: Registration) -> str:
    """The algorithm of ``client``'s signed authorization responses (JARM): the one it
    registered; else RS256 (JARM §3's default), or under the profile its ID token
    algorithm (§5.4: never RS256). FAPI 2.0 Message Signing §5.4 lets a client ask for
    JARM; the Security Profile needs no response mode but ``query``."""
    if client.authorization_signed_response_alg is not None:
        return client.authorization_signed_response_alg
    return client.id_token_signed_response_alg if is_fapi2(client) else "RS256"


def https_or_local(uri: str, *, production: bool) -> bool:
    """An https URL, or (outside production, for development) http on a loopback
    address."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme == "https":
        return True
    return not production and parts.scheme == "http" and host in LOOPBACK


def requires_par(client: Registration) -> bool:
    """§5.3, code flow: authorization requests only by PAR (RFC 9126)."""
    return is_fapi2(client)


def requires_dpop(client: Registration) -> bool:
    """§5.3, general: sender-constrained access tokens (1pass: DPoP, RFC 9449)."""
    return is_fapi2(client)


def requires_pkce(client: Registration) -> bool:
    """§5.3, code flow: PKCE with S256 on every authorization request (1pass requires it of
    public clients, and of every client under the profile)."""
    return is_fapi2(client)


def requires_private_key_jwt(client: Registration) -> bool:
    """§5.3, general: clients authenticate with private_key_jwt (1pass has no mTLS)."""
    return is_fapi2(client)


def exact_assertion_audience(client: Registration) -> bool:
    """§5.3, general: a client assertion's ``aud`` is the issuer, as a string, and nothing
    else (other clients may also name the endpoint's URL, as RP libraries do)."""
    return is_fapi2(client)


def rotates_refresh_tokens(client: Registration) -> bool:
    """§5.3, general: "shall not use refresh token rotation unless, in the case a response
    with a new refresh token is not received and stored by the client, retrying the
    request (with the previous refresh token) will succeed". A profile client's refresh
    token is confidential and its access tokens sender-constrained, so 1pass does not
    rotate it: a refresh answers without a new refresh token, and the same one works
    again (its sliding expiry moves on; the family's absolute expiry still ends it)."""
    return not is_fapi2(client)


def code_ttl(client: Registration, default: int) -> int:
    """How long an authorization code of ``client`` lives (§5.3: at most 60 s)."""
    return min(default, FAPI2_CODE_TTL) if is_fapi2(client) else default


def signing_algs(client: Registration, accepted: Sequence[str]) -> list[str]:
    """The algorithms a JWS from ``client`` (an assertion, a request object) may use, of
    those 1pass ``accepted`` (§5.4: RS256 never under the profile)."""
    if is_fapi2(client):
        return [alg for alg in accepted if alg in FAPI2_SIGNING_ALGS]
    return list(accepted)
