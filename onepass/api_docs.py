"""What ``/openapi.json`` says a route may answer besides its 200.

Routes that build their own responses get only a 200 from FastAPI; the statuses and
bodies below are the other answers they give, declared with ``responses=`` on each
route. ``tests/e2e/test_openapi_fuzz.py`` (schemathesis) holds every answer of the
running server to these declarations, so an answer the document does not name fails.
5xx are declared where the route really answers them (a database that does not
answer is 503 ``temporarily_unavailable``); the fuzz test refuses any 5xx all the same.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_REASONS = {
    303: "See Other: the browser goes on to the Location",
    400: "the request is malformed or a parameter is invalid",
    401: "missing or invalid credentials",
    403: "the credentials do not allow this",
    404: "no such object",
    409: "refused in the object's current state",
    413: "the body is larger than the limit",
    415: "the body is not in the media type the route reads",
    429: "too many attempts; Retry-After says when to try again",
    503: "the database does not answer; try again shortly",
}


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2 error response."""

    error: str
    error_description: str | None = None


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 (and OIDC Core §3.1.3.3: ``id_token``)."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None


class AdminErrorBody(BaseModel):
    """The admin API's error: a code and a sentence for a person (``problems`` for
    parameters that failed validation)."""

    error: str
    message: str
    problems: list[dict[str, str]] | None = None


def oauth_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """RFC 6749 JSON errors."""
    return {s: {"model": OAuthErrorBody, "description": _REASONS[s]} for s in statuses}


def admin_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``{"error", "message"}`` errors."""
    return {s: {"model": AdminErrorBody, "description": _REASONS[s]} for s in statuses}


def pages(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """HTML pages (an error page, the form again with its error) or a 303 redirect."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == 303:
            declared[status] = {
                "description": _REASONS[status],
                "headers": {"location": {"schema": {"type": "string"}}},
            }
        else:
            declared[status] = {
                "description": _REASONS[status],
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
    return declared


# The answers shared by the routes of each family.
ADMIN = admin_errors(400, 401, 403, 404, 409, 413, 415, 429, 503)
CLIENT_AUTHENTICATED = oauth_errors(400, 401, 413, 503)


# -- what the routes read -------------------------------------------------------------
# Routes that read the request themselves (forms with repeated-parameter checks, bodies
# read under a size limit) declare their parameters here, through ``openapi_extra``,
# so that the document tells an RP what to send and schemathesis can send it.


def _strings(names: tuple[str, ...]) -> dict[str, Any]:
    return {name: {"type": "string"} for name in names}


def query(*names: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Query parameters, all strings."""
    return {
        "parameters": [
            {"name": n, "in": "query", "required": n in required, "schema": {"type": "string"}}
            for n in names
        ]
    }


def form(
    *names: str, required: tuple[str, ...] = (), choices: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body of string fields (``choices``: the
    values a field takes)."""
    properties = _strings(names)
    for name, values in (choices or {}).items():
        properties[name] = {"type": "string", "enum": list(values)}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {
        "requestBody": {
            "required": bool(required),
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


# OAuth 2.0 / OIDC Core §3.1.2.1 authorization request.
AUTHORIZATION_REQUEST = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "acr_values",
    "ui_locales",
    "response_mode",
    "request_uri",  # RFC 9126: a request pushed to /par (then only client_id beside it)
    "request",  # RFC 9101: a signed request object (then only client_id beside it counts)
    "dpop_jkt",  # RFC 9449 §10: the code is bound to this DPoP key's thumbprint
)
AUTHORIZATION_REQUIRED = ("client_id", "redirect_uri", "response_type", "scope")
# OIDC RP-Initiated Logout 1.0 §2.
LOGOUT_REQUEST = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "csrf_token")
# RFC 6749 §4.1.3, §4.4.2, §6 (and client_secret_post credentials).
TOKEN_GRANT_REQUEST = (
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
)
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
)
# RFC 7009 §2.1, RFC 7662 §2.1 (and client_secret_post credentials).
TOKEN_REQUEST = ("token", "token_type_hint", "client_id", "client_secret")
