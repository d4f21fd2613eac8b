"""Client authentication (RFC 6749 §2.3.1, OIDC Core §9), for every endpoint an RP
authenticates to: ``/token``, ``/par``, ``/revoke``, ``/introspect`` and
``/webhooks/signing-keys``. A secret (Basic or in the form), or a signed assertion
(``private_key_jwt``, ``clients.assertions``).

``extract_credentials`` is pure parsing: which client claims to be calling and with
which credentials. ``ClientAuthenticator`` checks them against the client as
``ClientCache`` knows it, so an endpoint asks the database nothing once the client
is cached (the token endpoint's hot path).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

import structlog

from onepass.clients import profiles
from onepass.clients.assertions import AssertionRefused, AssertionVerifier, peek
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.oauth_errors import (
    InvalidClientError,
    InvalidRequestError,
    TemporarilyUnavailableError,
)
from onepass.services import Service

if TYPE_CHECKING:  # the registry imports this module's method names
    from onepass.clients.registry import ClientCache, ClientRecord

log = structlog.get_logger("onepass.clients.auth")

CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
NONE = "none"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT, NONE)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

MAX_CREDENTIAL_LENGTH = 512
# The characters a client_id may have (ours are 24 of them); anything else is
# refused before any lookup (the whole value: ``$`` would pass a final newline).
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,64}")


def is_client_id(value: str) -> bool:
    return CLIENT_ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str | None
    method: str


def parse_basic(header: str) -> tuple[str, str]:
    """Decode ``Authorization: Basic`` into (client_id, client_secret).

    RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    """
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError("the Authorization header must use the Basic scheme")
    value = value.strip()
    if not value or len(value) > 4 * MAX_CREDENTIAL_LENGTH:
        raise InvalidClientError("malformed Basic credentials")
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):  # ValueError: non-ASCII input
        raise InvalidClientError("malformed Basic credentials: not base64 of UTF-8 text") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise InvalidClientError("malformed Basic credentials: expected client_id:client_secret")
    return unquote_plus(client_id), unquote_plus(secret)


def extract_credentials(authorization: str | None, form: dict[str, str]) -> ClientCredentials:
    """Find the client's credentials in the Authorization header or the form.

    More than one method in one request is refused (RFC 6749 §2.3).
    """
    form_id = form.get("client_id")
    form_secret = form.get("client_secret")
    if authorization is not None:
        if form_secret is not None:
            raise InvalidRequestError("use only one client authentication method per request")
        client_id, secret = parse_basic(authorization)
        if form_id is not None and form_id != client_id:
            raise InvalidRequestError("client_id in the body differs from the authenticated client")
        return ClientCredentials(client_id, secret, CLIENT_SECRET_BASIC)
    if form_id is None:
        raise InvalidClientError("client authentication required")
    if form_secret is not None:
        return ClientCredentials(form_id, form_secret, CLIENT_SECRET_POST)
    return ClientCredentials(form_id, None, NONE)


class ClientAuthenticator:
    """Find and authenticate the client of a request (RFC 6749 §2.3.1).

    A client that holds a secret may send it either way, ``client_secret_basic`` or
    ``client_secret_post`` (as Keycloak accepts), whichever it registered: RP libraries
    differ in their default. During a rotation's grace the previous secret verifies
    too. Every failure gives the same answer after the same work (two HMACs), so an
    endpoint does not reveal which client ids exist, how they authenticate or whether
    a rotation is under way; the reason is logged with the client_id only. A success
    costs one HMAC (two with the previous secret).
    """

    def __init__(
        self,
        clients: ClientCache,
        hasher: KeyedHasher,
        clock: Clock,
        assertions: AssertionVerifier | None = None,
    ) -> None:
        self.clients = clients
        self.hasher = hasher
        self.clock = clock
        self.assertions = assertions
        # Compared against when there is nothing to compare with, so that every
        # failure costs the same time.
        self._dummy_hash = hasher.hash("unknown-client")

    async def authenticate(self, authorization: str | None, form: dict[str, str]) -> ClientRecord:
        """The client authenticated by the ``Authorization`` header or the form, or
        ``invalid_client`` (``invalid_request`` for two methods at once,
        ``temporarily_unavailable`` when the registry cannot be read)."""
        if "client_assertion" in form or "client_assertion_type" in form:
            return await self._by_assertion(authorization, form)
        credentials = extract_credentials(authorization, form)
        client = await self._client(credentials.client_id)
        reason = self._failed_check(client, credentials)
        if reason is None and client is not None and profiles.requires_private_key_jwt(client):
            # A row edited by hand does not let a FAPI 2.0 client use a secret.
            reason = "its profile (fapi2) authenticates with private_key_jwt only"
        if reason is not None or client is None:
            log.info(
                "token.client_authentication_failed",
                client_id=credentials.client_id[:64],
                reason=reason,
            )
            raise InvalidClientError("unknown client or wrong credentials")
        return client

    async def _client(self, client_id: str) -> ClientRecord | None:
        if not is_client_id(client_id):
            return None
        try:
            return await self.clients.get(client_id)
        except Exception as exc:  # database down: asyncpg raises OSError, not SQLAlchemyError
            log.error("token.client_lookup_failed", error=type(exc).__name__)
            raise TemporarilyUnavailableError(
                "the client registry is unavailable; try again shortly"
            ) from None

    async def _by_assertion(self, authorization: str | None, form: dict[str, str]) -> ClientRecord:
        """``private_key_jwt`` (``clients.assertions``): every refusal is the same
        ``invalid_client``, its reason logged with the client_id."""
        if authorization is not None or "client_secret" in form:
            raise InvalidRequestError("use only one client authentication method per request")
        client_id = ""
        try:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise AssertionRefused(f"client_assertion_type must be {JWT_BEARER}")
            claimed = peek(form.get("client_assertion", ""))
            client_id = claimed.client_id
            if form.get("client_id", client_id) != client_id:
                raise AssertionRefused("client_id differs from the assertion's iss", client_id)
            client = await self._client(client_id)
            if client is None:
                raise AssertionRefused("unknown client", client_id)
            if client.token_endpoint_auth_method != PRIVATE_KEY_JWT or self.assertions is None:
                raise AssertionRefused(
                    f"registered for {client.token_endpoint_auth_method}, used private_key_jwt",
                    client_id,
                )
            await self.assertions.verify(form["client_assertion"], claimed, client)
        except AssertionRefused as exc:
            log.info(
                "token.client_authentication_failed",
                client_id=(exc.client_id or client_id)[:64],
                reason=exc.reason,
            )
            raise InvalidClientError("unknown client or wrong credentials") from None
        return client

    def _failed_check(
        self, client: ClientRecord | None, credentials: ClientCredentials
    ) -> str | None:
        """Why authentication fails, or None. A failure always costs two HMACs."""
        secret = credentials.client_secret or ""
        if client is None:
            reason = "unknown client"
        elif client.is_public or credentials.method == NONE:
            if client.is_public and credentials.method == NONE:
                self.hasher.verify(secret, self._dummy_hash)
                return None  # a public client: there is no secret to check
            reason = (
                f"registered for {client.token_endpoint_auth_method}, used {credentials.method}"
            )
        elif client.client_secret_hash is None:
            reason = "confidential client without a stored secret"
        else:
            if self.hasher.verify(secret, client.client_secret_hash):
                return None
            previous = client.previous_secret_hash
            if previous is not None and client.previous_secret_expires <= self.clock.timestamp():
                previous = None  # its grace is over
            if self.hasher.verify(secret, previous or self._dummy_hash) and previous is not None:
                return None
            return "wrong secret"
        self.hasher.verify(secret, self._dummy_hash)
        self.hasher.verify(secret, self._dummy_hash)
        return reason


CLIENT_AUTHENTICATOR: Service[ClientAuthenticator] = Service("clients.authenticator")
