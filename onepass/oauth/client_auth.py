"""Client authentication at the token endpoint (RFC 6749 §2.3.1, OIDC Core §9).

Pure parsing: which client claims to be calling and with which credentials. The
credential check itself happens against the stored client in ``clients``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from onepass.oauth_errors import InvalidClientError, InvalidRequestError

CLIENT_SECRET_BASIC = "client_secret_basic"
CLIENT_SECRET_POST = "client_secret_post"
NONE = "none"
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, NONE)

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
