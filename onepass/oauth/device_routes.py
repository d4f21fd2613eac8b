"""Device Authorization Grant (RFC 8628): ``POST /device_authorization`` (§3.1, §3.2)
and the ``/device`` pages where a person enters the user code and decides (§3.3).

``/device`` takes a user code (any case, with or without its dash or spaces), refuses a
wrong one and counts it, per browser and per IP address (§5.1: ``LoginThrottle`` in
its own namespace; after ``ONEPASS_DEVICE_USER_CODE_MAX_FAILURES`` wrong codes the page
refuses for the rest of ``ONEPASS_DEVICE_USER_CODE_FAILURE_WINDOW``), sends a person
who is not signed in to the normal sign-in (``/account``, with its second step; a
short cookie brings them back here with the code), and then asks them to confirm, naming
the client and what it asks for, before they approve or deny (§5.4: the person should
check that they started this on their own device).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from onepass import api_docs, i18n
from onepass.accounts import csrf
from onepass.accounts.throttle import LoginThrottle, LoginThrottled
from onepass.clients.scopes import grant_scope, parse_scope
from onepass.cookies import cookie_name
from onepass.i18n import N_, translate
from onepass.oauth import device
from onepass.oauth.authorization import OTHER_SCOPE, SCOPE_DESCRIPTIONS
from onepass.oauth.authorize_routes import current_login
from onepass.oauth.endpoints import NO_STORE, _authenticated_client, _form
from onepass.oauth_errors import UnauthorizedClientError
from onepass.pages import render
from onepass.services import Service, runtime_of
from onepass.web import client_ip, read_form

log = structlog.get_logger("onepass.oauth.device")

router = APIRouter(tags=["oauth"])

# Wrong user codes, per browser ("account": the CSRF cookie) and per IP address.
DEVICE_CODE_THROTTLE: Service[LoginThrottle] = Service("oauth.device.throttle")
# Brings a person back to /device with their code once they signed in at /account.
RETURN_COOKIE = "onepass_device"

WRONG_CODE = N_(
    "That code is not valid: check it on your device's screen and try again. "
    "Codes expire after a few minutes."
)
THROTTLED = N_(
    "Too many wrong codes. For your safety this page refuses codes for %(minutes)s "
    "minutes; try again later."
)
NOT_PENDING = N_(
    "This code is no longer waiting for an answer: it expired, or was already approved "
    "or denied. Start again on your device."
)
FORM_EXPIRED = N_("This form has expired. Reload the page and try again.")


@router.post(
    "/device_authorization",
    responses=api_docs.CLIENT_AUTHENTICATED,
    openapi_extra=api_docs.form("client_id", "client_secret", "scope"),
)
async def device_authorization(request: Request) -> Response:
    """RFC 8628 §3.1: a client (authenticated as at ``/token``; a public one by its
    `client_id`) with the device_code grant asks for a device code and a user code.
    Errors are RFC 6749 §5.2 JSON."""
    runtime = runtime_of(request)
    form = await _form(request)
    client = await _authenticated_client(request, form)
    if device.GRANT_TYPE not in client.grant_types:
        raise UnauthorizedClientError(f"this client may not use the {device.GRANT_TYPE} grant")
    scope = grant_scope(parse_scope(form.get("scope")), client.scopes, user_present=True)
    if "offline_access" in scope and "refresh_token" not in client.grant_types:
        scope = [s for s in scope if s != "offline_access"]
    async with runtime.database.session() as session:
        started = await device.start(
            session,
            runtime.hasher,
            runtime.clock,
            client,
            scope,
            runtime.settings.device_code_ttl,
        )
    verification_uri = f"{runtime.settings.issuer}/device"
    return JSONResponse(
        {
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": verification_uri
            + "?"
            + urlencode({"user_code": started.user_code}),
            "expires_in": started.expires_in,
            "interval": started.interval,
        },
        headers=NO_STORE,
    )


async def _signed_in(request: Request) -> Any:
    return await current_login(request)


def _language(request: Request, current: Any) -> str:
    return i18n.page_language(
        accept_language=request.headers.get("accept-language"),
        saved=current[1].locale if current is not None else None,
    )


def _code_page(
    request: Request,
    language: str,
    current: Any,
    *,
    user_code: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    return csrf.form_page(
        request,
        "device.html",
        {
            "user_code": user_code[:20],
            "email": current[1].email if current is not None else None,
            "error": error,
        },
        status,
        language=language,
    )


def _problem(language: str, message: str, status: int) -> Response:
    return render(
        "error.html",
        {"title": translate(language, N_("Connect a device")), "message": message},
        status,
        language=language,
    )


@router.get("/device", response_class=HTMLResponse, responses=api_docs.pages(303, 400))
async def device_page(request: Request) -> Response:
    """The form for the code a device shows (`user_code` pre-fills it: §3.3.1)."""
    current = await _signed_in(request)
    language = _language(request, current)
    return _code_page(
        request, language, current, user_code=request.query_params.get("user_code", "")
    )


@router.post(
    "/device",
    response_class=HTMLResponse,
    responses=api_docs.pages(303, 400, 403, 413, 429),
    openapi_extra=api_docs.form("csrf_token", "user_code"),
)
async def device_code(request: Request) -> Response:
    """Check the code (counted against this browser and IP address when wrong), then
    the sign-in if needed, then the confirmation page."""
    runtime = runtime_of(request)
    current = await _signed_in(request)
    language = _language(request, current)
    form = await read_form(request)
    if form is None or not csrf.genuine(request, form):
        return _problem(language, translate(language, FORM_EXPIRED), 403)
    typed = form.get("user_code", "")[:64]
    browser = request.cookies.get(csrf.cookie_for(runtime.settings), "")
    throttle = DEVICE_CODE_THROTTLE.of(request)
    ip = client_ip(request)
    try:
        await throttle.attempt(browser, ip)
    except LoginThrottled as exc:
        message = translate(language, THROTTLED, minutes=max(1, exc.retry_after // 60))
        response = _code_page(
            request, language, current, user_code=typed, error=message, status=429
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    code = device.normalise_user_code(typed)
    found = None
    if code is not None:
        async with runtime.database.session(readonly=True) as session:
            found = await device.pending(session, runtime.clock, code)
    if found is None:
        log.info("device.wrong_user_code", ip=ip)
        return _code_page(
            request,
            language,
            current,
            user_code=typed,
            error=translate(language, WRONG_CODE),
            status=400,
        )
    await throttle.succeeded(browser, ip)
    if current is None:
        # The normal sign-in (with its second step), then back here with the code.
        response = RedirectResponse(
            "/account", status_code=303, headers={"cache-control": "no-store"}
        )
        response.set_cookie(
            cookie_name(runtime.settings, RETURN_COOKIE),
            found.user_code,
            max_age=runtime.settings.device_code_ttl,
            httponly=True,
            secure=runtime.settings.secure_cookies,
            samesite="lax",
            path="/",
        )
        return response
    brand = runtime.settings.brand_name
    scopes = [
        translate(language, SCOPE_DESCRIPTIONS[s], brand=brand)
        if s in SCOPE_DESCRIPTIONS
        else translate(language, OTHER_SCOPE, scope=s)
        for s in found.scope
    ]
    return csrf.form_page(
        request,
        "device_confirm.html",
        {
            "client_name": found.client_name,
            "scopes": scopes,
            "email": current[1].email,
            "user_code": device.display_user_code(found.user_code),
        },
        language=language,
    )


@router.post(
    "/device/decide",
    response_class=HTMLResponse,
    responses=api_docs.pages(303, 400, 403, 413, 429),
    openapi_extra=api_docs.form("csrf_token", "user_code", "decision"),
)
async def device_decide(request: Request) -> Response:
    """Approve or deny (`decision`: `approve` or `deny`) the device's request, signed in."""
    runtime = runtime_of(request)
    current = await _signed_in(request)
    language = _language(request, current)
    form = await read_form(request)
    if form is None or not csrf.genuine(request, form):
        return _problem(language, translate(language, FORM_EXPIRED), 403)
    if current is None:
        return _code_page(
            request,
            language,
            None,
            user_code=form.get("user_code", ""),
            error=translate(language, N_("Your session ended. Sign in again.")),
            status=401,
        )
    decision = form.get("decision")
    code = device.normalise_user_code(form.get("user_code", ""))
    if decision not in ("approve", "deny") or code is None:
        return _problem(language, translate(language, NOT_PENDING), 400)
    login, user = current
    async with runtime.database.session() as session:
        decided = await device.decide(
            session, runtime.clock, code, approve=decision == "approve", login=login, user=user
        )
    if not decided:
        return _problem(language, translate(language, NOT_PENDING), 409)
    log.info("device.decided", decision=decision, user_id=user.id)
    return render("device_done.html", {"approved": decision == "approve"}, language=language)


def back_to_device(request: Request) -> Response | None:
    """After signing in at /account: back to /device with the code a person entered
    there before (the cookie ``device_code`` set), or None."""
    settings = runtime_of(request).settings
    name = cookie_name(settings, RETURN_COOKIE)
    code = device.normalise_user_code(request.cookies.get(name, ""))
    if code is None:
        return None
    response = RedirectResponse(
        "/device?" + urlencode({"user_code": device.display_user_code(code)}),
        status_code=303,
        headers={"cache-control": "no-store"},
    )
    response.delete_cookie(name, path="/", secure=settings.secure_cookies, httponly=True)
    return response
