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
