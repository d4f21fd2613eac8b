"""Dynamic Client Registration: RFC 7591 (registration), RFC 7592 (management) and
OpenID Connect Dynamic Client Registration 1.0.

- Initial access tokens (RFC 7591 §3): bearer tokens an operator issues
  (``onepass clients initial-token create``), stored as a keyed hash, each with an
  expiry and an optional number of uses, counted by one conditional UPDATE so that
  concurrent registrations never exceed it.
- Client metadata (RFC 7591 §2) → ``registry.ClientSettings``, in one table
  (``METADATA``); the registry's own rules (``ClientSettings.checked``) then decide,
  as for the CLI. Unknown metadata is ignored (§2: "The authorization server MUST
  ignore any client metadata sent by the client that it does not understand").
- Registration access tokens (RFC 7592 §1): one per dynamically registered client,
  stored as a keyed hash on its row; a new one at each update (§2.2 allows it).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients import auth as client_auth
from onepass.clients.models import InitialAccessToken, OAuthApplication
from onepass.clients.registry import (
    ClientSettings,
    InvalidClientSettings,
    InvalidRedirectUri,
    check_id_token_alg,
)
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.refusals import Denied, Invalid, NotFound, Refusal

INITIAL_TOKEN_PREFIX = "oiat_"
REGISTRATION_TOKEN_PREFIX = "orat_"
MAX_TOKEN_LENGTH = 200
MAX_INITIAL_TOKEN_TTL = timedelta(days=365)
MAX_STRING = 2000  # characters of one metadata value
MAX_LIST = 20  # entries of one metadata array

# How a client was registered (``oauth_applications.registration_source``).
BY_INITIAL_TOKEN = "initial_access_token"
OPEN = "open"


class RegistrationError(Refusal):
    """A registration or its management refused; ``error`` is the RFC 7591 §3.2.2 code."""

    error = "invalid_client_metadata"


class InvalidClientMetadata(RegistrationError, Invalid):
    error = "invalid_client_metadata"


class RedirectUriRefused(RegistrationError, Invalid):
    error = "invalid_redirect_uri"


class SoftwareStatementRefused(RegistrationError, Invalid):
    error = "unapproved_software_statement"


class InvalidSoftwareStatement(RegistrationError, Invalid):
    error = "invalid_software_statement"


class TokenRefused(RegistrationError, Denied):
    """An initial or registration access token that is missing, unknown, expired,
    revoked, used up, or another client's: RFC 6750 ``invalid_token`` (401)."""

    error = "invalid_token"


class InitialTokenNotFound(RegistrationError, NotFound):
    pass


class InvalidTokenSettings(RegistrationError, Invalid):
    pass


# -- metadata -------------------------------------------------------------------------

TEXT = "text"  # a string
URI = "uri"  # a string (the registry checks it as a URL)
URIS = "uris"  # an array of strings
TEXTS = "texts"  # an array of strings
FLAG = "flag"  # a boolean
OBJECT = "object"  # a JSON object


@dataclass(frozen=True)
class Metadata:
    """One registration metadata member: the ``ClientSettings`` field (and
    ``registry.create_client`` keyword) it sets, its JSON type, and its value when
    the request omits it (RFC 7591 §2's defaults)."""

    setting: str
    kind: str
    default: Any = None


# Metadata name (RFC 7591 §2, OIDC Registration §2, and the specs each names) → setting.
# The response gives each back from the column of the same name on the client's row.
METADATA: dict[str, Metadata] = {
    "client_name": Metadata("name", TEXT, "Unnamed client"),
    "redirect_uris": Metadata("redirect_uris", URIS, ()),
    "post_logout_redirect_uris": Metadata("post_logout_redirect_uris", URIS, ()),
    "grant_types": Metadata("grant_types", TEXTS, ("authorization_code",)),
    "token_endpoint_auth_method": Metadata(
        "token_endpoint_auth_method", TEXT, client_auth.CLIENT_SECRET_BASIC
    ),
    "scope": Metadata("scope", TEXT),  # omitted: see ``default_scope``
    "jwks": Metadata("jwks", OBJECT),
    "jwks_uri": Metadata("jwks_uri", URI),
    "policy_uri": Metadata("policy_uri", URI),
    "tos_uri": Metadata("tos_uri", URI),
    "id_token_signed_response_alg": Metadata("id_token_signed_response_alg", TEXT, "RS256"),
    "backchannel_logout_uri": Metadata("backchannel_logout_uri", URI),
    "backchannel_logout_session_required": Metadata(
        "backchannel_logout_session_required", FLAG, False
    ),
    "require_pushed_authorization_requests": Metadata(
        "require_pushed_authorization_requests", FLAG, False
    ),
    "dpop_bound_access_tokens": Metadata("dpop_bound_access_tokens", FLAG, False),
    "require_signed_request_object": Metadata("require_signed_request_object", FLAG, False),
    # OpenID Connect Core §8.1 (``clients.subjects``)
    "subject_type": Metadata("subject_type", TEXT, "public"),
    "sector_identifier_uri": Metadata("sector_identifier_uri", URI),
    # JARM §3 (NULL: the default, RS256 or a fapi2 client's ID token algorithm)
    "authorization_signed_response_alg": Metadata("authorization_signed_response_alg", TEXT),
}
RESPONSE_TYPES = ("code",)


def _typed(name: str, value: Any, kind: str) -> Any:
    refusal = RedirectUriRefused if name == "redirect_uris" else InvalidClientMetadata
    if kind in (TEXT, URI):
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise refusal(f"{name} must be a string of at most {MAX_STRING} characters")
        return value
    if kind in (URIS, TEXTS):
        if (
            not isinstance(value, list)
            or len(value) > MAX_LIST
            or not all(isinstance(v, str) and len(v) <= MAX_STRING for v in value)
        ):
            raise refusal(f"{name} must be an array of at most {MAX_LIST} strings")
        return list(value)
    if kind == FLAG:
        if not isinstance(value, bool):
            raise refusal(f"{name} must be true or false")
        return value
    if not isinstance(value, dict):
        raise refusal(f"{name} must be a JSON object")
    return value


def default_scope(grant_types: Collection[str]) -> str:
    """What a client that gives no ``scope`` may ask for: the registry's default for
    one that signs users in (``offline_access`` only with the refresh_token grant)."""
    if "authorization_code" not in grant_types:
        return ""
    return "openid profile email" + (" offline_access" if "refresh_token" in grant_types else "")


def client_options(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``registry.create_client`` keywords for a registration request's metadata
    (RFC 7591 §2's defaults for what it omits; JSON null is omitted). Types are checked
    here; values by the registry (``ClientSettings.checked``)."""
    if "software_statement" in metadata:
        if not isinstance(metadata["software_statement"], str):
            raise InvalidSoftwareStatement("software_statement must be a signed JWT (a string)")
        raise SoftwareStatementRefused(
            "this server approves no software statement: register without one"
        )
    options: dict[str, Any] = {}
    for name, member in METADATA.items():
        value = metadata.get(name)
        if value is None:
            default = member.default
            options[member.setting] = list(default) if isinstance(default, tuple) else default
        else:
            options[member.setting] = _typed(name, value, member.kind)
    grant_types = options["grant_types"]
    response_types = metadata.get("response_types")
    if response_types is not None:
        response_types = _typed("response_types", response_types, TEXTS)
        unknown = [r for r in response_types if r not in RESPONSE_TYPES]
        if unknown:
            raise InvalidClientMetadata(
                f"unsupported response_type {unknown[0][:60]!r}; supported: code"
            )
        # RFC 7591 §2.1: response_types and grant_types must agree.
        if ("code" in response_types) != ("authorization_code" in grant_types):
            raise InvalidClientMetadata(
                "response_types code goes with the authorization_code grant type (RFC 7591 §2.1)"
            )
    if options["scope"] is None:
        options["scope"] = default_scope(grant_types)
    options["public"] = options["token_endpoint_auth_method"] == client_auth.NONE
    return options


def check_identity(
    metadata: dict[str, Any], app: OAuthApplication, hasher: KeyedHasher | None
) -> None:
    """RFC 7592 §2.2: an update's ``client_id`` must be the client's; its
    ``client_secret``, if any, the client's current one (a client cannot choose it).
    ``hasher`` None (a registration): no ``client_secret`` at all."""
    client_id = metadata.get("client_id")
    if client_id is not None and client_id != app.client_id:
        raise InvalidClientMetadata("client_id is not this client's")
    secret = metadata.get("client_secret")
    if secret is None:
        return
    if (
        hasher is None
        or not isinstance(secret, str)
        or app.client_secret_hash is None
        or not hasher.verify(secret[:MAX_TOKEN_LENGTH], app.client_secret_hash)
    ):
        raise InvalidClientMetadata("client_secret is issued by the server; it cannot be set")


def replace_settings(
    app: OAuthApplication,
    options: dict[str, Any],
    *,
    production: bool,
    signing_algs: Collection[str],
) -> ClientSettings:
    """RFC 7592 §2.2: ``app``'s settings with its registration metadata replaced by
    ``options`` (``client_options``), under the registry's rules; what is not
    registration metadata (first party, webhooks, profile) stays as the operator set it."""
    options = dict(options)
    if options.pop("public") != app.is_public:
        raise InvalidClientMetadata(
            "a client cannot change between public ('none') and confidential (a secret); "
            "register a new client"
        )
    settings = ClientSettings.of(app)
    alg = options["id_token_signed_response_alg"]
    if alg != app.id_token_signed_response_alg:
        check_id_token_alg(alg, signing_algs)
    for setting, value in options.items():
        setattr(settings, setting, value)
    return settings.checked(production=production)


def registration_client_uri(issuer: str, app: OAuthApplication) -> str:
    return f"{issuer}/register/{app.client_id}"


def describe_registration(app: OAuthApplication, issuer: str) -> dict[str, Any]:
    """RFC 7591 §3.2.1 / RFC 7592 §3: the client's information response, without the
    secrets (the playbook adds those it has just issued)."""
    data: dict[str, Any] = {
        "client_id": app.client_id,
        "client_id_issued_at": int(app.created_at.timestamp()),
    }
    for name in METADATA:
        value = getattr(app, name)
        if value is not None:
            data[name] = value
    data["response_types"] = app.response_types
    if app.client_secret_hash is not None:
        data["client_secret_expires_at"] = 0  # it does not expire
    data["registration_client_uri"] = registration_client_uri(issuer, app)
    return data


# -- initial access tokens ------------------------------------------------------------


@dataclass(frozen=True)
class NewInitialToken:
    token: str  # shown once
    record: InitialAccessToken


def describe_initial_token(record: InitialAccessToken, now: datetime) -> dict[str, Any]:
    """An initial access token as ``initial-token list --json`` prints it; never the
    token or its hash."""
    if record.revoked_at is not None:
        state = "revoked"
    elif record.expires_at <= now:
        state = "expired"
    elif record.max_uses is not None and record.uses >= record.max_uses:
        state = "used_up"
    else:
        state = "active"
    return {
        "id": record.id,
        "prefix": record.prefix,
        "state": state,
        "uses": record.uses,
        "max_uses": record.max_uses,
        "created_by": record.created_by,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "last_used_at": record.last_used_at,
    }


async def create_initial_token(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    *,
    ttl: timedelta,
    max_uses: int | None,
    created_by: str,
) -> NewInitialToken:
    if ttl <= timedelta(0) or ttl > MAX_INITIAL_TOKEN_TTL:
        raise InvalidTokenSettings("an initial access token lives between 1 s and 365 days")
    if max_uses is not None and max_uses < 1:
        raise InvalidTokenSettings("max uses must be at least 1 (omit it for no limit)")
    raw = INITIAL_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    record = InitialAccessToken(
        token_hash=hasher.hash(raw),
        prefix=raw[:12],
        created_by=created_by[:400],
        created_at=now,
        expires_at=now + ttl,
        max_uses=max_uses,
        uses=0,
    )
    session.add(record)
    await session.flush()
    return NewInitialToken(raw, record)


async def list_initial_tokens(session: AsyncSession) -> list[InitialAccessToken]:
    return list(await session.scalars(select(InitialAccessToken).order_by(InitialAccessToken.id)))


async def revoke_initial_token(
    session: AsyncSession, clock: Clock, token_id: int
) -> InitialAccessToken:
    record = await session.get(InitialAccessToken, token_id)
    if record is None:
        raise InitialTokenNotFound(f"no initial access token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = clock.now()
    return record


async def spend_initial_token(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, raw: str
) -> int:
    """Count one use of the initial access token ``raw``; its id. One conditional
    UPDATE: of concurrent registrations, at most ``max_uses`` pass (the row lock on
    PostgreSQL, the database lock on SQLite). ``TokenRefused`` says why it cannot be
    used, which only its holder learns."""
    if not raw.startswith(INITIAL_TOKEN_PREFIX) or len(raw) > MAX_TOKEN_LENGTH:
        raise TokenRefused("not an initial access token")
    digest = hasher.hash(raw)
    now = clock.now()
    table = InitialAccessToken
    spent = await session.scalar(
        update(table)
        .where(
            table.token_hash == digest,
            table.revoked_at.is_(None),
            table.expires_at > now,
            or_(table.max_uses.is_(None), table.uses < table.max_uses),
        )
        .values(uses=table.uses + 1, last_used_at=now)
        .returning(table.id)
        .execution_options(synchronize_session=False)
    )
    if spent is not None:
        return int(spent)
    record = await session.scalar(select(table).where(table.token_hash == digest))
    if record is None:
        raise TokenRefused("unknown initial access token")
    if record.revoked_at is not None:
        raise TokenRefused("this initial access token was revoked")
    if record.expires_at <= now:
        raise TokenRefused("this initial access token expired")
    raise TokenRefused("this initial access token was used as many times as it may be")


# -- registration access tokens -------------------------------------------------------


def issue_registration_token(hasher: KeyedHasher, app: OAuthApplication) -> str:
    """A new registration access token for ``app`` (the previous one stops working)."""
    raw = REGISTRATION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    app.registration_access_token_hash = hasher.hash(raw)
    return raw


async def managed_client(
    session: AsyncSession, hasher: KeyedHasher, client_id: str, raw: str | None
) -> OAuthApplication:
    """RFC 7592 §2: the client ``client_id`` if ``raw`` is its registration access
    token; ``TokenRefused`` otherwise, the same for an unknown client, one registered by
    an operator, and another client's token (§2: 401, nothing said about which)."""
    refused = TokenRefused("the registration access token is not valid for this client")
    if raw is None:
        raise TokenRefused("a registration access token is required (Authorization: Bearer)")
    if len(raw) > MAX_TOKEN_LENGTH or len(client_id) > 64 or "\x00" in client_id:
        raise refused
    app = await session.scalar(
        select(OAuthApplication).where(OAuthApplication.client_id == client_id)
    )
    if (
        app is None
        or app.registration_access_token_hash is None
        or not hasher.verify(raw, app.registration_access_token_hash)
    ):
        raise refused
    return app


def redirect_uri_refusal(exc: InvalidClientSettings) -> RegistrationError:
    """The registry's refusal in RFC 7591 §3.2.2's words."""
    if isinstance(exc, InvalidRedirectUri):
        return RedirectUriRefused(str(exc))
    return InvalidClientMetadata(str(exc))
