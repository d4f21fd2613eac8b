"""HTTP for the authorization endpoint and its login and consent forms."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from onepass import api_docs, i18n
from onepass.accounts import csrf as csrf_mod
from onepass.accounts import passkeys
from onepass.accounts import service as accounts
from onepass.accounts.models import User
from onepass.accounts.second_factor import (
    SECOND_FACTOR,
    PendingInvalid,
    PendingSignIn,
    Step,
    Verified,
    seal_pending,
    second_factor_asked,
    unseal_pending,
)
from onepass.accounts.signin import (
    PASSKEY_REFUSED_SECOND_STEP,
    SIGN_IN,
    Attempt,
    EndUserDoor,
    SecondFactorRequired,
    SignInRefused,
    throttled_message,
)
from onepass.accounts.throttle import LoginThrottled
from onepass.clients import profiles
from onepass.clients.registry import CLIENTS, ClientRecord
from onepass.cookies import cookie_name
from onepass.identity.canonical import RESOLVER, effective_user
from onepass.keys.keyring import KEYRING, NoActiveKey
from onepass.oauth import par, response_modes
from onepass.oauth.authorization import (
    OTHER_SCOPE,
    SCOPE_DESCRIPTIONS,
    Redirect,
    ShowConsent,
    ShowLogin,
    decide,
    error_response,
    request_error,
)
from onepass.oauth.authorize import (
    AuthorizationRequest,
    AuthorizeFatal,
    AuthorizeRedirectError,
    recheck_client_and_redirect,
    requested_mode,
    validate_authorization_request,
    validate_client_and_redirect,
)
from onepass.oauth.codes import grant_consent
from onepass.oauth.interaction import SEALER, Interaction, InteractionInvalid
from onepass.oauth.request_object import REQUEST_OBJECTS, RequestObjectRefused
from onepass.oauth.response_modes import AuthorizationResponse
from onepass.oauth_errors import AccessDeniedError, InvalidRequestError, OAuthError
from onepass.pages import PAGE_HEADERS, render
from onepass.services import Service, runtime_of
from onepass.settings import Settings
from onepass.web import Params, client_ip, query_params, read_form

log = structlog.get_logger("onepass.oauth.authorize")

router = APIRouter(
    tags=["oauth"],
    default_response_class=HTMLResponse,
    responses=api_docs.pages(303, 400, 401, 403, 413, 429),
)

SESSION_COOKIE = "onepass_session"

# The page that has a user enrol a second factor in the middle of a sign-in, when the
# RP asks for two steps and the user has one (``selfservice`` provides it: enrolling is
# a playbook procedure, a layer above this one).
Enrolment = Callable[[Request, AuthorizationRequest, str, str], Awaitable[Response]]
ENROLMENT: Service[Enrolment] = Service("oauth.enrolment")


def session_cookie(settings: Settings) -> str:
    return cookie_name(settings, SESSION_COOKIE)


def page_language(
    request: Request, auth: AuthorizationRequest | None = None, saved: str | None = None
) -> str:
    """The sign-in pages' language: the RP's ``ui_locales``, then the person's choice
    (``saved``, once they are known), then the browser's."""
    return i18n.page_language(
        accept_language=request.headers.get("accept-language"),
        ui_locales=auth.ui_locales if auth is not None else (),
        saved=saved,
    )


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    """The browser's 1pass login session (``/login``, ``/account``)."""
    response.set_cookie(
        session_cookie(settings),
        token,
        max_age=settings.login_session_ttl,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )


def error_page(title: str, message: str, status: int = 400) -> Response:
    return render("error.html", {"title": title, "message": message}, status)


async def _read_form(request: Request) -> Params | None:
    """The posted form, or None when it is not one (``BadParameter`` and ``BodyTooLarge``
    become a 400 and a 413 page, in app.py)."""
    return await read_form(request)


def passkey_rp(request: Request) -> passkeys.RelyingParty:
    """1pass as the WebAuthn relying party: its issuer's host and origin."""
    settings = runtime_of(request).settings
    return passkeys.RelyingParty.of_issuer(settings.issuer, settings.brand_name)


def passkey_sign_in(request: Request) -> passkeys.Ceremony | None:
    """The ceremony a sign-in page offers to sign in with a passkey and no password
    (none when the issuer is on an IP address, which browsers refuse as an RP ID)."""
    rp = passkey_rp(request)
    if not rp.usable:
        return None
    runtime = runtime_of(request)
    return passkeys.authentication(
        rp, runtime.box, passkeys.Purpose.SIGN_IN, runtime.clock.timestamp()
    )


def _login_page(
    request: Request,
    auth: AuthorizationRequest,
    client_name: str,
    *,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
) -> Response:
    sealed = SEALER.of(request).seal(auth, runtime_of(request).clock.timestamp())
    language = page_language(request, auth)
    passkey = passkey_sign_in(request)
    return csrf_mod.form_page(
        request,
        "login.html",
        {
            "client_name": client_name,
            "interaction": sealed,
            "error": i18n.translate(language, error) if error else None,
            "email": email or auth.login_hint,
            "signup_open": runtime_of(request).settings.signup == "open",
            "passkey": passkey,
            "passkey_action": "/login/passkey",
        },
        status,
        language=language,
        scripts=("passkey.js",) if passkey else (),
    )


async def second_step_page(
    request: Request,
    action: str,
    pending: str,
    user_id: int,
    language: str,
    *,
    client_name: str | None = None,
    interaction: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The second step of a sign-in: a code field (authenticator app or recovery code)
    and, for an account with passkeys, the passkey ceremony."""
    second = SECOND_FACTOR.of(request)
    enrolled = await second.factors(user_id)
    passkey = second.passkey_step(passkey_rp(request), user_id, enrolled)
    return csrf_mod.form_page(
        request,
        "second_factor.html",
        {
            "action": action,
            "client_name": client_name,
            "interaction": interaction,
            "pending": pending,
            "totp": enrolled.totp,
            "passkey": passkey,
            "error": error,
        },
        status,
        language=language,
        scripts=("passkey.js",) if passkey else (),
    )


async def _second_factor_page(
    request: Request,
    auth: AuthorizationRequest,
    client_name: str,
    pending: str,
    user_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    sealed = SEALER.of(request).seal(auth, runtime_of(request).clock.timestamp())
    language = page_language(request, auth)
    return await second_step_page(
        request,
        "/login/second-factor",
        pending,
        user_id,
        language,
        client_name=client_name,
        interaction=sealed,
        error=i18n.translate(language, error) if error else None,
        status=status,
    )


def redirect_host(redirect_uri: str) -> str:
    """Where the consent page says the person is sent back to: the redirect URI's
    host (and port, if any), or a native app's private-use scheme (RFC 8252 §7.1)."""
    parts = urlsplit(redirect_uri)
    host = parts.hostname or parts.scheme
    if parts.hostname and ":" in parts.hostname:
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{parts.port}" if parts.hostname and parts.port else host


def _consent_page(
    request: Request,
    auth: AuthorizationRequest,
    client: ClientRecord,
    email: str,
    login_sid: str | None,
    *,
    locale: str | None = None,
) -> Response:
    sealed = SEALER.of(request).seal(
        auth, runtime_of(request).clock.timestamp(), login_sid=login_sid
    )
    language = page_language(request, auth, locale)
    brand = runtime_of(request).settings.brand_name
    scopes = [
        i18n.translate(language, SCOPE_DESCRIPTIONS[s], brand=brand)
        if s in SCOPE_DESCRIPTIONS
        else i18n.translate(language, OTHER_SCOPE, scope=s)
        for s in auth.scope
    ]
    return csrf_mod.form_page(
        request,
        "consent.html",
        {
            "client_name": client.client_name,
            "interaction": sealed,
            "scopes": scopes,
            "email": email,
            # The RP's own pages (RFC 7591 policy_uri, tos_uri), and where it sends back to.
            "redirect_host": redirect_host(auth.redirect_uri),
            "policy_uri": client.policy_uri,
            "tos_uri": client.tos_uri,
        },
        language=language,
    )


async def continue_authorization(
    request: Request,
    auth: AuthorizationRequest,
    client: ClientRecord,
    *,
    current: Any,
    logged_in_here: bool = False,
    just_consented: bool = False,
) -> Response:
    runtime = runtime_of(request)
    async with runtime.database.session() as session:
        decision = await decide(
            session,
            runtime.hasher,
            runtime.clock,
            issuer=runtime.settings.issuer,
            code_ttl=profiles.code_ttl(client, runtime.settings.authorization_code_ttl),
            request=auth,
            client=client,
            current=current,
            logged_in_here=logged_in_here,
            just_consented=just_consented,
        )
    if isinstance(decision, Redirect):
        return deliver(request, decision.response, page_language(request, auth))
    if isinstance(decision, ShowConsent):
        # The consent form carries the login just completed, which it must not ask again.
        login_sid = current[0].sid if logged_in_here else None
        return _consent_page(
            request, auth, client, decision.user.email, login_sid, locale=decision.user.locale
        )
    assert isinstance(decision, ShowLogin)
    return _login_page(request, auth, client.client_name)


async def current_login(request: Request) -> Any:
    runtime = runtime_of(request)
    async with runtime.database.session(readonly=True) as session:
        current = await accounts.session_from_token(
            session,
            runtime.hasher,
            runtime.clock,
            request.cookies.get(session_cookie(runtime.settings)),
        )
    # An administrator signs in to the console only (``signin.EndUserDoor``); an
    # end-user session of one, left from before that rule, signs in to no RP either.
    if current is not None and current[1].is_admin:
        return None
    return current


@router.get(
    "/authorize",
    openapi_extra=api_docs.query(
        *api_docs.AUTHORIZATION_REQUEST, required=api_docs.AUTHORIZATION_REQUIRED
    ),
)
@router.post(
    "/authorize",
    openapi_extra=api_docs.form(
        *api_docs.AUTHORIZATION_REQUEST, required=api_docs.AUTHORIZATION_REQUIRED
    ),
)
async def authorize(request: Request) -> Response:
    """OAuth 2.0 authorization endpoint (RFC 6749 §3.1; GET and form POST, OIDC Core §3.1.2.1)."""
    if request.method == "POST":
        params = await _read_form(request)
        if params is None:
            return error_page("Bad request", "The authorization request must be a form post.")
    else:
        params = query_params(request)
    client_id = params.get("client_id", "")
    clients = CLIENTS.of(request)
    client = await clients.get(client_id) if len(client_id) <= 64 and client_id else None
    settings = runtime_of(request).settings
    if params.get("request_uri", "").startswith(par.REQUEST_URI_PREFIX):
        pushed = await _pushed_request(request, params, client)
        if isinstance(pushed, Response):
            return pushed
        params = pushed
    elif client is not None and par.required(
        client, settings.require_pushed_authorization_requests
    ):
        return _refused(request, params, client, InvalidRequestError(PAR_REQUIRED))
    elif client is not None and "request" in params:
        inner = await _request_object(request, params, client)
        if isinstance(inner, Response):
            return inner
        params = inner
    elif client is not None and client.require_signed_request_object:
        return _refused(request, params, client, InvalidRequestError(SIGNED_REQUIRED))
    try:
        auth = validate_authorization_request(params, client, production=settings.is_production)
    except AuthorizeFatal as exc:
        return error_page("This sign-in link is not valid", exc.description)
    except AuthorizeRedirectError as exc:
        assert client is not None
        issuer = runtime_of(request).settings.issuer
        error = error_response(
            exc.redirect_uri, exc.error, exc.state, issuer, mode=exc.response_mode, client=client
        )
        return deliver(request, error, page_language(request))
    assert client is not None
    unsignable = _unsignable(request, auth, client)
    if unsignable is not None:
        return unsignable
    return await continue_authorization(request, auth, client, current=await current_login(request))


def _unsignable(
    request: Request, auth: AuthorizationRequest, client: ClientRecord
) -> Response | None:
    """A JARM request whose response this server has no key to sign (the client's
    algorithm was taken out of ONEPASS_SIGNING_ALGS): refused before any code is
    issued, unsigned, in the mode's plain delivery."""
    alg = client.authorization_signed_response_alg
    if not response_modes.is_jwt(auth.response_mode) or KEYRING.of(request).has_signer(alg):
        return None
    error = error_response(
        auth.redirect_uri,
        InvalidRequestError(f"this server has no {alg} key to sign the response with"),
        auth.state,
        runtime_of(request).settings.issuer,
        mode=response_modes.delivery(auth.response_mode),
        client=client,
    )
    return deliver(request, error, page_language(request, auth))


def deliver(request: Request, response: AuthorizationResponse, language: str) -> Response:
    """The authorization response (a code or an error) sent back to the client in its
    response mode (``oauth.response_modes``): a 303 to the redirect URI with the
    parameters in its query or fragment, or the form_post page; in a JWT mode, the
    parameters signed into one ``response`` (JARM)."""
    params = response.params
    if response_modes.is_jwt(response.mode):
        runtime = runtime_of(request)
        try:
            signer = KEYRING.of(request).signer(response.signing_alg)
        except NoActiveKey:
            log.warning("authorize.jarm_no_key", alg=response.signing_alg)
            return error_page(
                "Temporarily unavailable",
                "The response to the application cannot be signed now. Try again later.",
                503,
            )
        claims = response_modes.response_claims(
            params,
            issuer=runtime.settings.issuer,
            client_id=response.client_id,
            now=int(runtime.clock.timestamp()),
        )
        params = {"response": signer.sign(claims, typ=None)}
    where = response_modes.delivery(response.mode)
    if where == response_modes.FORM_POST:
        return form_post_page(response.redirect_uri, params, language)
    return RedirectResponse(
        response_modes.url_with(response.redirect_uri, params, where),
        status_code=303,
        headers={"cache-control": "no-store"},
    )


def form_post_page(redirect_uri: str, params: dict[str, str], language: str) -> Response:
    """OAuth 2.0 Form Post Response Mode §2: a page that posts ``params`` to
    ``redirect_uri``. Its CSP is the pages' own, plus one inline script allowed by a
    nonce made for this page alone, and forms that may go only to the redirect URI's
    origin (``form-action``); it is never cached and sends no ``Referer``."""
    origin = response_modes.form_action_source(redirect_uri)
    if origin is None:  # validation refuses form_post for such a URI: never reached
        return error_page("Bad request", "This address cannot receive a form post.")
    nonce = secrets.token_urlsafe(18)
    csp = (
        PAGE_HEADERS["content-security-policy"]
        + f"; script-src 'nonce-{nonce}'; form-action {origin}"
    )
    return render(
        "form_post.html",
        {"action": redirect_uri, "params": params, "nonce": nonce},
        language=language,
        csp=csp,
    )


async def _signed_in_here(
    request: Request,
    auth: AuthorizationRequest,
    client: ClientRecord,
    login: accounts.NewLoginSession,
    user: User,
) -> Response:
    """A sign-in done on these pages: on with the authorization, the session's cookie set."""
    response = await continue_authorization(
        request, auth, client, current=(login.session, user), logged_in_here=True
    )
    set_session_cookie(response, runtime_of(request).settings, login.token)
    return response


def _throttled_login_page(
    request: Request,
    auth: AuthorizationRequest,
    client_name: str,
    exc: LoginThrottled,
    email: str | None = None,
) -> Response:
    response = _login_page(
        request,
        auth,
        client_name,
        email=email,
        status=429,
        error=throttled_message(exc.retry_after, page_language(request, auth)),
    )
    response.headers["retry-after"] = str(exc.retry_after)
    return response


async def verify_second_step(
    request: Request, pending: PendingSignIn, form: dict[str, str]
) -> Verified | None:
    """The second step's answer a form posts: a passkey's (``credential``) or a code
    (the authenticator app's, or a recovery code). Raises ``LoginThrottled``."""
    ip, agent = client_ip(request), request.headers.get("user-agent")
    second = SECOND_FACTOR.of(request)
    if form.get("credential"):
        return await second.verify_passkey(
            pending,
            passkey_rp(request),
            form.get("passkey_state", ""),
            form.get("credential", ""),
            ip,
            agent,
        )
    return await second.verify(pending, form.get("code", "")[:64], ip, agent)


PAR_REQUIRED = (
    "this client sends its authorization requests by PAR (RFC 9126): push them to /par "
    "and send the browser with client_id and request_uri"
)


SIGNED_REQUIRED = (
    "this client sends its authorization requests as signed request objects (RFC 9101): "
    "put them in the request parameter, or push one to /par"
)


def _refused(
    request: Request,
    params: Params,
    client: ClientRecord,
    error: OAuthError,
    page: str | None = None,
) -> Response:
    """``error`` at the redirect URI the (outer) request names, when the client
    registered it; otherwise on the error page (``page``, or why there is no address
    to send it to): an unverified request never makes 1pass an open redirector."""
    try:
        redirect_uri = validate_client_and_redirect(params, client)
    except AuthorizeFatal as exc:
        return error_page("This sign-in link is not valid", page or exc.description)
    mode = requested_mode(params)
    if response_modes.delivery(mode) == response_modes.FORM_POST and (
        response_modes.form_action_source(redirect_uri) is None
    ):
        mode = response_modes.DEFAULT
    response = error_response(
        redirect_uri,
        error,
        params.get("state") if "state" not in params.repeated else None,
        runtime_of(request).settings.issuer,
        mode=mode,
        client=client,
    )
    return deliver(request, response, page_language(request))


async def _request_object(
    request: Request, params: Params, client: ClientRecord
) -> Params | Response:
    """The parameters of the signed request object ``params`` carry (RFC 9101 §6.3:
    only those, and ``client_id``), or the refusal: ``invalid_request_object``
    redirected only where the outer request names a registered redirect URI."""
    try:
        if "request" in params.repeated:
            raise RequestObjectRefused("the parameter request is repeated")
        return await REQUEST_OBJECTS.of(request).parameters(params["request"], client)
    except RequestObjectRefused as exc:
        return _refused(
            request,
            params,
            client,
            exc,
            page=f"The application's signed request was refused: {exc.description}.",
        )


async def _pushed_request(
    request: Request, params: Params, client: ClientRecord | None
) -> Params | Response:
    """The request pushed as ``request_uri`` (taken once), or the error page: without a
    valid pushed request nothing names a redirect URI to send an error to."""
    if client is None:
        return error_page(
            "This sign-in link is not valid",
            "The application that sent you here is not registered (client_id).",
        )
    if params.repeated & {"client_id", "request_uri"}:
        return error_page("This sign-in link is not valid", "A parameter is repeated.")
    runtime = runtime_of(request)
    async with runtime.database.session() as session:
        taken = await par.take(
            session, runtime.hasher, runtime.clock, client, params["request_uri"]
        )
    if taken is None:
        return error_page(
            "This sign-in link is not valid",
            "It has expired or was already used: a pushed request works once, within a "
            "minute. Start again from the application.",
        )
    return taken


def _unseal(request: Request, form: dict[str, str]) -> Interaction | Response:
    runtime = runtime_of(request)
    if not csrf_mod.genuine(request, form):
        return error_page(
            "This form has expired",
            "Your browser's security token did not match (cookies blocked or the page is old).",
            403,
        )
    try:
        return SEALER.of(request).unseal(form.get("interaction", ""), runtime.clock.timestamp())
    except InteractionInvalid as exc:
        return error_page("This form has expired", str(exc).capitalize() + ".")


async def form_and_request(
    request: Request, form_name: str
) -> tuple[dict[str, str], Interaction, ClientRecord] | Response:
    """The posted form, the interaction sealed in it and its client (still registered
    with the request's redirect URI), or an error page."""
    form = await _read_form(request)
    if form is None:
        return error_page("Bad request", f"The {form_name} form was not sent as a form.")
    interaction = _unseal(request, form)
    if isinstance(interaction, Response):
        return interaction
    client = await CLIENTS.of(request).get(interaction.request.client_id)
    try:
        client = recheck_client_and_redirect(interaction.request, client)
    except AuthorizeFatal as exc:
        return error_page("This sign-in link is no longer valid", exc.description)
    return form, interaction, client


def end_user_door(request: Request, auth: AuthorizationRequest | None = None) -> EndUserDoor:
    """``/login``'s way in (``accounts.signin``): a session for the account's canonical
    user (``identity.canonical``); two steps when ``auth`` asks for them."""
    settings = runtime_of(request).settings
    resolver = RESOLVER.of(request)

    async def canonical(session: AsyncSession, user: User) -> User:
        return await effective_user(session, resolver, settings.enforce_canonical_resolution, user)

    return EndUserDoor(
        settings.login_session_ttl,
        canonical,
        require_second_factor=auth is not None and second_factor_asked(auth.acr_values),
    )


@router.post(
    "/login",
    openapi_extra=api_docs.form(
        "interaction", "csrf_token", "email", "password", required=("interaction", "csrf_token")
    ),
)
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    posted = await form_and_request(request, "sign-in")
    if isinstance(posted, Response):
        return posted
    form, interaction, client = posted
    auth = interaction.request
    email = form.get("email", "")[:320]
    attempt = Attempt(
        email, form.get("password", ""), client_ip(request), request.headers.get("user-agent")
    )
    try:
        signed_in = await SIGN_IN.of(request).sign_in(end_user_door(request, auth), attempt)
    except LoginThrottled as exc:
        return _throttled_login_page(request, auth, client.client_name, exc, email)
    except SignInRefused as exc:
        return _login_page(
            request, auth, client.client_name, email=email, status=401, error=exc.message
        )
    except SecondFactorRequired as exc:
        if not exc.enrolled:  # the RP requires one: enrol it first
            pending = seal_pending(
                runtime.box, exc.user.id, runtime.clock.timestamp(), step=Step.ENROL
            )
            return await ENROLMENT.of(request)(request, auth, client.client_name, pending)
        pending = seal_pending(runtime.box, exc.user.id, runtime.clock.timestamp())
        return await _second_factor_page(request, auth, client.client_name, pending, exc.user.id)
    return await _signed_in_here(request, auth, client, signed_in.login, signed_in.user)


@router.post(
    "/consent",
    openapi_extra=api_docs.form(
        "interaction", "csrf_token", "decision", required=("interaction", "csrf_token", "decision")
    ),
)
async def consent(request: Request) -> Response:
    runtime = runtime_of(request)
    posted = await form_and_request(request, "consent")
    if isinstance(posted, Response):
        return posted
    form, interaction, client = posted
    auth = interaction.request
    current = await current_login(request)
    if current is None:
        return error_page(
            "You are signed out", "Your session ended. Start again from the application.", 401
        )
    decision = form.get("decision")
    if decision == "deny":
        denied = request_error(
            auth, client, AccessDeniedError("the user denied access"), runtime.settings.issuer
        )
        return deliver(request, denied, page_language(request, auth))
    if decision != "allow":
        return error_page("Bad request", "Choose Allow or Deny.")
    async with runtime.database.session() as session:
        await grant_consent(session, runtime.clock, current[1].id, client, auth.scope)
    logged_in_here = interaction.login_sid is not None and interaction.login_sid == current[0].sid
    return await continue_authorization(
        request,
        auth,
        client,
        current=current,
        logged_in_here=logged_in_here,
        just_consented=True,
    )


WRONG_CODE = i18n.N_("That code is not right. Enter the current code from your authenticator app.")


@router.post(
    "/login/second-factor",
    openapi_extra=api_docs.form(
        "interaction",
        "csrf_token",
        "pending",
        "code",
        "passkey_state",
        "credential",
        required=("interaction", "csrf_token"),
    ),
)
async def login_second_factor(request: Request) -> Response:
    """The second step of a sign-in whose password was right: the TOTP code (or a
    recovery code), or a passkey's answer, of an account that has one
    (``accounts.second_factor``)."""
    runtime = runtime_of(request)
    posted = await form_and_request(request, "sign-in")
    if isinstance(posted, Response):
        return posted
    form, interaction, client = posted
    auth = interaction.request
    pending_text = form.get("pending", "")
    try:
        pending = unseal_pending(runtime.box, pending_text, runtime.clock.timestamp())
    except PendingInvalid as exc:
        return error_page("This form has expired", str(exc).capitalize() + ".")
    wrong = PASSKEY_REFUSED_SECOND_STEP if form.get("credential") else WRONG_CODE
    try:
        verified = await verify_second_step(request, pending, form)
    except LoginThrottled as exc:
        response = await _second_factor_page(
            request,
            auth,
            client.client_name,
            pending_text,
            pending.user_id,
            error=throttled_message(exc.retry_after, page_language(request, auth)),
            status=429,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    if verified is None:
        return await _second_factor_page(
            request,
            auth,
            client.client_name,
            pending_text,
            pending.user_id,
            error=wrong,
            status=401,
        )
    return await _signed_in_here(request, auth, client, verified.login, verified.user)


@router.post(
    "/login/passkey",
    openapi_extra=api_docs.form(
        "interaction",
        "csrf_token",
        "passkey_state",
        "credential",
        required=("interaction", "csrf_token"),
    ),
)
async def login_passkey(request: Request) -> Response:
    """Sign in with a passkey, without a password (``SignIn.with_passkey``)."""
    posted = await form_and_request(request, "sign-in")
    if isinstance(posted, Response):
        return posted
    form, interaction, client = posted
    auth = interaction.request
    try:
        signed_in = await SIGN_IN.of(request).with_passkey(
            end_user_door(request, auth),
            passkey_rp(request),
            form.get("passkey_state", ""),
            form.get("credential", ""),
            client_ip(request),
            request.headers.get("user-agent"),
        )
    except LoginThrottled as exc:
        return _throttled_login_page(request, auth, client.client_name, exc)
    except SignInRefused as exc:
        return _login_page(request, auth, client.client_name, status=401, error=exc.message)
    return await _signed_in_here(request, auth, client, signed_in.login, signed_in.user)
