"""HTTP for the authorization endpoint and its login and consent forms."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from onepass.accounts import csrf as csrf_mod
from onepass.accounts import service as accounts
from onepass.accounts.throttle import LoginThrottled
from onepass.identity.canonical import effective_user
from onepass.oauth.authorization import (
    SCOPE_DESCRIPTIONS,
    Redirect,
    ShowConsent,
    ShowLogin,
    decide,
    error_redirect,
)
from onepass.oauth.authorize import (
    AuthorizationRequest,
    AuthorizeFatal,
    AuthorizeRedirectError,
    validate_authorization_request,
)
from onepass.oauth.codes import grant_consent
from onepass.oauth.errors import AccessDeniedError
from onepass.oauth.interaction import InteractionInvalid
from onepass.pages import render
from onepass.web import Params, client_ip, query_params, read_form

router = APIRouter(tags=["oauth"])

SESSION_COOKIE = "onepass_session"


def error_page(title: str, message: str, status: int = 400) -> Response:
    return render("error.html", {"title": title, "message": message}, status)


def _csrf_cookie(request: Request) -> tuple[str, bool]:
    value = request.cookies.get(csrf_mod.COOKIE)
    if value and len(value) <= 128:
        return value, False
    return csrf_mod.CSRF.new_cookie_value(), True


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """Render a form page with a CSRF token (and its cookie if the browser has none)."""
    state = request.app.state
    cookie, is_new = _csrf_cookie(request)
    context = {**context, "csrf_token": state.csrf.token_for(cookie)}
    response = render(template, context, status)
    if is_new:
        response.set_cookie(
            csrf_mod.COOKIE,
            cookie,
            httponly=True,
            secure=state.runtime.settings.secure_cookies,
            samesite="lax",
            path="/",
        )
    return response


async def _read_form(request: Request) -> Params | None:
    """The posted form, or None when it is not one (``BadParameter`` and ``BodyTooLarge``
    become a 400 and a 413 page, in app.py)."""
    return await read_form(request)


def _login_page(
    request: Request,
    auth: AuthorizationRequest,
    client_name: str,
    *,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
) -> Response:
    sealed = request.app.state.sealer.seal(auth, request.app.state.runtime.clock.timestamp())
    return _page(
        request,
        "login.html",
        {
            "client_name": client_name,
            "interaction": sealed,
            "error": error,
            "email": email or auth.login_hint,
        },
        status,
    )


def _consent_page(
    request: Request, auth: AuthorizationRequest, client_name: str, email: str
) -> Response:
    sealed = request.app.state.sealer.seal(auth, request.app.state.runtime.clock.timestamp())
    scopes = [SCOPE_DESCRIPTIONS.get(s, f"Use the scope {s}") for s in auth.scope]
    return _page(
        request,
        "consent.html",
        {"client_name": client_name, "interaction": sealed, "scopes": scopes, "email": email},
    )


async def _continue(
    request: Request,
    auth: AuthorizationRequest,
    *,
    current: Any,
    just_logged_in: bool = False,
    just_consented: bool = False,
) -> Response:
    state = request.app.state
    runtime = state.runtime
    client = await state.clients.get(auth.client_id)
    if client is None:
        return error_page(
            "Unknown application", "The application that sent you here is no longer registered."
        )
    async with runtime.database.session() as session:
        decision = await decide(
            session,
            runtime.hasher,
            runtime.clock,
            issuer=runtime.settings.issuer,
            code_ttl=runtime.settings.authorization_code_ttl,
            request=auth,
            client=client,
            current=current,
            just_logged_in=just_logged_in,
            just_consented=just_consented,
        )
    if isinstance(decision, Redirect):
        return RedirectResponse(
            decision.url, status_code=303, headers={"cache-control": "no-store"}
        )
    if isinstance(decision, ShowConsent):
        return _consent_page(request, auth, client.client_name, decision.user.email)
    assert isinstance(decision, ShowLogin)
    return _login_page(request, auth, client.client_name)


async def _current_login(request: Request) -> Any:
    runtime = request.app.state.runtime
    async with runtime.database.session(readonly=True) as session:
        return await accounts.session_from_token(
            session, runtime.hasher, runtime.clock, request.cookies.get(SESSION_COOKIE)
        )


@router.api_route("/authorize", methods=["GET", "POST"])
async def authorize(request: Request) -> Response:
    """OAuth 2.0 authorization endpoint (RFC 6749 §3.1; GET and form POST, OIDC Core §3.1.2.1)."""
    if request.method == "POST":
        params = await _read_form(request)
        if params is None:
            return error_page("Bad request", "The authorization request must be a form post.")
    else:
        params = query_params(request)
    state = request.app.state
    client_id = params.get("client_id", "")
    client = await state.clients.get(client_id) if len(client_id) <= 64 and client_id else None
    try:
        auth = validate_authorization_request(params, client)
    except AuthorizeFatal as exc:
        return error_page("This sign-in link is not valid", exc.description)
    except AuthorizeRedirectError as exc:
        url = error_redirect(exc.redirect_uri, exc.error, exc.state, state.runtime.settings.issuer)
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
    return await _continue(request, auth, current=await _current_login(request))


def _unseal(request: Request, form: dict[str, str]) -> AuthorizationRequest | Response:
    state = request.app.state
    if not state.csrf.valid(request.cookies.get(csrf_mod.COOKIE), form.get("csrf_token")):
        return error_page(
            "This form has expired",
            "Your browser's security token did not match (cookies blocked or the page is old).",
            403,
        )
    try:
        return state.sealer.unseal(form.get("interaction", ""), state.runtime.clock.timestamp())
    except InteractionInvalid as exc:
        return error_page("This form has expired", str(exc).capitalize() + ".")


async def _form_and_request(
    request: Request, form_name: str
) -> tuple[dict[str, str], AuthorizationRequest] | Response:
    """The posted form and the authorization request sealed in it, or an error page."""
    form = await _read_form(request)
    if form is None:
        return error_page("Bad request", f"The {form_name} form was not sent as a form.")
    auth = _unseal(request, form)
    if isinstance(auth, Response):
        return auth
    return form, auth


@router.post("/login")
async def login(request: Request) -> Response:
    state = request.app.state
    runtime = state.runtime
    posted = await _form_and_request(request, "sign-in")
    if isinstance(posted, Response):
        return posted
    form, auth = posted
    client = await state.clients.get(auth.client_id)
    if client is None:
        return error_page(
            "Unknown application", "The application that sent you here is no longer registered."
        )
    email = form.get("email", "")[:320]
    password = form.get("password", "")
    ip = client_ip(request)
    try:
        await state.throttle.check(email, ip)
    except LoginThrottled as exc:
        minutes = max(1, exc.retry_after // 60)
        response = _login_page(
            request,
            auth,
            client.client_name,
            email=email,
            status=429,
            error=f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    async with runtime.database.session() as session:
        user = (
            await accounts.authenticate(session, state.passwords, runtime.clock, email, password)
            if email and password
            else None
        )
        if user is not None:
            user = await effective_user(
                session, state.resolver, runtime.settings.enforce_canonical_resolution, user
            )
            new = await accounts.create_login_session(
                session,
                runtime.hasher,
                runtime.clock,
                user,
                ttl=runtime.settings.login_session_ttl,
                amr=["pwd"],
                acr=accounts.ACR_PASSWORD,
                ip_address=ip,
                user_agent=request.headers.get("user-agent"),
            )
    if user is None:
        await state.throttle.failed(email, ip)
        return _login_page(
            request,
            auth,
            client.client_name,
            email=email,
            status=401,
            error="Incorrect email or password.",
        )
    await state.throttle.succeeded(email)
    response = await _continue(request, auth, current=(new.session, user), just_logged_in=True)
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=runtime.settings.login_session_ttl,
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="lax",
        path="/",
    )
    return response


@router.post("/consent")
async def consent(request: Request) -> Response:
    state = request.app.state
    runtime = state.runtime
    posted = await _form_and_request(request, "consent")
    if isinstance(posted, Response):
        return posted
    form, auth = posted
    current = await _current_login(request)
    if current is None:
        return error_page(
            "You are signed out", "Your session ended. Start again from the application.", 401
        )
    client = await state.clients.get(auth.client_id)
    if client is None:
        return error_page(
            "Unknown application", "The application that sent you here is no longer registered."
        )
    decision = form.get("decision")
    if decision == "deny":
        url = error_redirect(
            auth.redirect_uri,
            AccessDeniedError("the user denied access"),
            auth.state,
            runtime.settings.issuer,
        )
        return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})
    if decision != "allow":
        return error_page("Bad request", "Choose Allow or Deny.")
    async with runtime.database.session() as session:
        await grant_consent(session, runtime.clock, current[1].id, client, auth.scope)
    return await _continue(request, auth, current=current, just_consented=True)
