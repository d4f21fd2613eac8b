"""Pages of the forgotten-password flow: ``/password/forgot`` (ask for a link) and
``/password/reset`` (the link: choose a new password); and of sign-up: ``/signup``
(open, or an invitation's) and ``/signup/confirm`` (the link that proves the address). Thin: the rules are in
``recovery``. In the browser's language (``i18n.page_language``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from onepass import api_docs, i18n
from onepass.accounts import csrf
from onepass.accounts.links import LinkInvalid, LinkKind, LinkProblem
from onepass.i18n import N_, translate
from onepass.pages import render
from onepass.selfservice.quotas import TooManyRequests
from onepass.selfservice.recovery import RECOVERY, PasswordRefused
from onepass.selfservice.signup import SIGNUP, SignupRefused
from onepass.services import runtime_of
from onepass.web import Params, client_ip, read_form

router = APIRouter(
    tags=["self-service"],
    default_response_class=HTMLResponse,
    responses=api_docs.pages(400, 403, 413, 429),
)

LINK_PROBLEMS = {
    LinkProblem.UNKNOWN: N_(
        "This link is not a valid password reset link. Copy the whole link from the "
        "mail, or ask for a new one."
    ),
    LinkProblem.USED: N_(
        "This link was already used, or the password was changed since it was sent. "
        "Ask for a new one if you still need it."
    ),
    LinkProblem.EXPIRED: N_("This link has expired. Ask for a new one."),
}
FORM_EXPIRED = N_(
    "Your browser's security token did not match (cookies blocked or the page is old). "
    "Reload the page and try again."
)
NOT_A_FORM = N_("The form was not sent as a form. Reload the page and try again.")
NO_MATCH = N_("The two passwords are not the same.")
TOO_MANY = N_("Too many requests from your network. Try again in %(minutes)d minutes.")


def _language(request: Request) -> str:
    return i18n.page_language(accept_language=request.headers.get("accept-language"))


def problem_page(language: str, title: str, message: str, status: int) -> Response:
    return render(
        "error.html",
        {"title": translate(language, title), "message": translate(language, message)},
        status,
        language=language,
    )


async def link_form(
    request: Request,
    language: str,
    check: Callable[[str], Awaitable[str]],
    problems: Mapping[LinkProblem, str],
    template: str,
) -> Response:
    """The page a mailed link opens: the address it is for, and one button that acts
    (a GET changes nothing, so a mail scanner that fetches the link changes nothing);
    or what is wrong with the link. ``check``: the link's address, or ``LinkInvalid``."""
    token = request.query_params.get("token", "")
    try:
        email = await check(token)
    except LinkInvalid as exc:
        return problem_page(language, N_("This link does not work"), problems[exc.problem], 400)
    return csrf.form_page(request, template, {"token": token, "email": email}, language=language)


async def genuine_form(request: Request, language: str) -> Params | Response:
    """The posted form, once it is a form and carries this browser's CSRF token; or the
    page that says what is wrong with it."""
    form = await read_form(request)
    if form is None:
        return problem_page(language, N_("Bad request"), NOT_A_FORM, 400)
    if not csrf.genuine(request, form):
        return problem_page(language, N_("This form has expired"), FORM_EXPIRED, 403)
    return form


@router.get("/password/forgot")
async def forgot_form(request: Request) -> Response:
    """The form asking for the address to send a reset link to."""
    return csrf.form_page(request, "password_forgot.html", {}, language=_language(request))


@router.post("/password/forgot", openapi_extra=api_docs.form("csrf_token", "email"))
async def forgot(request: Request) -> Response:
    """Mail a reset link if the address has an account; the same page either way."""
    language = _language(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    email = form.get("email", "").strip()
    if not email:
        return csrf.form_page(
            request,
            "password_forgot.html",
            {"error": translate(language, N_("Enter the email address you sign in with."))},
            400,
            language=language,
        )
    try:
        await RECOVERY.of(request).request_reset(email, client_ip(request), language)
    except TooManyRequests as exc:
        response = csrf.form_page(
            request,
            "password_forgot.html",
            {"error": translate(language, TOO_MANY, minutes=max(1, exc.retry_after // 60))},
            429,
            language=language,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    return render("password_forgot_sent.html", {"email": email[:320]}, language=language)


def _reset_form(
    request: Request,
    token: str,
    email: str,
    language: str,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return csrf.form_page(
        request,
        "password_reset.html",
        {"token": token, "email": email, "error": error},
        status,
        language=language,
    )


@router.get("/password/reset")
async def reset_form(request: Request) -> Response:
    """The page a reset link opens: choose a new password (the link is not used yet)."""
    language = _language(request)
    token = request.query_params.get("token", "")
    try:
        link = await RECOVERY.of(request).check_link(token)
    except LinkInvalid as exc:
        return problem_page(
            language, N_("This link does not work"), LINK_PROBLEMS[exc.problem], 400
        )
    return _reset_form(request, token, link.email, language)


@router.post(
    "/password/reset",
    openapi_extra=api_docs.form("csrf_token", "token", "password", "password_again"),
)
async def reset(request: Request) -> Response:
    """Set the new password: every session ends, every refresh token is revoked."""
    language = _language(request)
    recovery = RECOVERY.of(request)
    form = await read_form(request)
    if form is None:
        return problem_page(language, N_("Bad request"), NOT_A_FORM, 400)
    token = form.get("token", "")
    if not csrf.genuine(request, form):
        return problem_page(language, N_("This form has expired"), FORM_EXPIRED, 403)
    password = form.get("password", "")
    try:
        if password != form.get("password_again", ""):
            link = await recovery.check_link(token)
            return _reset_form(
                request, token, link.email, language, translate(language, NO_MATCH), 400
            )
        link = await recovery.complete_reset(token, password, language)
    except LinkInvalid as exc:
        return problem_page(
            language, N_("This link does not work"), LINK_PROBLEMS[exc.problem], 400
        )
    except PasswordRefused as exc:
        link = await recovery.check_link(token)
        message = translate(language, exc.problem.message, **exc.problem.params)
        return _reset_form(request, token, link.email, language, message, 400)
    return render("password_reset_done.html", {"email": link.email}, language=language)


# -- sign-up -------------------------------------------------------------------------

SIGNUP_CLOSED = N_(
    "Accounts here are created by the operators. Ask the team that runs this service for "
    "an invitation."
)
INVITE_PROBLEMS = {
    LinkProblem.UNKNOWN: N_(
        "This invitation link is not valid. Copy the whole link from the mail."
    ),
    LinkProblem.USED: N_("This invitation was already used. Sign in with the account it created."),
    LinkProblem.EXPIRED: N_("This invitation has expired. Ask for a new one."),
}
CONFIRM_PROBLEMS = {
    LinkProblem.UNKNOWN: N_(
        "This confirmation link is not valid. Copy the whole link from the mail."
    ),
    LinkProblem.USED: N_("This address is already confirmed. Sign in with the account."),
    LinkProblem.EXPIRED: N_("This confirmation link has expired. Sign up again."),
}


def _signup_form(
    request: Request,
    language: str,
    *,
    invite: str | None = None,
    email: str | None = None,
    name: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    domains = ", ".join(runtime_of(request).settings.signup_domains)
    return csrf.form_page(
        request,
        "signup.html",
        {"invite": invite, "email": email, "name": name, "error": error, "domains": domains},
        status,
        language=language,
    )


def _closed(language: str) -> Response:
    return problem_page(language, N_("Sign-up is closed"), SIGNUP_CLOSED, 403)


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    """The sign-up form: open sign-up, or an invitation's (``?invite=``)."""
    language = _language(request)
    invite = request.query_params.get("invite")
    if invite is not None:
        try:
            email = await SIGNUP.of(request).check(LinkKind.INVITE, invite)
        except LinkInvalid as exc:
            return problem_page(
                language, N_("This invitation does not work"), INVITE_PROBLEMS[exc.problem], 400
            )
        return _signup_form(request, language, invite=invite, email=email)
    if not SIGNUP.of(request).is_open:
        return _closed(language)
    return _signup_form(request, language)


@router.post(
    "/signup",
    openapi_extra=api_docs.form(
        "csrf_token", "invite", "email", "name", "password", "password_again"
    ),
)
async def signup(request: Request) -> Response:
    """Start an open sign-up (a mail to confirm the address), or accept an invitation."""
    language = _language(request)
    service = SIGNUP.of(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    invite = form.get("invite")
    email = form.get("email", "").strip()[:320]
    name = form.get("name", "")
    password = form.get("password", "")
    if invite is None and not service.is_open:
        return _closed(language)
    try:
        if invite is not None:
            email = await service.check(LinkKind.INVITE, invite)
        if password != form.get("password_again", ""):
            raise SignupRefused(NO_MATCH)
        if invite is not None:
            created = await service.accept_invite(invite, name, password)
            return render("signup_done.html", {"email": created.email}, language=language)
        await service.start(email, name, password, client_ip(request), language)
    except LinkInvalid as exc:
        return problem_page(
            language, N_("This invitation does not work"), INVITE_PROBLEMS[exc.problem], 400
        )
    except (SignupRefused, PasswordRefused) as exc:
        problem = exc.problem if isinstance(exc, PasswordRefused) else exc
        message = translate(language, problem.message, **problem.params)
        return _signup_form(
            request, language, invite=invite, email=email, name=name, error=message, status=400
        )
    except TooManyRequests as exc:
        response = _signup_form(
            request,
            language,
            email=email,
            name=name,
            error=translate(language, TOO_MANY, minutes=max(1, exc.retry_after // 60)),
            status=429,
        )
        response.headers["retry-after"] = str(exc.retry_after)
        return response
    return render("signup_sent.html", {"email": email}, language=language)


@router.get("/signup/confirm")
async def signup_confirm_form(request: Request) -> Response:
    """The page a sign-up's mail links to: one button creates the account."""
    signup = SIGNUP.of(request)
    return await link_form(
        request,
        _language(request),
        lambda token: signup.check(LinkKind.SIGNUP, token),
        CONFIRM_PROBLEMS,
        "signup_confirm.html",
    )


@router.post("/signup/confirm", openapi_extra=api_docs.form("csrf_token", "token"))
async def signup_confirm(request: Request) -> Response:
    """Create the account whose address the link proved."""
    language = _language(request)
    form = await genuine_form(request, language)
    if isinstance(form, Response):
        return form
    try:
        created = await SIGNUP.of(request).confirm(form.get("token", ""))
    except LinkInvalid as exc:
        return problem_page(
            language, N_("This link does not work"), CONFIRM_PROBLEMS[exc.problem], 400
        )
    except SignupRefused as exc:
        return problem_page(language, N_("This link does not work"), exc.message, 400)
    return render("signup_done.html", {"email": created.email}, language=language)
