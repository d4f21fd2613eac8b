"""What the authorization endpoint does next for a validated request.

Given the browser's login session (if any), decide: show the login form, show the
consent form, or issue a code and redirect (OIDC Core §3.1.2.3 - §3.1.2.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import LoginSession, User
from onepass.accounts.second_factor import ACR_MFA, second_factor_asked
from onepass.clients.registry import ClientRecord
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.i18n import N_
from onepass.oauth.authorize import AuthorizationRequest
from onepass.oauth.codes import issue_code, needs_consent
from onepass.oauth.response_modes import AuthorizationResponse
from onepass.oauth_errors import ConsentRequiredError, LoginRequiredError, OAuthError

SCOPE_DESCRIPTIONS = {
    "openid": N_("Know who you are (your %(brand)s account identifier)"),
    "profile": N_("See your name"),
    "email": N_("See your email address"),
    "offline_access": N_("Stay signed in (access your data while you are away)"),
}
OTHER_SCOPE = N_("Use the scope %(scope)s")


def redirect_with(uri: str, params: dict[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (keeping the query it has)."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_response(
    redirect_uri: str,
    error: OAuthError,
    state: str | None,
    issuer: str,
    *,
    mode: str,
    client: ClientRecord,
) -> AuthorizationResponse:
    """RFC 6749 §4.1.2.1 with the ``iss`` parameter of RFC 9207, in ``mode``."""
    return AuthorizationResponse.of(
        redirect_uri,
        {
            "error": error.error,
            "error_description": error.description,
            "state": state,
            "iss": issuer,
        },
        mode=mode,
        client_id=client.client_id,
        signing_alg=client.authorization_signed_response_alg,
    )


def request_error(
    request: AuthorizationRequest, client: ClientRecord, error: OAuthError, issuer: str
) -> AuthorizationResponse:
    """``error`` for a validated ``request``: to its redirect URI, in its mode."""
    return error_response(
        request.redirect_uri,
        error,
        request.state,
        issuer,
        mode=request.response_mode,
        client=client,
    )


@dataclass(frozen=True)
class ShowLogin:
    pass


@dataclass(frozen=True)
class ShowConsent:
    user: User


@dataclass(frozen=True)
class Redirect:
    """Send ``response`` back to the client (a redirect, or a form_post page)."""

    response: AuthorizationResponse


Decision = ShowLogin | ShowConsent | Redirect


def login_is_fresh_enough(
    request: AuthorizationRequest, login: LoginSession, now_ts: float
) -> bool:
    if request.max_age is None:
        return True
    return now_ts - login.auth_time.timestamp() <= request.max_age


async def decide(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    *,
    issuer: str,
    code_ttl: int,
    request: AuthorizationRequest,
    client: ClientRecord,
    current: tuple[LoginSession, User] | None,
    logged_in_here: bool = False,
    just_consented: bool = False,
) -> Decision:
    """``logged_in_here``: ``current`` is a login completed in this interaction. It
    satisfies ``prompt=login`` and any ``max_age``, ``max_age=0`` included: both ask
    for an authentication now, and the ID token's ``auth_time`` tells the RP when it
    happened (OIDC Core §3.1.2.1). Asking again would loop on the login form."""
    prompt = set(request.prompt)
    must_login = (
        current is None
        or (
            not logged_in_here
            and (
                "login" in prompt
                or not login_is_fresh_enough(request, current[0], clock.timestamp())
            )
        )
        # The RP asks for two-step verification and this session had one step.
        or (second_factor_asked(request.acr_values) and current[0].acr != ACR_MFA)
    )
    if must_login:
        if "none" in prompt:
            return Redirect(
                request_error(
                    request, client, LoginRequiredError("the user is not signed in"), issuer
                )
            )
        return ShowLogin()
    assert current is not None
    login, user = current
    if not just_consented and (
        "consent" in prompt or await needs_consent(session, user.id, client, request.scope)
    ):
        if "none" in prompt:
            return Redirect(
                request_error(
                    request,
                    client,
                    ConsentRequiredError("the user has not consented to this application"),
                    issuer,
                )
            )
        return ShowConsent(user)
    code = await issue_code(
        session, hasher, clock, client=client, user=user, login=login, request=request, ttl=code_ttl
    )
    return Redirect(
        AuthorizationResponse.of(
            request.redirect_uri,
            {"code": code, "state": request.state, "iss": issuer},
            mode=request.response_mode,
            client_id=client.client_id,
            signing_alg=client.authorization_signed_response_alg,
        )
    )
