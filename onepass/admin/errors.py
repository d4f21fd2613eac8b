"""The admin API's errors: ``{"error": code, "message": …}`` with an HTTP status."""

from __future__ import annotations


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
