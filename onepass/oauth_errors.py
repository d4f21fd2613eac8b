"""OAuth 2.0 error responses (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009, RFC 7662).

One class per error code; the code lives on the class, as in Authlib.

A core module (it imports nothing of 1pass), not a part of ``onepass.oauth``: every
endpoint an RP calls answers in this format, and three layers have such endpoints:
client authentication (``onepass.clients.auth``, ``invalid_client``), the webhook
key endpoint (``onepass.webhooks.routes``) and the OAuth endpoints themselves.
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class OAuthError(Exception):
    error: ClassVar[str] = "invalid_request"
    status_code: ClassVar[int] = 400

    def __init__(
        self,
        description: str,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        description = _description_charset(description)
        super().__init__(description)
        self.description = description
        self.headers = dict(headers or {})
        self.status = status_code if status_code is not None else self.status_code

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def response_headers(self) -> dict[str, str]:
        return {"cache-control": "no-store", "pragma": "no-cache", **self.headers}


def _description_charset(text: str) -> str:
    """RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E."""
    text = text.replace('"', "'").replace("\\", "/").replace("\u00a7", "section ")
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E)


class InvalidRequestError(OAuthError):
    error = "invalid_request"


class InvalidClientError(OAuthError):
    """Client authentication failed (RFC 6749 §5.2): 401 with a Basic challenge."""

    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str) -> None:
        super().__init__(
            description, headers={"www-authenticate": 'Basic realm="1pass", charset="UTF-8"'}
        )


class InvalidGrantError(OAuthError):
    error = "invalid_grant"


class UnauthorizedClientError(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"


class InvalidScopeError(OAuthError):
    error = "invalid_scope"


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class TemporarilyUnavailableError(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str) -> None:
        super().__init__(description, headers={"retry-after": "5"})


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed or invalid.
    ``scheme``: the challenge's scheme, ``Bearer`` or ``DPoP`` (RFC 9449 §7.1, whose
    ``algs`` are given as ``params``)."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str, *, scheme: str = "Bearer", params: str = "") -> None:
        realm = 'realm="1pass", ' if scheme == "Bearer" else ""
        super().__init__(
            description,
            headers={
                "www-authenticate": f'{scheme} {realm}error="{self.error}", '
                f'error_description="{_description_charset(description)}"{params}'
            },
        )


class InvalidDPoPProofError(OAuthError):
    """RFC 9449 §5 (token endpoint: 400) and §7.1 (a resource: 401 with a DPoP
    challenge, ``status_code`` and ``headers`` given): the DPoP proof is invalid."""

    error = "invalid_dpop_proof"


class UseDPoPNonceError(OAuthError):
    """RFC 9449 §8 and §9: send the proof again with the nonce of the ``DPoP-Nonce``
    header."""

    error = "use_dpop_nonce"


class UnsupportedTokenTypeError(OAuthError):
    error = "unsupported_token_type"  # RFC 7009 §2.2.1


# Authorization endpoint errors (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6), sent back to
# the redirect URI once the client and redirect URI are known to be valid.


class AccessDeniedError(OAuthError):
    error = "access_denied"


class UnsupportedResponseTypeError(OAuthError):
    error = "unsupported_response_type"


class LoginRequiredError(OAuthError):
    error = "login_required"


class ConsentRequiredError(OAuthError):
    error = "consent_required"


class RequestNotSupportedError(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupportedError(OAuthError):
    error = "request_uri_not_supported"


class InvalidRequestObjectError(OAuthError):
    error = "invalid_request_object"  # RFC 9101 §6.2


class InvalidTargetError(OAuthError):
    """RFC 8707 §2: the resource is unknown, malformed, or not one the client may use."""

    error = "invalid_target"


# Device Authorization Grant (RFC 8628 §3.5): the token endpoint's answers to a poll
# before the person has decided (HTTP 400, as every §5.2 error).


class AuthorizationPendingError(OAuthError):
    error = "authorization_pending"


class SlowDownError(OAuthError):
    error = "slow_down"


class ExpiredTokenError(OAuthError):
    error = "expired_token"
