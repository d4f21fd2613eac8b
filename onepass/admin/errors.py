"""The admin API's errors: ``{"error": code, "message": …}`` with an HTTP status.

The domains refuse with ``onepass.refusals``; ``refusal`` answers each: the operators
domain's own (admin token, scope, step-up, second factor) with their codes, statuses
and headers, then by kind: not found 404, invalid 400, anything else 409. Any other
exception is a bug, and its 500 comes with a traceback in the log.
"""

from __future__ import annotations

from onepass.operators.errors import (
    InsufficientScope,
    InvalidAdminToken,
    InvalidScope,
    InvalidTtl,
    StepUpRequired,
    TotpLocked,
    TotpNotEnrolled,
    WrongTotp,
)
from onepass.refusals import Invalid, NotFound, Refusal


class AdminError(Exception):
    """An admin API refusal, as the API answers it."""

    def __init__(
        self, code: str, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}

    @property
    def denied(self) -> bool:
        """Not allowed (401, 403, 429) rather than failed, for the audit log."""
        return self.status in (401, 403, 429)

    @property
    def summary(self) -> str:
        """For the audit log: the code and the message's first clause."""
        return f"{self.code}: {self.message.split('; ')[0]}"

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


def invalid_token(message: str) -> AdminError:
    return AdminError(
        "invalid_token",
        message,
        401,
        {"www-authenticate": 'Bearer realm="1pass-admin", error="invalid_token"'},
    )


def insufficient_scope(scope: str, message: str) -> AdminError:
    return AdminError(
        "insufficient_scope",
        message,
        403,
        {
            "www-authenticate": f'Bearer realm="1pass-admin", error="insufficient_scope", scope="{scope}"'
        },
    )


def refusal(exc: Refusal) -> AdminError:
    """A domain's refusal as the admin API answers it."""
    message = str(exc)
    match exc:
        case InvalidAdminToken():
            return invalid_token(message)
        case InsufficientScope():
            return insufficient_scope(exc.scope, message)
        case StepUpRequired():
            return AdminError("step_up_required", message, 403)
        case TotpNotEnrolled():
            return AdminError("totp_not_enrolled", message, 403)
        case WrongTotp():
            return AdminError("invalid_totp", message, 401)
        case TotpLocked():
            return AdminError(
                "too_many_attempts", message, 429, {"retry-after": str(exc.retry_after)}
            )
        case InvalidScope():
            return AdminError("invalid_scope", message)
        case InvalidTtl():
            return AdminError("invalid_ttl", message)
        case NotFound():
            return AdminError("not_found", message, 404)
        case Invalid():
            return AdminError("invalid_request", message)
    # A merge refused, a delivered entry retried, a rotation too soon, …
    return AdminError("conflict", message, 409)
