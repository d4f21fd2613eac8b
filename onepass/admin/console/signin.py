"""Signing in to the console and out: email, password and a TOTP code
(``console_service.log_in``); a console session of its own."""

from __future__ import annotations

import structlog
from fastapi import Request
from fastapi.responses import Response

from onepass.accounts import service as accounts
from onepass.accounts.throttle import LoginThrottled
from onepass.admin import audit, console_service
from onepass.admin.audit import Actor
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
    runtime_of,
    safe_next,
    totp_code_of,
)
from onepass.admin.console_service import ConsoleLoginRefused
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
    state = request.app.state
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
        await state.throttle.attempt(email, ip)
    except LoginThrottled as exc:
        minutes = max(1, exc.retry_after // 60)
        response = _login_page(
            request,
            next_url=next_url,
            email=email,
            error=f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
            status=429,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    # The password is checked before the write transaction opens (see check_password).
    check = await accounts.check_password(runtime.database, state.passwords, email, password)
    try:
        async with runtime.database.session() as session:
            new, user = await console_service.log_in(
                session,
                runtime.box,
                runtime.hasher,
                runtime.clock,
                runtime.cache,
                email=email,
                check=check,
                code=code,
                ttl=runtime.settings.admin_console_session_ttl,
                max_totp_failures=runtime.settings.admin_totp_max_failures,
                failure_window=runtime.settings.login_failure_window,
                ip_address=ip,
                user_agent=request.headers.get("user-agent"),
            )
            actor = Actor(f"admin:{user.email}", "console", user.id, ip)
            audit.add(session, runtime.clock, actor, "console.login", user.email)
    except ConsoleLoginRefused as exc:
        if not exc.counts:  # the password was right
            await state.throttle.succeeded(email, ip)
        if exc.admin is not None:
            admin_id, admin_email = exc.admin
            await audit.record(
                runtime.database,
                runtime.clock,
                Actor(f"admin:{admin_email}", "console", admin_id, ip),
                "console.login",
                admin_email,
                audit.DENIED,
                message=exc.reason,
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
    await state.throttle.succeeded(email, ip)
    response = redirect_to(next_url)
    response.set_cookie(
        admin_cookie(runtime.settings),
        new.token,
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
            audit.add(
                session,
                runtime.clock,
                actor_of(request, console),
                "console.logout",
                console.user.email,
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
