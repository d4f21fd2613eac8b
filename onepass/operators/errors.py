"""The operators domain's refusals: admin tokens, scopes, the second factor, step-up.

They are refusals (``onepass.refusals``) like every domain's; the admin API
(``onepass.admin.errors``) answers each with its error code, HTTP status and headers.
"""

from __future__ import annotations

from onepass.refusals import Denied, Invalid, NotFound


class InvalidAdminToken(Denied):
    """No admin token, or one that is unknown, revoked, expired, or whose
    administrator is no longer active."""


class InsufficientScope(Denied):
    """The admin token lacks the scope the request needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"this admin token lacks the scope {scope!r}; create one with "
            f"`onepass admin tokens create --email E --scope {scope}`"
        )
        self.scope = scope


class StepUpRequired(Denied):
    """The change needs a valid ``action_request_nonce``; the message says why."""


class TotpNotEnrolled(Denied):
    """The administrator has no second factor yet."""


class WrongTotp(Denied):
    """The TOTP code is wrong, expired or already used."""


class WrongPasskey(WrongTotp):
    """The passkey's answer to a step-up is not one of the administrator's, or was
    given before (refused and counted as a wrong code is)."""


class TotpLocked(Denied):
    """Too many wrong TOTP codes for one administrator: no code is checked for now."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong codes; try again in {max(1, retry_after // 60)} minutes")
        self.retry_after = retry_after


class InvalidScope(Invalid):
    """No scope, or one that does not exist."""


class InvalidTtl(Invalid):
    """An admin token's lifetime out of bounds."""


class AdminTokenNotFound(NotFound):
    pass
