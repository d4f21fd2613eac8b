"""The admin API's errors: ``{"error": code, "message": …}`` with an HTTP status."""

from __future__ import annotations

from onepass.accounts.service import UserNotFound
from onepass.clients.registry import ClientNotFound
from onepass.webhooks.errors import EntryNotFound, SigningKeyNotFound


class AdminError(ValueError):
    """An admin API refusal; also a ``ValueError``, so the CLI reports it as one."""

    def __init__(
        self, code: str, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def invalid_token(message: str) -> AdminError:
    return AdminError(
        "invalid_token",
        message,
        401,
        {"www-authenticate": 'Bearer realm="1pass-admin", error="invalid_token"'},
    )


def insufficient_scope(scope: str) -> AdminError:
    return AdminError(
        "insufficient_scope",
        f"this admin token lacks the scope {scope!r}; create one with "
        f"`onepass admin tokens create --email E --scope {scope}`",
        403,
        {
            "www-authenticate": f'Bearer realm="1pass-admin", error="insufficient_scope", scope="{scope}"'
        },
    )


def step_up_required(message: str) -> AdminError:
    return AdminError("step_up_required", message, 403)


def refusal(exc: ValueError) -> AdminError:
    """A domain's refusal (a ``ValueError``) as an admin error: 404 for what does not
    exist, 409 for the rest (a merge refused, a delivered entry retried, …)."""
    if isinstance(exc, AdminError):
        return exc
    if isinstance(exc, ClientNotFound | UserNotFound | EntryNotFound | SigningKeyNotFound):
        return AdminError("not_found", str(exc), 404)
    return AdminError("conflict", str(exc), 409)
