"""Signing in to the console and out: email, password and a TOTP code (the sign-in
service of ``accounts.signin`` through ``console_service.ConsoleDoor``); a console
session of its own."""

from __future__ import annotations

import structlog
from fastapi import Request
from fastapi.responses import Response

from onepass.accounts.signin import SIGN_IN, throttled_message
from onepass.accounts.throttle import LoginThrottled
from onepass.admin import console_service
from onepass.admin.console.web import (
    COOKIE_PATH,
    EXPIRED_FORM,
    actor_of,
    admin_cookie,
    csrf_ok,
    current_console,
    guarded,
    printable,
    problem_page,
    read_form,
    redirect_to,
    render_page,
    router,
    safe_next,
    totp_code_of,
)
from onepass.admin.console_service import ConsoleLoginRefused
from onepass.operators.audit import Actor
from onepass.playbook import console as console_audit
from onepass.services import runtime_of
from onepass.web import client_ip

log = structlog.get_logger("onepass.admin.console")


# -- sign-in --------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    next_url: str = "/admin",
    email: str = "",
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        "admin/login.html",
        {"next": next_url, "email": email, "error": error, "notice": notice},
        status,
    )


@router.get("/login")
@guarded
async def login_form(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if await current_console(request) is not None:
        return redirect_to(next_url)
    signed_out = request.query_params.get("signed_out") == "1"
    return _login_page(
        request, next_url=next_url, notice="You are signed out." if signed_out else None
    )


@router.post("/login")
@guarded
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await read_form(request)
    if form is None:
        return _login_page(
            request, error="The sign-in form was not sent as a form. Reload the page.", status=400
        )
    next_url = safe_next(form.get("next"))
    if not csrf_ok(request, form):
        return _login_page(request, next_url=next_url, error=EXPIRED_FORM, status=403)
    email = form.get("email", "").strip()[:320]
    password = form.get("password", "")
    code = totp_code_of(form)
    if not email or not password or not code:
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error="Enter your email, your password and the 6-digit code from your authenticator app.",
            status=400,
        )
    if not printable(email):
        return _login_page(
            request, next_url=next_url, error=console_service.GENERIC_REFUSAL, status=401
        )
    ip = client_ip(request)
    try:
        signed_in = await console_service.log_in(
            SIGN_IN.of(request),
            runtime,
            email=email,
            password=password,
            code=code,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
        )
    except LoginThrottled as exc:
        response = _login_page(
            request,
            next_url=next_url,
            email=email,
            error=throttled_message(exc.retry_after),
            status=429,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    except ConsoleLoginRefused as exc:
        if exc.admin is not None:
            admin_id, admin_email = exc.admin
            await console_audit.record_refused_sign_in(
                runtime.database,
                runtime.clock,
                Actor(f"admin:{admin_email}", "console", admin_id, ip),
                admin_email,
                exc.reason,
            )
        else:
            # Not an administrator's email: nothing to audit, and the typed text (which
            # may be a password typed in the wrong field) is not logged.
            log.info("admin.console_login_refused", ip=ip)
        page = _login_page(
            request,
            next_url=next_url,
            email=email,
            error=exc.message,
            status=429 if exc.retry_after else 401 if exc.counts else 403,
        )
        if exc.retry_after:
            page.headers["retry-after"] = str(exc.retry_after)
        return page
    response = redirect_to(next_url)
    response.set_cookie(
        admin_cookie(runtime.settings),
        signed_in.login.token,
        max_age=runtime.settings.admin_console_session_ttl,
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="strict",
        path=COOKIE_PATH,
    )
    return response


@router.post("/logout")
@guarded
async def logout(request: Request) -> Response:
    runtime = runtime_of(request)
    console = await current_console(request)
    if console is None:
        response = redirect_to("/admin/login?signed_out=1")
    else:
        form = await read_form(request)
        if form is None or not csrf_ok(request, form):
            return problem_page(request, "Sign-out refused", EXPIRED_FORM, 403, console)
        async with runtime.database.session() as session:
            await console_service.log_out(session, runtime.clock, console)
            console_audit.record_sign_out(
                session, runtime.clock, actor_of(request, console), console.user.email
            )
        response = redirect_to("/admin/login?signed_out=1")
    response.delete_cookie(
        admin_cookie(runtime.settings),
        path=COOKIE_PATH,
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response
