"""OAuth applications (RPs): registration, lookup, secrets, and a per-process cache.

Field names follow RFC 7591 (OAuth 2.0 Dynamic Client Registration) and OpenID
Connect Dynamic Client Registration 1.0.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

import orjson
import structlog
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients import auth as client_auth
from onepass.clients import profiles, resources, subjects
from onepass.clients.models import OAuthApplication
from onepass.clients.scopes import parse_scope
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.db import Database
from onepass.ids import random_identifier
from onepass.keys.jwt import SUPPORTED_ALGS
from onepass.refusals import Invalid, NotFound, Refusal
from onepass.services import Service

log = structlog.get_logger("onepass.clients")

# Token Exchange (RFC 8693 §2.1): a client has it exactly when its exchange policy
# names a resource server (``token_exchange_resources``): refused by default.
TOKEN_EXCHANGE = resources.TOKEN_EXCHANGE
# RFC 8628: the Device Authorization Grant.
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    TOKEN_EXCHANGE,
    DEVICE_CODE,
)
# What a client's id_token_signed_response_alg may be: every algorithm the key ring can
# keep keys for (``keys.jwt.SUPPORTED_ALGS``; the FAPI 2.0 subset is ``keys.jwt.FAPI_ALGS``).
ID_TOKEN_ALGS = SUPPORTED_ALGS
# What a client's authorization_signed_response_alg (JARM §3) may be: the same.
AUTHORIZATION_RESPONSE_ALGS = SUPPORTED_ALGS


class ClientError(Refusal):
    """A client registration or lookup that cannot be done; the message says why."""


class ClientNotFound(ClientError, NotFound):
    pass


class InvalidClientSettings(ClientError, Invalid):
    """Settings a client cannot have (at creation or by ``update``); the message says why."""


class InvalidRedirectUri(InvalidClientSettings):
    """A redirect URI refused, or none where one is needed (Dynamic Client
    Registration answers ``invalid_redirect_uri``, RFC 7591 §3.2.2)."""


@dataclass(frozen=True)
class ClientRecord:
    """What the token endpoint needs to know about a client, immutable and cacheable."""

    id: int
    client_id: str
    client_secret_hash: str | None
    grant_types: frozenset[str]
    scopes: frozenset[str]
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    # The RP's privacy policy and terms (RFC 7591 §2), linked from the consent page.
    policy_uri: str | None = None
    tos_uri: str | None = None
    client_name: str = ""
    first_party: bool = False
    require_second_factor: bool = False
    require_pushed_authorization_requests: bool = False
    # private_key_jwt: the client's JWK set (canonical JSON text), or where to fetch it.
    jwks: str | None = None
    jwks_uri: str | None = None
    id_token_signed_response_alg: str = "RS256"
    # DPoP (RFC 9449 §5.2): refuse a token request without a proof.
    dpop_bound_access_tokens: bool = False
    # Signed request objects only (RFC 9101 §10.5).
    require_signed_request_object: bool = False
    # NULL: 1pass's default; "fapi2": the FAPI 2.0 Security Profile.
    profile: str | None = None
    # OpenID Connect Back-Channel Logout 1.0 §2.2.
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    # A secret replaced by a rotation with a grace, and when it stops verifying (a
    # POSIX timestamp; 0: there is none).
    previous_secret_hash: str | None = None
    previous_secret_expires: float = 0.0
    # OpenID Connect Core §8 (``clients.subjects``): "public" or "pairwise".
    subject_type: str = subjects.PUBLIC
    sector_identifier_uri: str | None = None
    # JARM §3: what its signed authorization responses are signed with (the default
    # filled in: ``profiles.authorization_response_alg``).
    authorization_signed_response_alg: str = "RS256"
    # Resource Indicators (RFC 8707) and Token Exchange (RFC 8693): the resource servers
    # this client may ask tokens for, and those it may exchange a user's token to.
    allowed_resources: frozenset[str] = frozenset()
    token_exchange_resources: frozenset[str] = frozenset()

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @classmethod
    def of(cls, app: OAuthApplication) -> ClientRecord:
        return cls(
            id=app.id,
            client_id=app.client_id,
            client_secret_hash=app.client_secret_hash,
            grant_types=frozenset(app.grant_types),
            scopes=frozenset(parse_scope(app.scope)),
            token_endpoint_auth_method=app.token_endpoint_auth_method,
            redirect_uris=tuple(app.redirect_uris),
            post_logout_redirect_uris=tuple(app.post_logout_redirect_uris),
            policy_uri=app.policy_uri,
            tos_uri=app.tos_uri,
            client_name=app.client_name,
            first_party=app.first_party,
            require_second_factor=app.require_second_factor,
            # The profile's demands hold whatever the row says (``clients.profiles``).
            require_pushed_authorization_requests=(
                app.require_pushed_authorization_requests or profiles.requires_par(app)
            ),
            jwks=orjson.dumps(app.jwks, option=orjson.OPT_SORT_KEYS).decode() if app.jwks else None,
            jwks_uri=app.jwks_uri,
            id_token_signed_response_alg=app.id_token_signed_response_alg,
            dpop_bound_access_tokens=app.dpop_bound_access_tokens or profiles.requires_dpop(app),
            require_signed_request_object=app.require_signed_request_object,
            profile=app.profile,
            backchannel_logout_uri=app.backchannel_logout_uri,
            backchannel_logout_session_required=app.backchannel_logout_session_required,
            previous_secret_hash=app.previous_secret_hash,
            previous_secret_expires=(
                app.previous_secret_expires_at.timestamp()
                if app.previous_secret_hash and app.previous_secret_expires_at
                else 0.0
            ),
            subject_type=app.subject_type or subjects.PUBLIC,
            sector_identifier_uri=app.sector_identifier_uri,
            authorization_signed_response_alg=profiles.authorization_response_alg(app),
            allowed_resources=frozenset(app.allowed_resources or ()),
            token_exchange_resources=frozenset(app.token_exchange_resources or ()),
        )


@dataclass(frozen=True)
class NewClient:
    application: OAuthApplication
    client_secret: str | None  # shown once


def generate_client_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def _split(uri: str, what: str) -> SplitResult:
    try:
        parts = urlsplit(uri)
        parts.hostname  # noqa: B018  (raises for a malformed host, e.g. "[::1")
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        raise InvalidClientSettings(f"{what} {uri[:200]!r} is not a valid URL") from None
    return parts


def _check_uri(uri: str, what: str, *, production: bool) -> str:
    parts = _split(uri, what)
    if parts.scheme not in ("https", "http") and not (parts.scheme and "." in parts.scheme):
        raise InvalidClientSettings(f"{what} {uri!r} must be an absolute URL")
    if not parts.netloc and parts.scheme in ("http", "https"):
        raise InvalidClientSettings(f"{what} {uri!r} has no host")
    if parts.fragment or "#" in uri:
        raise InvalidClientSettings(f"{what} {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if production and parts.scheme == "http" and not loopback:
        raise InvalidClientSettings(f"{what} {uri!r} must use https in production")
    return uri


def _check_page_uri(uri: str, what: str, *, production: bool) -> str:
    """A page of the RP shown to people (its privacy policy, its terms): an absolute
    http(s) URL, https in production unless on this machine, as redirect URIs."""
    if any(c.isspace() or not c.isprintable() for c in uri):
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must not contain spaces or controls")
    parts = _split(uri, what)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must be an absolute https URL")
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if production and parts.scheme == "http" and not loopback:
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must use https in production")
    return uri


@dataclass
class ClientSettings:
    """What an operator sets on a client, at creation and by ``update``: the one set of
    rules (``checked``) both go through."""

    name: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    policy_uri: str | None
    tos_uri: str | None
    grant_types: list[str]
    scope: str
    token_endpoint_auth_method: str
    id_token_signed_response_alg: str
    first_party: bool
    webhook_url: str | None
    webhook_events: list[str]
    require_second_factor: bool = False
    require_pushed_authorization_requests: bool = False
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    require_signed_request_object: bool = False
    dpop_bound_access_tokens: bool = False
    profile: str | None = None  # None or "default": 1pass's default; "fapi2"
    # OpenID Connect Back-Channel Logout 1.0 §2.2.
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    # OpenID Connect Core §8.1 (``clients.subjects``).
    subject_type: str = subjects.PUBLIC
    sector_identifier_uri: str | None = None
    # JARM §3 (None: the default, ``profiles.authorization_response_alg``).
    authorization_signed_response_alg: str | None = None
    # RFC 8707 / RFC 8693: resource server identifiers (``onepass.clients.resources``).
    allowed_resources: list[str] = dataclass_field(default_factory=list)
    token_exchange_resources: list[str] = dataclass_field(default_factory=list)

    @classmethod
    def of(cls, app: OAuthApplication) -> ClientSettings:
        return cls(
            name=app.client_name,
            redirect_uris=list(app.redirect_uris),
            post_logout_redirect_uris=list(app.post_logout_redirect_uris),
            policy_uri=app.policy_uri,
            tos_uri=app.tos_uri,
            grant_types=list(app.grant_types),
            scope=app.scope,
            token_endpoint_auth_method=app.token_endpoint_auth_method,
            id_token_signed_response_alg=app.id_token_signed_response_alg,
            first_party=app.first_party,
            webhook_url=app.webhook_url,
            webhook_events=list(app.webhook_events),
            require_second_factor=app.require_second_factor,
            require_pushed_authorization_requests=app.require_pushed_authorization_requests,
            jwks=app.jwks,
            jwks_uri=app.jwks_uri,
            require_signed_request_object=app.require_signed_request_object,
            dpop_bound_access_tokens=app.dpop_bound_access_tokens,
            profile=app.profile,
            backchannel_logout_uri=app.backchannel_logout_uri,
            backchannel_logout_session_required=app.backchannel_logout_session_required,
            subject_type=app.subject_type or subjects.PUBLIC,
            sector_identifier_uri=app.sector_identifier_uri,
            authorization_signed_response_alg=app.authorization_signed_response_alg,
            allowed_resources=list(app.allowed_resources or []),
            token_exchange_resources=list(app.token_exchange_resources or []),
        )

    def checked(self, *, production: bool) -> ClientSettings:
        """These settings normalised, or ``ClientError`` saying what is wrong."""
        name = self.name.strip()
        if not name or len(name) > 200:
            raise InvalidClientSettings("name must be 1 to 200 characters")
        try:
            redirect_uris = list(
                dict.fromkeys(
                    _check_uri(u, "redirect URI", production=production) for u in self.redirect_uris
                )
            )
        except InvalidClientSettings as exc:
            raise InvalidRedirectUri(str(exc)) from None
        post_logout = list(
            dict.fromkeys(
                _check_uri(u, "post-logout redirect URI", production=production)
                for u in self.post_logout_redirect_uris
            )
        )
        policy_uri, tos_uri = (
            None if uri is None else _check_page_uri(uri, what, production=production)
            for uri, what in ((self.policy_uri, "policy URI"), (self.tos_uri, "terms URI"))
        )
        allowed_resources = _resource_list(self.allowed_resources)
        exchange_resources = _resource_list(self.token_exchange_resources)
        # The exchange grant goes with its policy: on with a resource, off without.
        grant_types = [g for g in dict.fromkeys(self.grant_types) if g != TOKEN_EXCHANGE]
        if exchange_resources:
            if self.token_endpoint_auth_method == client_auth.NONE:
                raise InvalidClientSettings(
                    "a public client cannot exchange tokens (RFC 8693 needs client authentication)"
                )
            grant_types.append(TOKEN_EXCHANGE)
        if not grant_types:
            raise InvalidClientSettings("a client needs at least one grant type")
        unknown = [g for g in grant_types if g not in GRANT_TYPES]
        if unknown:
            raise InvalidClientSettings(
                f"unsupported grant type {unknown[0]!r}; supported: {', '.join(GRANT_TYPES)}"
            )
        if "authorization_code" in grant_types and not redirect_uris:
            raise InvalidRedirectUri("the authorization_code grant needs at least one redirect URI")
        if "refresh_token" in grant_types and not (
            "authorization_code" in grant_types or DEVICE_CODE in grant_types
        ):
            raise InvalidClientSettings(
                "the refresh_token grant comes with authorization_code (or the device_code grant)"
            )
        method = self.token_endpoint_auth_method
        if method not in client_auth.AUTH_METHODS:
            raise InvalidClientSettings(
                f"unsupported token_endpoint_auth_method {method[:60]!r}; supported: "
                + ", ".join(client_auth.AUTH_METHODS)
            )
        if method == client_auth.NONE and "client_credentials" in grant_types:
            raise InvalidClientSettings("a public client cannot use the client_credentials grant")
        if self.id_token_signed_response_alg not in ID_TOKEN_ALGS:
            raise InvalidClientSettings(
                f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}"
            )
        jarm_alg = self.authorization_signed_response_alg
        if jarm_alg is not None and jarm_alg not in AUTHORIZATION_RESPONSE_ALGS:
            raise InvalidClientSettings(
                "authorization_signed_response_alg must be one of "
                + ", ".join(AUTHORIZATION_RESPONSE_ALGS)
            )
        try:
            scopes = parse_scope(self.scope)
        except Exception:
            raise InvalidClientSettings(
                "scope contains a character RFC 6749 §3.3 does not allow"
            ) from None
        webhook_url = self.webhook_url
        if webhook_url is not None:
            parts = _split(webhook_url, "webhook URL")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise InvalidClientSettings(
                    f"webhook URL {webhook_url!r} must be an absolute http(s) URL"
                )
            if production and parts.scheme != "https":
                raise InvalidClientSettings("webhook URLs must use https in production")
        jwks, jwks_uri = check_client_keys(self.jwks, self.jwks_uri, method, production=production)
        try:
            profile = profiles.stored(self.profile)
        except profiles.ProfileRefused as exc:
            raise InvalidClientSettings(str(exc)) from None
        logout_uri = self.backchannel_logout_uri
        if logout_uri is not None:
            logout_uri = check_backchannel_logout_uri(logout_uri, production=production)
        if self.backchannel_logout_session_required and logout_uri is None:
            raise InvalidClientSettings(
                "backchannel_logout_session_required needs a backchannel_logout_uri"
            )
        try:
            subjects.check_subject_settings(
                self.subject_type,
                redirect_uris,
                self.sector_identifier_uri,
                production=production,
            )
        except subjects.SubjectSettingsRefused as exc:
            raise InvalidClientSettings(str(exc)) from None
        checked = ClientSettings(
            name=name,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            policy_uri=policy_uri,
            tos_uri=tos_uri,
            grant_types=grant_types,
            scope=" ".join(scopes),
            token_endpoint_auth_method=method,
            id_token_signed_response_alg=self.id_token_signed_response_alg,
            first_party=self.first_party,
            webhook_url=webhook_url,
            webhook_events=list(dict.fromkeys(self.webhook_events)),
            require_second_factor=self.require_second_factor,
            require_pushed_authorization_requests=self.require_pushed_authorization_requests,
            jwks=jwks,
            jwks_uri=jwks_uri,
            require_signed_request_object=self.require_signed_request_object,
            dpop_bound_access_tokens=self.dpop_bound_access_tokens,
            profile=profile,
            backchannel_logout_uri=logout_uri,
            backchannel_logout_session_required=self.backchannel_logout_session_required,
            subject_type=self.subject_type,
            sector_identifier_uri=self.sector_identifier_uri,
            authorization_signed_response_alg=jarm_alg,
            allowed_resources=allowed_resources,
            token_exchange_resources=exchange_resources,
        )
        problems = profiles.registration_problems(
            checked, production=production, id_token_algs_available=ID_TOKEN_ALGS
        )
        if problems:
            raise InvalidClientSettings("; ".join(problems))
        if profiles.requires_par(checked):
            checked.require_pushed_authorization_requests = True
        if profiles.requires_dpop(checked):
            checked.dpop_bound_access_tokens = True
        return checked

    def apply(self, app: OAuthApplication) -> list[str]:
        """Write these settings on ``app``; the names of the fields that changed (RFC
        7591 names)."""
        changed = []
        for field, value in (
            ("client_name", self.name),
            ("redirect_uris", self.redirect_uris),
            ("post_logout_redirect_uris", self.post_logout_redirect_uris),
            ("policy_uri", self.policy_uri),
            ("tos_uri", self.tos_uri),
            ("grant_types", self.grant_types),
            ("response_types", self.response_types),
            ("scope", self.scope),
            ("token_endpoint_auth_method", self.token_endpoint_auth_method),
            ("id_token_signed_response_alg", self.id_token_signed_response_alg),
            ("first_party", self.first_party),
            ("require_second_factor", self.require_second_factor),
            ("require_pushed_authorization_requests", self.require_pushed_authorization_requests),
            ("jwks", self.jwks),
            ("jwks_uri", self.jwks_uri),
            ("require_signed_request_object", self.require_signed_request_object),
            ("dpop_bound_access_tokens", self.dpop_bound_access_tokens),
            ("profile", self.profile),
            ("webhook_url", self.webhook_url),
            ("webhook_events", self.webhook_events),
            ("backchannel_logout_uri", self.backchannel_logout_uri),
            ("backchannel_logout_session_required", self.backchannel_logout_session_required),
            ("subject_type", self.subject_type),
            ("sector_identifier_uri", self.sector_identifier_uri),
            ("authorization_signed_response_alg", self.authorization_signed_response_alg),
            ("allowed_resources", self.allowed_resources or None),
            ("token_exchange_resources", self.token_exchange_resources or None),
        ):
            if getattr(app, field, None) != value:
                setattr(app, field, value)
                changed.append(field)
        return changed

    @property
    def response_types(self) -> list[str]:
        return ["code"] if "authorization_code" in self.grant_types else []


def _resource_list(identifiers: list[str]) -> list[str]:
    """Resource server identifiers, deduplicated, each an absolute URI (RFC 8707 §2);
    that each is registered is ``create_client``'s and ``update_client``'s to check."""
    for uri in identifiers:
        problem = resources.identifier_problem(uri)
        if problem is not None:
            raise InvalidClientSettings(problem)
    return list(dict.fromkeys(identifiers))


MAX_JWKS_BYTES = 16 * 1024
MAX_JWKS_KEYS = 10
PUBLIC_KEY_TYPES = ("RSA", "EC", "OKP")
# Members that make a JWK private (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2); "k" a secret.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def check_client_keys(
    jwks: dict[str, Any] | None, jwks_uri: str | None, method: str, *, production: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """A client's public keys, inline or by URL: at most one of them, one of them for
    ``private_key_jwt``; only public RSA, EC or OKP keys; an absolute http(s) URL
    (https in production) without credentials. ``InvalidClientSettings`` says what is
    wrong."""
    if jwks is not None and jwks_uri is not None:
        raise InvalidClientSettings("give the client's keys inline (jwks) or by jwks_uri, not both")
    if method == client_auth.PRIVATE_KEY_JWT and jwks is None and jwks_uri is None:
        raise InvalidClientSettings(
            "private_key_jwt needs the client's public keys: jwks or jwks_uri"
        )
    if jwks is not None:
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys or len(keys) > MAX_JWKS_KEYS:
            raise InvalidClientSettings(
                f'jwks must be a JWK set: {{"keys": [...]}} with 1 to {MAX_JWKS_KEYS} keys'
            )
        if len(orjson.dumps(jwks)) > MAX_JWKS_BYTES:
            raise InvalidClientSettings("jwks is larger than 16 KB")
        for key in keys:
            if not isinstance(key, dict) or key.get("kty") not in PUBLIC_KEY_TYPES:
                raise InvalidClientSettings("each key of jwks must be a public RSA, EC or OKP key")
            if any(member in key for member in PRIVATE_MEMBERS):
                raise InvalidClientSettings(
                    "jwks contains a private key: register only the public keys"
                )
        try:
            KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except Exception as exc:  # joserfc raises several kinds for a malformed key
            raise InvalidClientSettings(f"jwks is not a valid JWK set: {exc}"[:200]) from None
    if jwks_uri is not None:
        parts = _split(jwks_uri, "jwks_uri")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidClientSettings("jwks_uri must be an absolute http(s) URL")
        if production and parts.scheme != "https":
            raise InvalidClientSettings("jwks_uri must use https in production")
        if parts.username is not None or parts.password is not None or parts.fragment:
            raise InvalidClientSettings("jwks_uri must not contain credentials or a fragment")
    return jwks, jwks_uri


def check_backchannel_logout_uri(uri: str, *, production: bool) -> str:
    """OpenID Connect Back-Channel Logout 1.0 §2.2: an absolute http(s) URL, https in
    production, without credentials or a fragment. The webhook URLs' address rules (no
    private, loopback or metadata address) are the playbook's to apply on top
    (``webhooks.keys.check_backchannel_logout_uri``), as for a webhook URL."""
    what = "backchannel_logout_uri"
    if any(c.isspace() or not c.isprintable() for c in uri):
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must not contain spaces or controls")
    parts = _split(uri, what)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must be an absolute http(s) URL")
    if parts.fragment or "#" in uri:
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must not contain a fragment (§2.2)")
    if parts.username is not None or parts.password is not None:
        raise InvalidClientSettings(f"{what} must not contain credentials (user:password@)")
    if production and parts.scheme != "https":
        raise InvalidClientSettings(f"{what} {uri[:200]!r} must use https in production")
    return uri


def check_id_token_alg(alg: str, signing_algs: Collection[str]) -> None:
    """``InvalidClientSettings`` unless ID tokens can be signed with ``alg`` here: one of
    ``ID_TOKEN_ALGS`` that the key ring keeps keys for (``signing_algs``,
    ONEPASS_SIGNING_ALGS)."""
    if alg not in ID_TOKEN_ALGS:
        raise InvalidClientSettings(
            f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}"
        )
    if alg not in signing_algs:
        raise InvalidClientSettings(
            f"id_token_signed_response_alg {alg} has no signing key on this server: "
            f"ONEPASS_SIGNING_ALGS is {','.join(signing_algs)} (add {alg} to it and restart)"
        )


def check_authorization_response_alg(alg: str | None, signing_algs: Collection[str]) -> None:
    """``InvalidClientSettings`` unless signed authorization responses (JARM) can be
    signed with ``alg`` here (None: the default, RS256 or the ID token's)."""
    if alg is not None and alg not in AUTHORIZATION_RESPONSE_ALGS:
        raise InvalidClientSettings(
            "authorization_signed_response_alg must be one of "
            + ", ".join(AUTHORIZATION_RESPONSE_ALGS)
        )
    if alg is not None and alg not in signing_algs:
        raise InvalidClientSettings(
            f"authorization_signed_response_alg {alg} has no signing key on this server: "
            f"ONEPASS_SIGNING_ALGS is {','.join(signing_algs)} (add {alg} to it and restart)"
        )


def default_grant_types(redirect_uris: list[str] | None) -> list[str]:
    """A client with a redirect URI signs users in and may stay signed in
    (``offline_access``); one without is a service (client_credentials is asked for)."""
    return ["authorization_code", "refresh_token"] if redirect_uris else ["authorization_code"]


async def create_client(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    *,
    name: str,
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    policy_uri: str | None = None,
    tos_uri: str | None = None,
    grant_types: list[str] | None = None,
    scope: str | None = None,
    public: bool = False,
    token_endpoint_auth_method: str | None = None,
    id_token_signed_response_alg: str | None = None,
    first_party: bool = False,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
    require_second_factor: bool = False,
    require_pushed_authorization_requests: bool = False,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    require_signed_request_object: bool = False,
    dpop_bound_access_tokens: bool = False,
    profile: str | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
    subject_type: str | None = None,
    sector_identifier_uri: str | None = None,
    authorization_signed_response_alg: str | None = None,
    allowed_resources: list[str] | None = None,
    token_exchange_resources: list[str] | None = None,
    production: bool = False,
    signing_algs: Collection[str] | None = None,
) -> NewClient:
    """Register a client. Under ``profile="fapi2"`` the defaults are the profile's
    (``private_key_jwt``, an ID token algorithm it allows) and what it demands is set
    or, when the operator chose otherwise, refused (``clients.profiles``).
    ``signing_algs`` (ONEPASS_SIGNING_ALGS) refuses an ``id_token_signed_response_alg``
    the key ring keeps no key for; None: any of ``ID_TOKEN_ALGS``."""
    grant_types = list(grant_types or default_grant_types(redirect_uris))
    fapi2 = profile == profiles.FAPI2
    method = token_endpoint_auth_method or (
        client_auth.NONE
        if public
        else client_auth.PRIVATE_KEY_JWT
        if fapi2
        else client_auth.CLIENT_SECRET_BASIC
    )
    if id_token_signed_response_alg is None:
        allowed = profiles.id_token_algs(
            ID_TOKEN_ALGS if signing_algs is None else tuple(signing_algs)
        )
        id_token_signed_response_alg = allowed[0] if fapi2 and allowed else "RS256"
    if method in client_auth.AUTH_METHODS and public != (method == client_auth.NONE):
        raise InvalidClientSettings(
            "public clients authenticate with 'none'; confidential ones with a secret"
        )
    if scope is None:
        user_grants = "authorization_code" in grant_types or DEVICE_CODE in grant_types
        scope = "openid profile email offline_access" if user_grants else ""
    settings = ClientSettings(
        name=name,
        redirect_uris=list(redirect_uris or []),
        post_logout_redirect_uris=list(post_logout_redirect_uris or []),
        policy_uri=policy_uri or None,
        tos_uri=tos_uri or None,
        grant_types=grant_types,
        scope=scope,
        token_endpoint_auth_method=method,
        id_token_signed_response_alg=id_token_signed_response_alg,
        first_party=first_party,
        webhook_url=webhook_url,
        webhook_events=list(webhook_events or []),
        require_second_factor=require_second_factor,
        require_pushed_authorization_requests=require_pushed_authorization_requests,
        jwks=jwks,
        jwks_uri=jwks_uri,
        require_signed_request_object=require_signed_request_object,
        dpop_bound_access_tokens=dpop_bound_access_tokens,
        profile=profile,
        backchannel_logout_uri=backchannel_logout_uri or None,
        backchannel_logout_session_required=backchannel_logout_session_required,
        subject_type=subject_type or subjects.PUBLIC,
        sector_identifier_uri=sector_identifier_uri or None,
        authorization_signed_response_alg=authorization_signed_response_alg or None,
        allowed_resources=list(allowed_resources or []),
        token_exchange_resources=list(token_exchange_resources or []),
    ).checked(production=production)
    await _check_resources_known(session, settings)
    if signing_algs is not None:
        check_id_token_alg(settings.id_token_signed_response_alg, signing_algs)
        check_authorization_response_alg(settings.authorization_signed_response_alg, signing_algs)

    # A client that signs assertions has no secret (RFC 7523: its keys are its proof).
    secret = None if public or method == client_auth.PRIVATE_KEY_JWT else generate_client_secret()
    now = clock.now()
    app = OAuthApplication(
        client_id=random_identifier(24),
        client_secret_hash=hasher.hash(secret) if secret else None,
        created_at=now,
        updated_at=now,
    )
    settings.apply(app)
    session.add(app)
    await session.flush()
    return NewClient(app, secret)


@dataclass(frozen=True)
class ClientChanges:
    """An ``update``: None leaves a field as it is; lists given replace, the add/remove
    pairs edit the URIs."""

    name: str | None = None
    add_redirect_uris: tuple[str, ...] = ()
    remove_redirect_uris: tuple[str, ...] = ()
    add_post_logout_redirect_uris: tuple[str, ...] = ()
    remove_post_logout_redirect_uris: tuple[str, ...] = ()
    policy_uri: str | None = None  # "" removes it
    tos_uri: str | None = None  # "" removes it
    grant_types: tuple[str, ...] | None = None
    scopes: tuple[str, ...] | None = None
    token_endpoint_auth_method: str | None = None
    first_party: bool | None = None
    webhook_url: str | None = None  # "" removes it
    webhook_events: tuple[str, ...] | None = None
    require_second_factor: bool | None = None
    require_pushed_authorization_requests: bool | None = None
    jwks: dict[str, Any] | None = None  # replaces the JWK set ({} removes it)
    jwks_uri: str | None = None  # "" removes it
    id_token_signed_response_alg: str | None = None
    require_signed_request_object: bool | None = None
    profile: str | None = None  # "default" or "fapi2"
    backchannel_logout_uri: str | None = None  # "" removes it
    backchannel_logout_session_required: bool | None = None
    dpop_bound_access_tokens: bool | None = None
    # OpenID Connect Core §8.1: "public" or "pairwise"; sector_identifier_uri "" removes it.
    subject_type: str | None = None
    sector_identifier_uri: str | None = None
    authorization_signed_response_alg: str | None = None  # "" returns to the default
    # RFC 8707 / RFC 8693: resource server identifiers added to or removed from the
    # client's allowed resources and its token exchange policy.
    add_resources: tuple[str, ...] = ()
    remove_resources: tuple[str, ...] = ()
    add_token_exchange_resources: tuple[str, ...] = ()
    remove_token_exchange_resources: tuple[str, ...] = ()


async def _check_resources_known(session: AsyncSession, settings: ClientSettings) -> None:
    try:
        await resources.require_known(
            session, [*settings.allowed_resources, *settings.token_exchange_resources]
        )
    except resources.InvalidResource as exc:
        raise InvalidClientSettings(str(exc)) from None


def _edited(
    current: list[str], add: tuple[str, ...], remove: tuple[str, ...], what: str
) -> list[str]:
    missing = [u for u in remove if u not in current]
    if missing:
        raise InvalidClientSettings(f"the client has no {what} {missing[0][:200]!r} to remove")
    return [u for u in current if u not in remove] + [u for u in add if u not in current]


async def update_client(
    session: AsyncSession,
    clock: Clock,
    app: OAuthApplication,
    changes: ClientChanges,
    *,
    production: bool = False,
    signing_algs: Collection[str] | None = None,
) -> list[str]:
    """Apply ``changes`` to ``app`` under the rules of ``create_client``; the names of
    the fields that changed (none: nothing is written). A new
    ``id_token_signed_response_alg`` must be one ``signing_algs`` keeps keys for (the
    current one is left alone, even if its algorithm was taken out of the setting:
    changing it is how the client is moved)."""
    settings = ClientSettings.of(app)
    alg = changes.id_token_signed_response_alg
    if alg is not None and alg != app.id_token_signed_response_alg:
        check_id_token_alg(alg, ID_TOKEN_ALGS if signing_algs is None else signing_algs)
        settings.id_token_signed_response_alg = alg
    jarm_alg = changes.authorization_signed_response_alg
    if jarm_alg is not None and (jarm_alg or None) != app.authorization_signed_response_alg:
        if jarm_alg:
            check_authorization_response_alg(
                jarm_alg, ID_TOKEN_ALGS if signing_algs is None else signing_algs
            )
        settings.authorization_signed_response_alg = jarm_alg or None
    if changes.name is not None:
        settings.name = changes.name
    settings.redirect_uris = _edited(
        settings.redirect_uris,
        changes.add_redirect_uris,
        changes.remove_redirect_uris,
        "redirect URI",
    )
    settings.post_logout_redirect_uris = _edited(
        settings.post_logout_redirect_uris,
        changes.add_post_logout_redirect_uris,
        changes.remove_post_logout_redirect_uris,
        "post-logout redirect URI",
    )
    if changes.policy_uri is not None:
        settings.policy_uri = changes.policy_uri or None
    if changes.tos_uri is not None:
        settings.tos_uri = changes.tos_uri or None
    if changes.grant_types is not None:
        settings.grant_types = list(changes.grant_types)
    if changes.scopes is not None:
        settings.scope = " ".join(changes.scopes)
    if changes.token_endpoint_auth_method is not None:
        method = changes.token_endpoint_auth_method
        if (method == client_auth.NONE) != app.is_public:
            raise InvalidClientSettings(
                "a client cannot change between public ('none') and confidential (a secret);"
                " register a new client"
            )
        settings.token_endpoint_auth_method = method
    if changes.first_party is not None:
        settings.first_party = changes.first_party
    if changes.require_second_factor is not None:
        settings.require_second_factor = changes.require_second_factor
    if changes.jwks is not None:
        settings.jwks = changes.jwks or None
        if changes.jwks:
            settings.jwks_uri = None  # one source of keys: the new one replaces the other
    if changes.jwks_uri is not None:
        settings.jwks_uri = changes.jwks_uri or None
        if changes.jwks_uri:
            settings.jwks = None
    if changes.require_pushed_authorization_requests is not None:
        settings.require_pushed_authorization_requests = (
            changes.require_pushed_authorization_requests
        )
    if changes.require_signed_request_object is not None:
        settings.require_signed_request_object = changes.require_signed_request_object
    if changes.profile is not None:
        # Leaving a profile keeps the flags it set (PAR, DPoP): turned off only when asked.
        settings.profile = changes.profile
    if changes.backchannel_logout_uri is not None:
        settings.backchannel_logout_uri = changes.backchannel_logout_uri or None
        if (
            not changes.backchannel_logout_uri
            and changes.backchannel_logout_session_required is None
        ):
            settings.backchannel_logout_session_required = False  # goes with its URI
    if changes.backchannel_logout_session_required is not None:
        settings.backchannel_logout_session_required = changes.backchannel_logout_session_required
    if changes.dpop_bound_access_tokens is not None:
        settings.dpop_bound_access_tokens = changes.dpop_bound_access_tokens
    if changes.subject_type is not None:
        settings.subject_type = changes.subject_type
    if changes.sector_identifier_uri is not None:
        settings.sector_identifier_uri = changes.sector_identifier_uri or None
    if changes.webhook_url is not None:
        settings.webhook_url = changes.webhook_url or None
    if changes.webhook_events is not None:
        settings.webhook_events = list(changes.webhook_events)
    if (
        settings.webhook_url is None
        and changes.webhook_url == ""
        and changes.webhook_events is None
    ):
        settings.webhook_events = []  # removing the URL drops the subscriptions with it
    if profiles.requires_par(settings) and changes.require_pushed_authorization_requests is False:
        raise InvalidClientSettings(
            "the fapi2 profile requires PAR: leave the profile first (--profile default)"
        )
    checked = settings.checked(production=production)
    _check_sector_kept(app, checked, changes)
    settings.allowed_resources = _edited(
        settings.allowed_resources, changes.add_resources, changes.remove_resources, "resource"
    )
    settings.token_exchange_resources = _edited(
        settings.token_exchange_resources,
        changes.add_token_exchange_resources,
        changes.remove_token_exchange_resources,
        "token exchange resource",
    )
    checked = settings.checked(production=production)
    if changes.add_resources or changes.add_token_exchange_resources:
        await _check_resources_known(session, checked)
    changed = checked.apply(app)
    if changed:
        app.updated_at = clock.now()
    return changed


def _check_sector_kept(
    app: OAuthApplication, settings: ClientSettings, changes: ClientChanges
) -> None:
    """A pairwise client's sector changes only when the operator says so (a new subject
    type or sector identifier URI): moving its redirect URIs to another host would give
    every user a new ``sub`` at the RP (``clients.subjects``)."""
    before = subjects.sector_of(app)
    after = subjects.sector(
        settings.subject_type, settings.redirect_uris, settings.sector_identifier_uri
    )
    if (
        before is not None
        and after != before
        and changes.subject_type is None
        and changes.sector_identifier_uri is None
    ):
        raise InvalidClientSettings(
            f"this would move the pairwise client from sector {before} to {after}, and so "
            "change the sub of every user it knows; keep a redirect URI on "
            f"{before}, or give a sector_identifier_uri on {before} listing the new ones"
        )


def describe_client(app: OAuthApplication) -> dict[str, Any]:
    """The client as ``clients show --json`` and the admin API print it: RFC 7591 field
    names, plus our own ``id``, webhook settings and state; never a secret or its hash."""
    return {
        "id": app.id,
        "client_id": app.client_id,
        "client_name": app.client_name,
        "client_id_issued_at": int(app.created_at.timestamp()),
        "redirect_uris": app.redirect_uris,
        "post_logout_redirect_uris": app.post_logout_redirect_uris,
        "policy_uri": app.policy_uri,
        "tos_uri": app.tos_uri,
        "grant_types": app.grant_types,
        "response_types": app.response_types,
        "scope": app.scope,
        "token_endpoint_auth_method": app.token_endpoint_auth_method,
        "id_token_signed_response_alg": app.id_token_signed_response_alg,
        "first_party": app.first_party,
        "require_second_factor": app.require_second_factor,
        "require_pushed_authorization_requests": app.require_pushed_authorization_requests,
        "require_signed_request_object": app.require_signed_request_object,
        "dpop_bound_access_tokens": app.dpop_bound_access_tokens,
        "profile": app.profile or profiles.DEFAULT,
        "jwks": app.jwks,
        "jwks_uri": app.jwks_uri,
        "webhook_url": app.webhook_url,
        "webhook_events": app.webhook_events,
        "backchannel_logout_uri": app.backchannel_logout_uri,
        "backchannel_logout_session_required": app.backchannel_logout_session_required,
        "subject_type": app.subject_type or subjects.PUBLIC,
        "sector_identifier_uri": app.sector_identifier_uri,
        # JARM §3, the default filled in (RS256; fapi2: the ID token's algorithm).
        "authorization_signed_response_alg": profiles.authorization_response_alg(app),
        "allowed_resources": app.allowed_resources or [],
        "token_exchange_resources": app.token_exchange_resources or [],
        "disabled": app.disabled_at is not None,
        "disabled_at": app.disabled_at,
        # Dynamic Client Registration (``clients.registration``): NULL source: an operator.
        "registered_dynamically": app.registration_source is not None,
        "registration_source": app.registration_source,
        "initial_access_token_id": app.initial_access_token_id,
        "previous_secret_expires_at": app.previous_secret_expires_at
        if app.previous_secret_hash
        else None,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
    }


async def find_client(session: AsyncSession, app_id: str) -> OAuthApplication:
    """Find by ``client_id`` or internal id (the CLI's APP_ID)."""
    if "\x00" in app_id:  # PostgreSQL refuses NUL in text: not found, not an outage
        raise ClientNotFound(f"no application with client_id or id {app_id[:80]!r}")
    app = await session.scalar(select(OAuthApplication).where(OAuthApplication.client_id == app_id))
    # An id fits in 64 bits (SQLite raises OverflowError past them, asyncpg DataError).
    if app is None and app_id.isascii() and app_id.isdigit() and len(app_id) <= 18:
        app = await session.get(OAuthApplication, int(app_id))
    if app is None:
        raise ClientNotFound(f"no application with client_id or id {app_id[:80]!r}")
    return app


async def list_clients(session: AsyncSession) -> list[OAuthApplication]:
    return list(await session.scalars(select(OAuthApplication).order_by(OAuthApplication.id)))


MAX_SECRET_GRACE = timedelta(days=30)


async def rotate_secret(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    app: OAuthApplication,
    *,
    grace: timedelta = timedelta(0),
) -> str:
    """A new secret for ``app``; the current one keeps verifying for ``grace`` (none:
    it stops at once). A secret still in an earlier grace is dropped: only the two
    latest ever verify."""
    if app.is_public:
        raise ClientError("a public client has no secret")
    if grace < timedelta(0) or grace > MAX_SECRET_GRACE:
        raise InvalidClientSettings("the grace must be between 0 and 30 days")
    secret = generate_client_secret()
    now = clock.now()
    if grace > timedelta(0) and app.client_secret_hash is not None:
        app.previous_secret_hash = app.client_secret_hash
        app.previous_secret_expires_at = now + grace
    else:
        app.previous_secret_hash = None
        app.previous_secret_expires_at = None
    app.client_secret_hash = hasher.hash(secret)
    app.updated_at = now
    return secret


def set_disabled(clock: Clock, app: OAuthApplication, disabled: bool) -> bool:
    """Disable or enable ``app``; whether that changed anything."""
    if (app.disabled_at is not None) == disabled:
        return False
    now = clock.now()
    app.disabled_at = now if disabled else None
    app.updated_at = now
    return True


async def delete_client(session: AsyncSession, app: OAuthApplication) -> None:
    await session.execute(delete(OAuthApplication).where(OAuthApplication.id == app.id))


async def load_record(session: AsyncSession, client_id: str) -> ClientRecord | None:
    """The client as the protocol sees it, or None for one 1pass does not serve.

    The one place that decides it: every endpoint that takes a client or a token of
    one (``/authorize`` and its forms, ``/token``, ``/userinfo``, ``/introspect``,
    ``/revoke``, ``/logout``'s hint, the webhook key endpoint) asks through
    ``ClientCache``. A deleted client and a disabled one (``onepass clients disable``)
    are not served: their tokens are refused and they authenticate nowhere.
    """
    app = await session.scalar(
        select(OAuthApplication).where(OAuthApplication.client_id == client_id)
    )
    return ClientRecord.of(app) if app is not None and app.disabled_at is None else None


class ClientCache:
    """Clients by ``client_id``, each trusted for ``ttl`` seconds in this process.

    The token endpoint asks here instead of the database: a change or deletion made
    by any process is seen everywhere within ``ttl``. Unknown client ids are cached
    too (a repeated made-up id costs one query per ``ttl``), concurrent misses for
    one id share a single query, and the oldest entry makes room for a new one.

    An entry asked for in the last quarter of its life is read again in the background
    while it is still served: a client in use never expires, so its requests never all
    wait at once for the reload (under load, seconds' worth of one client's requests
    did, every ``ttl``). The reload reads the database before the entry's ``ttl`` ends,
    so nothing is served older than ``ttl``.
    """

    REFRESH_AHEAD = 0.25  # of ttl

    def __init__(
        self,
        database: Database,
        ttl: float,
        *,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._ttl = ttl
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[str, tuple[ClientRecord | None, float]] = {}
        self._loading: dict[str, asyncio.Future[ClientRecord | None]] = {}
        self._reloads: set[asyncio.Task[ClientRecord | None]] = set()

    async def get(self, client_id: str) -> ClientRecord | None:
        entry = self._entries.get(client_id)
        if entry is not None:
            left = entry[1] - self._monotonic()
            if left > 0:
                if left < self._ttl * self.REFRESH_AHEAD and client_id not in self._loading:
                    self._reload(client_id)
                return entry[0]
        pending = self._loading.get(client_id)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this waiter itself was cancelled
                return await self.get(client_id)  # the loader was: load again
        return await self._load(client_id)

    def _reload(self, client_id: str) -> None:
        # The load is registered before its task first runs: every request until then
        # sees it in ``_loading`` and neither starts another nor waits on a future that
        # a second load would replace.
        future = self._begin(client_id)
        task = asyncio.get_running_loop().create_task(self._fill(client_id, future))
        self._reloads.add(task)
        task.add_done_callback(lambda done: self._reloaded(done, client_id, future))

    def _reloaded(
        self,
        task: asyncio.Task[ClientRecord | None],
        client_id: str,
        future: asyncio.Future[ClientRecord | None],
    ) -> None:
        self._reloads.discard(task)
        if not future.done():  # cancelled before it ran: release whoever waits on it
            future.cancel()
            self._end(client_id, future)
        if not task.cancelled() and task.exception() is not None:
            # The entry is served until its ttl ends; then a request reads it again.
            log.warning("clients.cache_reload_failed", error=type(task.exception()).__name__)

    async def _load(self, client_id: str) -> ClientRecord | None:
        return await self._fill(client_id, self._begin(client_id))

    def _begin(self, client_id: str) -> asyncio.Future[ClientRecord | None]:
        future: asyncio.Future[ClientRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[client_id] = future
        return future

    def _end(self, client_id: str, future: asyncio.Future[ClientRecord | None]) -> None:
        if self._loading.get(client_id) is future:
            del self._loading[client_id]

    async def _fill(
        self, client_id: str, future: asyncio.Future[ClientRecord | None]
    ) -> ClientRecord | None:
        try:
            async with self._database.session(readonly=True) as session:
                record = await load_record(session, client_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            self._end(client_id, future)
        self._entries.pop(client_id, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        self._entries[client_id] = (record, self._monotonic() + self._ttl)
        future.set_result(record)
        return record


CLIENTS: Service[ClientCache] = Service("clients.cache")
