"""``/account``: a person's own account, signed in to 1pass (the same login session as
the sign-in pages, so signing in here signs in for the RPs too, and back). Thin: the
rules are in ``account``. Every change is a POST with the CSRF token, answered with a
303 back to the page and a notice (``?done=``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from onepass import api_docs, i18n
from onepass.accounts import csrf
from onepass.accounts import service as accounts
from onepass.accounts.links import LinkInvalid, LinkProblem
from onepass.accounts.models import LoginSession, User
from onepass.accounts.passkeys import PasskeyRefused
from onepass.accounts.second_factor import (
    PendingInvalid,
    has_totp,
    seal_pending,
    unseal_pending,
)
from onepass.accounts.service import InvalidAccount
from onepass.accounts.signin import (
    PASSKEY_REFUSED_SECOND_STEP,
    SIGN_IN,
    Attempt,
    SecondFactorRequired,
    SignInRefused,
    throttled_message,
)
from onepass.accounts.throttle import LoginThrottled
from onepass.clients.registry import ClientNotFound
from onepass.i18n import N_, translate
from onepass.oauth import backchannel
from onepass.oauth.authorize_routes import (
    WRONG_CODE,
    current_login,
    end_user_door,
    passkey_rp,
    passkey_sign_in,
    second_step_page,
    session_cookie,
    set_session_cookie,
    verify_second_step,
)
from onepass.oauth.device_routes import back_to_device
from onepass.pages import render
from onepass.selfservice.account import (
    ACCOUNT,
    EmailRefused,
    FactorNeeded,
    WrongCode,
    WrongPassword,
)
from onepass.selfservice.recovery import PasswordRefused
from onepass.selfservice.routes import (
    NO_MATCH,
    genuine_form,
    link_form,
    problem_page,
)
from onepass.services import runtime_of
from onepass.web import Params, client_ip

log = structlog.get_logger("onepass.selfservice")

router = APIRouter(
    tags=["self-service"],
    default_response_class=HTMLResponse,
    responses=api_docs.pages(303, 400, 401, 403, 413, 429),
)

NOTICES = {
    "signed-in": N_("You are signed in."),
    "name": N_("Your name is changed."),
    "password": N_(
        "Your password is changed, and you were signed out everywhere. Sign in with the new one."
    ),
    "others": N_("Your other sessions are signed out."),
    "application": N_("The application's access is removed."),
    "signed-out": N_("You are signed out."),
    "factor-removed": N_("Two-step verification is off."),
    "passkey-added": N_("The passkey is added."),
    "passkey-removed": N_("The passkey is removed."),
    "language": N_("Your language is saved."),
    "email-sent": N_(
        "We sent a link to the new address. Open it to make it your address; until then "
        "the old one stays."
    ),
}
WRONG_CURRENT = N_("The current password is not right.")
FACTOR_NEEDED = N_(
    "%(applications)s requires two-step verification for every sign-in: add another "
    "passkey or an authenticator app before removing this one."
)
PASSKEY_NOT_ADDED = N_(
    "The passkey was not added: the browser's answer did not verify, came too late, or is "
    "for a passkey already added. Try again."
)
CODE_TOO_LATE = N_("The five minutes to enter the code are over. Sign in again.")


def _language(request: Request, user: User | None = None) -> str:
    """The account pages' language: the person's choice once signed in, else the
    browser's."""
    return i18n.page_language(
        accept_language=request.headers.get("accept-language"),
        saved=user.locale if user is not None else None,
    )


def _back(done: str) -> Response:
    return RedirectResponse(
        f"/account?done={done}", status_code=303, headers={"cache-control": "no-store"}
    )


def _sign_in_page(
    request: Request,
    language: str,
    *,
    email: str = "",
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    passkey = passkey_sign_in(request)
    return csrf.form_page(
        request,
        "account_login.html",
        {"email": email, "error": error, "notice": notice, "passkey": passkey},
        status,
        language=language,
        scripts=("passkey.js",) if passkey else (),
    )


async def _page(
    request: Request,
    language: str,
    user: User,
    current: LoginSession,
    *,
    notice: str | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    service = ACCOUNT.of(request)
    overview = await service.overview(user)
    now = runtime_of(request).clock.now()
    registration = service.start_passkey(passkey_rp(request), user, overview.passkeys)
    keys = [
        {
            "id": key.id,
            "name": key.name,
            "added": i18n.when(key.created_at, now, language),
            "used": i18n.when(key.last_used_at, now, language) if key.last_used_at else None,
            "synced": key.backed_up,
        }
        for key in overview.passkeys
    ]
    sessions = [
        {
            "current": login.id == current.id,
            "started": i18n.when(login.created_at, now, language),
            "last_seen": i18n.when(login.last_seen_at, now, language),
            "ip": login.ip_address or "",
            "device": (login.user_agent or "")[:120],
        }
        for login in overview.sessions
    ]
    return csrf.form_page(
        request,
        "account.html",
        {
            "user": user,
            "sessions": sessions,
            "applications": overview.applications,
            "totp": has_totp(user),
            "second_factor": has_totp(user) or bool(keys),
            "passkeys": keys,
            "registration": registration,
            "passkeys_usable": passkey_rp(request).usable,
            "recovery_codes_left": await service.recovery_codes_left(user),
            "notice": notice,
            "errors": errors or {},
        },
        status,
        language=language,
        scripts=("passkey.js",) if registration else (),
    )


@router.get("/account")
async def account(request: Request) -> Response:
    """The account page, or its sign-in form."""
    current = await current_login(request)
    language = _language(request, current[1] if current is not None else None)
    done = request.query_params.get("done", "")
    notice = translate(language, NOTICES[done]) if done in NOTICES else None
    if current is None:
        return _sign_in_page(request, language, notice=notice)
    # Signed in after entering a device's code at /device (RFC 8628): back there.
    device = back_to_device(request)
    if device is not None:
        return device
    login, user = current
    return await _page(request, language, user, login, notice=notice)


@router.post("/account/login", openapi_extra=api_docs.form("csrf_token", "email", "password"))
async def account_login(request: Request) -> Response:
    """Sign in to 1pass itself (for the account page, and the RPs)."""
    language = _language(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    email = form.get("email", "")[:320]
    attempt = Attempt(
        email, form.get("password", ""), client_ip(request), request.headers.get("user-agent")
    )
    try:
        signed_in = await SIGN_IN.of(request).sign_in(end_user_door(request), attempt)
    except LoginThrottled as exc:
        response = _sign_in_page(
            request,
            language,
            email=email,
            error=throttled_message(exc.retry_after, language),
            status=429,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    except SignInRefused as exc:
        message = translate(language, exc.message)
        return _sign_in_page(request, language, email=email, error=message, status=401)
    except SecondFactorRequired as exc:
        runtime = runtime_of(request)
        pending = seal_pending(runtime.box, exc.user.id, runtime.clock.timestamp())
        return await _code_page(request, language, pending, exc.user.id)
    response = _back("signed-in")
    set_session_cookie(response, runtime_of(request).settings, signed_in.login.token)
    return response


def _refusal(exc: Exception, language: str) -> tuple[str, int]:
    """What the page says, and its status, to a change refused for its password (or,
    removing a factor, for an application's policy)."""
    if isinstance(exc, LoginThrottled):
        return throttled_message(exc.retry_after, language), 429
    if isinstance(exc, FactorNeeded):
        names = ", ".join(exc.applications)
        return translate(language, FACTOR_NEEDED, applications=names), 409
    return translate(language, WRONG_CURRENT), 401


async def _code_page(
    request: Request,
    language: str,
    pending: str,
    user_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return await second_step_page(
        request,
        "/account/login/second-factor",
        pending,
        user_id,
        language,
        error=error,
        status=status,
    )


@router.post(
    "/account/login/second-factor",
    openapi_extra=api_docs.form("csrf_token", "pending", "code", "passkey_state", "credential"),
)
async def account_login_code(request: Request) -> Response:
    """The second step of signing in here, for an account with a second factor: a
    code, or a passkey's answer."""
    language = _language(request)
    runtime = runtime_of(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    pending_text = form.get("pending", "")
    try:
        pending = unseal_pending(runtime.box, pending_text, runtime.clock.timestamp())
    except PendingInvalid:
        return _sign_in_page(
            request, language, error=translate(language, CODE_TOO_LATE), status=401
        )
    wrong = PASSKEY_REFUSED_SECOND_STEP if form.get("credential") else WRONG_CODE
    try:
        verified = await verify_second_step(request, pending, form)
    except LoginThrottled as exc:
        response = await _code_page(
            request,
            language,
            pending_text,
            pending.user_id,
            error=throttled_message(exc.retry_after, language),
            status=429,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    if verified is None:
        return await _code_page(
            request,
            language,
            pending_text,
            pending.user_id,
            error=translate(language, wrong),
            status=401,
        )
    response = _back("signed-in")
    set_session_cookie(response, runtime.settings, verified.login.token)
    return response


@router.post(
    "/account/login/passkey",
    openapi_extra=api_docs.form("csrf_token", "passkey_state", "credential"),
)
async def account_login_passkey(request: Request) -> Response:
    """Sign in here with a passkey, without a password."""
    language = _language(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    try:
        signed_in = await SIGN_IN.of(request).with_passkey(
            end_user_door(request),
            passkey_rp(request),
            form.get("passkey_state", ""),
            form.get("credential", ""),
            client_ip(request),
            request.headers.get("user-agent"),
        )
    except LoginThrottled as exc:
        response = _sign_in_page(
            request, language, error=throttled_message(exc.retry_after, language), status=429
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    except SignInRefused as exc:
        return _sign_in_page(request, language, error=translate(language, exc.message), status=401)
    response = _back("signed-in")
    set_session_cookie(response, runtime_of(request).settings, signed_in.login.token)
    return response


SignedInHandler = Callable[[Request, str, Params, LoginSession, User], Awaitable[Response]]


def signed_in(handler: SignedInHandler) -> Callable[[Request], Awaitable[Response]]:
    """A change posted from the account page: the handler gets the page's language and
    the form, once it is genuine (CSRF) and the browser is signed in; otherwise the
    page that says what is wrong. (No ``functools.wraps``: FastAPI reads the route's
    own signature, ``(request)``.)"""

    async def route(request: Request) -> Response:
        language = _language(request)
        posted = await _signed_in_form(request, language)
        if isinstance(posted, Response):
            return posted
        form, login, user = posted
        return await handler(request, _language(request, user), form, login, user)

    route.__name__, route.__doc__ = handler.__name__, handler.__doc__
    return route


async def _signed_in_form(
    request: Request, language: str
) -> tuple[Params, LoginSession, User] | Response:
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    current = await current_login(request)
    if current is None:
        return _sign_in_page(
            request,
            language,
            error=translate(language, N_("Your session ended. Sign in again.")),
            status=401,
        )
    return form, current[0], current[1]


def _signed_out(request: Request, response: Response) -> Response:
    settings = runtime_of(request).settings
    response.delete_cookie(
        session_cookie(settings),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


@router.post("/account/profile", openapi_extra=api_docs.form("csrf_token", "name"))
@signed_in
async def profile(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    try:
        await ACCOUNT.of(request).rename(user, form.get("name", ""), client_ip(request))
    except InvalidAccount:
        message = translate(language, N_("Enter a name of at most 200 characters."))
        return await _page(request, language, user, login, errors={"name": message}, status=400)
    return _back("name")


@router.post(
    "/account/password",
    openapi_extra=api_docs.form("csrf_token", "current_password", "password", "password_again"),
)
@signed_in
async def password(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    new = form.get("password", "")
    error: str | None = None
    status = 400
    try:
        if new != form.get("password_again", ""):
            error = translate(language, NO_MATCH)
        else:
            await ACCOUNT.of(request).change_password(
                user, form.get("current_password", ""), new, client_ip(request), language
            )
    except (WrongPassword, LoginThrottled) as exc:
        error, status = _refusal(exc, language)
    except PasswordRefused as exc:
        error = translate(language, exc.problem.message, **exc.problem.params)
    if error is not None:
        return await _page(
            request, language, user, login, errors={"password": error}, status=status
        )
    return _signed_out(request, _back("password"))


@router.post("/account/language", openapi_extra=api_docs.form("csrf_token", "language"))
@signed_in
async def language_choice(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    """The language of 1pass's pages and mails for this person ("" for the browser's);
    an application's ``ui_locales`` still comes first on its sign-in pages."""
    choice = form.get("language", "")
    if choice and choice not in i18n.LANGUAGES:
        message = translate(language, N_("Choose one of the languages listed."))
        return await _page(request, language, user, login, errors={"language": message}, status=400)
    await ACCOUNT.of(request).set_language(user, choice)
    return _back("language")


@router.post("/account/sessions/sign-out-others", openapi_extra=api_docs.form("csrf_token"))
@signed_in
async def sign_out_others(
    request: Request, language: str, _: Params, login: LoginSession, user: User
) -> Response:
    await ACCOUNT.of(request).sign_out_others(user, login)
    return _back("others")


@router.post("/account/sign-out", openapi_extra=api_docs.form("csrf_token"))
@signed_in
async def sign_out(
    request: Request, language: str, _: Params, login: LoginSession, _user: User
) -> Response:
    runtime = runtime_of(request)
    async with runtime.database.session() as session:
        await backchannel.logout_session(
            session,
            runtime.clock,
            login,
            enforce=runtime.settings.enforce_canonical_resolution,
            reason=backchannel.SIGNED_OUT,
        )
        await accounts.revoke_login_session(session, runtime.clock, login.id)
    return _signed_out(request, _back("signed-out"))


@router.post("/account/applications/remove", openapi_extra=api_docs.form("csrf_token", "client_id"))
@signed_in
async def remove_application(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    client_id = form.get("client_id", "")
    try:
        if not client_id or len(client_id) > 64:
            raise ClientNotFound(client_id)
        await ACCOUNT.of(request).remove_application(user, client_id, client_ip(request))
    except ClientNotFound:
        message = translate(language, N_("There is no such application."))
        return await _page(
            request, language, user, login, errors={"applications": message}, status=400
        )
    return _back("application")


@router.post("/account/delete", openapi_extra=api_docs.form("csrf_token", "password", "confirm"))
@signed_in
async def delete(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    errors: dict[str, Any] = {}
    status = 400
    if form.get("confirm") != "delete":
        errors["delete"] = translate(
            language, N_("Tick the box to confirm that the account is to be deleted.")
        )
    else:
        try:
            await ACCOUNT.of(request).delete(user, form.get("password", ""), client_ip(request))
        except (WrongPassword, LoginThrottled) as exc:
            errors["delete"], status = _refusal(exc, language)
    if errors:
        return await _page(request, language, user, login, errors=errors, status=status)
    return _signed_out(request, render("account_deleted.html", {}, language=language))


# -- the second factor ---------------------------------------------------------------


def _codes_page(request: Request, language: str, codes: list[str]) -> Response:
    return csrf.form_page(request, "recovery_codes.html", {"codes": codes}, language=language)


@router.post("/account/totp/start", openapi_extra=api_docs.form("csrf_token", "password"))
@signed_in
async def totp_start(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    """A new authenticator secret to scan (nothing is stored yet), once the password is
    entered: a session alone adds no sign-in factor. An account that has an
    authenticator app removes it first."""
    if has_totp(user):
        message = translate(language, N_("Remove the authenticator app first."))
        return await _page(request, language, user, login, errors={"factor": message}, status=409)
    try:
        await ACCOUNT.of(request).confirm_password(
            user, form.get("password", ""), client_ip(request)
        )
    except (WrongPassword, LoginThrottled) as exc:
        error, status = _refusal(exc, language)
        return await _page(request, language, user, login, errors={"factor": error}, status=status)
    setup = ACCOUNT.of(request).start_totp(user)
    return csrf.form_page(
        request, "totp_setup.html", {"setup": setup, "error": None}, language=language
    )


@router.post("/account/totp/confirm", openapi_extra=api_docs.form("csrf_token", "sealed", "code"))
@signed_in
async def totp_confirm(
    request: Request, language: str, form: Params, _login: LoginSession, user: User
) -> Response:
    """Turn two-step verification on with the secret scanned, once a code from it is
    entered; show the recovery codes, once."""
    sealed = form.get("sealed", "")
    try:
        codes = await ACCOUNT.of(request).confirm_totp(
            user, sealed, form.get("code", "")[:64], client_ip(request), language
        )
    except WrongCode:
        setup = ACCOUNT.of(request).start_totp(user)
        message = translate(
            language, N_("That code is not right. Scan this new code and enter the code it shows.")
        )
        return csrf.form_page(
            request,
            "totp_setup.html",
            {"setup": setup, "error": message},
            400,
            language=language,
        )
    return _codes_page(request, language, codes)


@router.post("/account/totp/remove", openapi_extra=api_docs.form("csrf_token", "password"))
@signed_in
async def totp_remove(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    try:
        await ACCOUNT.of(request).remove_totp(
            user, form.get("password", ""), client_ip(request), language
        )
    except (WrongPassword, LoginThrottled, FactorNeeded) as exc:
        error, status = _refusal(exc, language)
        return await _page(request, language, user, login, errors={"factor": error}, status=status)
    return _back("factor-removed")


@router.post("/account/recovery-codes", openapi_extra=api_docs.form("csrf_token", "password"))
@signed_in
async def recovery_codes(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    """New recovery codes (the old ones stop working), shown once."""
    if not has_totp(user) and not (await ACCOUNT.of(request).overview(user)).passkeys:
        return _back("factor-removed")
    try:
        codes = await ACCOUNT.of(request).new_recovery_codes(
            user, form.get("password", ""), client_ip(request)
        )
    except (WrongPassword, LoginThrottled) as exc:
        error, status = _refusal(exc, language)
        return await _page(request, language, user, login, errors={"factor": error}, status=status)
    return _codes_page(request, language, codes)


@router.post(
    "/account/passkeys",
    openapi_extra=api_docs.form("csrf_token", "passkey_state", "credential", "name", "password"),
)
@signed_in
async def passkey_add(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    """Add the passkey the browser just created (the page's ceremony), once the password
    is entered (a session alone adds no sign-in factor); the recovery codes, shown
    once, when it is the first second factor."""
    try:
        await ACCOUNT.of(request).confirm_password(
            user, form.get("password", ""), client_ip(request)
        )
    except (WrongPassword, LoginThrottled) as exc:
        error, status = _refusal(exc, language)
        return await _page(request, language, user, login, errors={"passkey": error}, status=status)
    try:
        codes = await ACCOUNT.of(request).add_passkey(
            passkey_rp(request),
            user,
            form.get("passkey_state", ""),
            form.get("credential", ""),
            form.get("name", ""),
            client_ip(request),
            language,
        )
    except PasskeyRefused as exc:
        log.info("selfservice.passkey_refused", user_id=user.id, reason=exc.reason)
        message = translate(language, PASSKEY_NOT_ADDED)
        return await _page(request, language, user, login, errors={"passkey": message}, status=400)
    if codes:
        return _codes_page(request, language, codes)
    return _back("passkey-added")


@router.post(
    "/account/passkeys/remove", openapi_extra=api_docs.form("csrf_token", "passkey_id", "password")
)
@signed_in
async def passkey_remove(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    passkey_id = form.get("passkey_id", "")
    try:
        removed = (
            passkey_id.isascii()
            and passkey_id.isdigit()
            and await ACCOUNT.of(request).remove_passkey(
                user, int(passkey_id[:18]), form.get("password", ""), client_ip(request), language
            )
        )
    except (WrongPassword, LoginThrottled, FactorNeeded) as exc:
        error, status = _refusal(exc, language)
        return await _page(request, language, user, login, errors={"passkey": error}, status=status)
    if not removed:
        message = translate(language, N_("There is no such passkey."))
        return await _page(request, language, user, login, errors={"passkey": message}, status=400)
    return _back("passkey-removed")


# -- the email address ---------------------------------------------------------------

EMAIL_LINK_PROBLEMS = {
    LinkProblem.UNKNOWN: N_("This link is not valid. Copy the whole link from the mail."),
    LinkProblem.USED: N_(
        "This link was already used, or the account's address changed since it was sent."
    ),
    LinkProblem.EXPIRED: N_("This link has expired. Ask for a new one from your account page."),
}


@router.post("/account/email", openapi_extra=api_docs.form("csrf_token", "new_email", "password"))
@signed_in
async def email_change(
    request: Request, language: str, form: Params, login: LoginSession, user: User
) -> Response:
    """Mail a link to the new address (which replaces the old one once opened)."""
    try:
        await ACCOUNT.of(request).request_email_change(
            user,
            form.get("new_email", "")[:320],
            form.get("password", ""),
            client_ip(request),
            language,
        )
    except (WrongPassword, LoginThrottled) as exc:
        error, status = _refusal(exc, language)
    except EmailRefused as exc:
        error, status = translate(language, exc.message), 400
    else:
        return _back("email-sent")
    return await _page(request, language, user, login, errors={"email": error}, status=status)


@router.get("/account/email/confirm")
async def email_confirm_form(request: Request) -> Response:
    """The page the new address's link opens: one button makes it the address."""
    return await link_form(
        request,
        _language(request),
        ACCOUNT.of(request).check_email_link,
        EMAIL_LINK_PROBLEMS,
        "account_email_confirm.html",
    )


@router.post("/account/email/confirm", openapi_extra=api_docs.form("csrf_token", "token"))
async def email_confirm(request: Request) -> Response:
    language = _language(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    try:
        email = await ACCOUNT.of(request).confirm_email_change(
            form.get("token", ""), client_ip(request)
        )
    except LinkInvalid as exc:
        return problem_page(
            language, N_("This link does not work"), EMAIL_LINK_PROBLEMS[exc.problem], 400
        )
    except EmailRefused as exc:
        return problem_page(language, N_("This link does not work"), exc.message, 400)
    return render("account_email_done.html", {"email": email}, language=language)
