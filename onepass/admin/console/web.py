"""What every console page shares: the router, the console session and its cookie,
CSRF, rendering, the step-up of a change (``approve``), formatting."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from onepass import i18n, web
from onepass.accounts import csrf as csrf_mod
from onepass.accounts import passkeys
from onepass.admin import console_service
from onepass.admin.console_service import ConsoleSession
from onepass.admin.errors import AdminError, refusal
from onepass.cookies import cookie_name
from onepass.db.errors import CANDIDATES, is_unavailable
from onepass.operators.audit import Actor
from onepass.operators.service import PasskeyProof
from onepass.pages import PAGE_HEADERS, render
from onepass.playbook import actions
from onepass.refusals import Refusal
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.settings import Settings
from onepass.web import client_ip
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry

log = structlog.get_logger("onepass.admin.console")


class Answered(Exception):
    """A page that answers the request before its handler runs (raised by a dependency:
    the sign-in page for a browser without a console session)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class ConsoleRoute(APIRoute):
    """A console route: an ``Answered`` raised while solving its dependencies is its
    answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Answered as exc:
                return exc.response

        return answer


router = APIRouter(
    prefix="/admin", tags=["admin console"], include_in_schema=False, route_class=ConsoleRoute
)

COOKIE = "onepass_admin"
COOKIE_PATH = "/admin"


def admin_cookie(settings: Settings) -> str:
    """The console session's cookie name: ``__Secure-`` over https, not ``__Host-``,
    which would need Path=/ and send it with every end-user request (onepass.cookies)."""
    return cookie_name(settings, COOKIE, path=COOKIE_PATH)


PAGE_SIZE = 50
EXPIRED_FORM = i18n.N_(
    "This form has expired or your browser's security token did not match. "
    "Reload the page and try again."
)
NOTHING_CHANGED = i18n.N_("Nothing was changed.")
ENTER_CODE = i18n.N_(
    "Enter the current 6-digit code from your authenticator app to approve this change."
)

Handler = Callable[..., Awaitable[Response]]


# -- plumbing -------------------------------------------------------------------------


def render_page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    console: ConsoleSession | None = None,
    language: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A console page with the CSRF form token (and its cookie if the browser has none),
    in ``language`` (``language_of``) for the pages translated, English otherwise, with
    ``headers`` added. An administrator with passkeys gets the step-up ceremony on
    every form that asks for a code (``step_up_passkey``), and the script that runs it."""
    context = {"admin_email": console.user.email if console is not None else None, **context}
    ceremony = step_up_ceremony(request, console)
    if ceremony is not None:
        context["step_up_passkey"] = ceremony
    response = csrf_mod.form_page(
        request,
        template,
        context,
        status,
        language=language,
        scripts=("passkey.js",) if ceremony is not None or "passkey" in context else (),
    )
    response.headers.update(headers or {})
    return response


def passkey_rp(request: Request) -> passkeys.RelyingParty:
    settings = runtime_of(request).settings
    return passkeys.RelyingParty.of_issuer(settings.issuer, settings.brand_name)


def step_up_ceremony(request: Request, console: ConsoleSession | None) -> passkeys.Ceremony | None:
    """The challenge a console page offers for confirming a change with a passkey."""
    if console is None or not console.passkeys:
        return None
    rp = passkey_rp(request)
    if not rp.usable:
        return None
    runtime = runtime_of(request)
    return passkeys.authentication(
        rp,
        runtime.box,
        passkeys.Purpose.STEP_UP,
        runtime.clock.timestamp(),
        user_id=console.user.id,
        allowed=console.passkeys,
    )


def problem_page(
    request: Request,
    title: str,
    message: str,
    status: int,
    console: ConsoleSession | None = None,
    language: str | None = None,
) -> Response:
    return render_page(
        request,
        "admin/problem.html",
        {"title": title, "error": message},
        status,
        console=console,
        language=language,
    )


def language_of(request: Request) -> str:
    """The language of a translated console page, chosen as every page's is."""
    return i18n.page_language(accept_language=request.headers.get("accept-language"))


def gettext_of(language: str) -> Callable[[str], str]:
    """``_`` for sentences a console module writes in ``language``."""
    translations = i18n.translations(language)

    def gettext(message: str) -> str:
        return str(translations.gettext(message))

    return gettext


def redirect_to(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=dict(PAGE_HEADERS))


def guarded(handler: Handler) -> Handler:
    """A page instead of a 500 when the database does not answer."""

    @functools.wraps(handler)
    async def run(request: Request, **kwargs: Any) -> Response:
        try:
            return await handler(request, **kwargs)
        except CANDIDATES as exc:
            if not is_unavailable(exc):
                raise  # a bug: a 500, its traceback in the log
            return unavailable_page(request, exc)

    return run


def unavailable_page(request: Request, exc: BaseException) -> Response:
    log.error("admin.console_unavailable", error=type(exc).__name__, path=request.url.path)
    return render(
        "admin/problem.html",
        {
            "title": "Database unavailable",
            "error": "The database did not answer. Nothing was changed by this "
            "request; try again in a minute, and check `onepass triage`.",
        },
        503,
    )


async def read_form(request: Request) -> dict[str, str] | None:
    """The posted form's single values, or None when it is not a form or repeats a
    field (bounded and checked once: ``web.read_form``)."""
    form = await web.read_form(request, max_fields=20)
    return None if form is None or form.repeated else form


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    return csrf_mod.genuine(request, form)


async def current_console(request: Request) -> ConsoleSession | None:
    runtime = runtime_of(request)
    async with runtime.database.session(readonly=True) as session:
        return await console_service.current(
            session,
            runtime.hasher,
            runtime.clock,
            request.cookies.get(admin_cookie(runtime.settings)),
        )


async def console_session(request: Request) -> ConsoleSession:
    """A dependency: the signed-in administrator's console session; without one, the
    answer is the sign-in page (303, back here afterwards)."""
    try:
        console = await current_console(request)
    except CANDIDATES as exc:
        if not is_unavailable(exc):
            raise
        raise Answered(unavailable_page(request, exc)) from None
    if console is None:
        raise Answered(to_login(request))
    return console


# A page parameter: the console session, or the page is the sign-in's redirect.
SignedIn = Annotated[ConsoleSession, Depends(console_session)]


def to_login(request: Request) -> Response:
    here = request.url.path
    if request.method == "GET" and request.url.query:
        here += "?" + request.url.query
    return redirect_to("/admin/login?" + urlencode({"next": safe_next(here)}))


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if not value or len(value) > 500:
        return "/admin"
    if not (value == "/admin" or value.startswith(("/admin/", "/admin?"))):
        return "/admin"
    if "//" in value or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/admin"
    return value


def printable(value: str) -> bool:
    """No control characters (PostgreSQL refuses NUL in text: not a database outage)."""
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def actor_of(request: Request, console: ConsoleSession) -> Actor:
    return Actor(f"admin:{console.user.email}", "console", console.user.id, client_ip(request))


def sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


async def approve(
    request: Request,
    console: ConsoleSession,
    action: str,
    target: str,
    code: str,
    passkey: PasskeyProof | None = None,
) -> tuple[str, None] | tuple[None, AdminError]:
    """Step-up for ``action`` on ``target`` with a TOTP code (or a passkey's answer),
    and the nonce spent at once.

    Returns the canonical target, or the refusal (audited). The code's step is used up
    either way once it matched; a wrong code changes nothing but the failure count.
    """
    runtime = runtime_of(request)
    actor = actor_of(request, console)
    canonical: str | None = None
    try:
        async with runtime.database.session() as session:
            canonical = await actions.canonical_target(session, action, target)
            nonce, _ = await actions.grant_step_up(
                session,
                runtime,
                actor,
                console.user.id,
                token_id=None,  # the console holds no admin token
                action=action,
                target=canonical,
                code=code,
                passkey=passkey,
            )
            await actions.spend_nonce(
                session,
                runtime,
                console.user,
                nonce,
                action=action,
                target=canonical,
                token_id=None,
            )
    except Refusal as exc:
        error = refusal(exc)
        await actions.record_refusal(
            runtime,
            actor,
            f"step_up:{action}",
            canonical or target[:300],
            denied=error.denied,
            message=error.summary,
        )
        return None, error
    return canonical, None


def totp_code_of(form: dict[str, str]) -> str:
    return form.get("totp_code", "").strip().replace(" ", "")[:16]


def passkey_of(request: Request, form: dict[str, str]) -> PasskeyProof | None:
    """The step-up passkey's answer a form carries (the "Confirm with a passkey"
    button), if any."""
    credential = form.get("step_up_credential", "")
    if not credential:
        return None
    return PasskeyProof(
        passkey_rp(request), passkeys.Answer(form.get("step_up_state", ""), credential)
    )


async def act(
    request: Request,
    console: ConsoleSession,
    form: dict[str, str] | None,
    action: str,
    target: str,
    *,
    language: str,
    show: Callable[..., Awaitable[Response]],
    do: Callable[[Runtime, Actor, str], Awaitable[Any]],
) -> Any:
    """A change from a form of a translated page: CSRF, a fresh TOTP code (``approve``:
    the step-up, its nonce spent at once), then ``do(runtime, actor, canonical target)``
    — a playbook function, as the CLI and the admin API call it. Its result, or the
    page ``show(error=, status=, headers=)`` renders with the reason (nothing changed;
    the refusal audited)."""
    _ = gettext_of(language)
    if form is None or not csrf_ok(request, form):
        return await show(error=_(EXPIRED_FORM) + " " + _(NOTHING_CHANGED), status=403)
    code = totp_code_of(form)
    passkey = passkey_of(request, form)
    if not code and passkey is None:
        return await show(error=_(ENTER_CODE), status=400)
    canonical, refused = await approve(request, console, action, target, code, passkey)
    if refused is not None:
        return await show(
            error=sentence(refused.message) + " " + _(NOTHING_CHANGED),
            status=refused.status,
            headers=refused.headers,
        )
    assert canonical is not None  # approve() gives the target or the refusal
    runtime = runtime_of(request)
    actor = actor_of(request, console)
    try:
        return await do(runtime, actor, canonical)
    except Refusal as exc:
        error = refusal(exc)
        await actions.record_refusal(
            runtime, actor, action, canonical, denied=error.denied, message=error.summary
        )
        return await show(
            error=sentence(error.message) + " " + _(NOTHING_CHANGED), status=error.status
        )


# -- formatting -----------------------------------------------------------------------


def ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    s = abs(seconds)
    if s < 60:
        text = f"{s} s"
    elif s < 3600:
        text = f"{s // 60} min"
    elif s < 86400:
        text = f"{s // 3600} h {s % 3600 // 60} min"
    else:
        text = f"{s // 86400} d {s % 86400 // 3600} h"
    return f"in {text}" if seconds < 0 else f"{text} ago"


def when_text(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "—"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({ago(now - value)})"


def entry_row(
    entry: WebhookOutboxEntry, client_ids: dict[int, str], now: datetime
) -> dict[str, Any]:
    status = console_service.status_of(entry)
    ended = entry.dlq_at if status == "dead" else entry.delivered_at
    error = entry.last_error or ""
    return {
        "id": entry.id,
        "client_id": client_ids.get(entry.oauth_application_id, str(entry.oauth_application_id)),
        "event_type": entry.event_type,
        "status": status,
        "attempts": entry.attempts,
        "last_status_code": entry.last_status_code,
        "last_error": error if len(error) <= 120 else error[:117] + "…",
        "enqueued": when_text(entry.enqueued_at, now),
        "ended": when_text(ended, now) if ended is not None else "",
    }


def attempt_row(attempt: WebhookDeliveryAttempt, now: datetime) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "started": when_text(attempt.started_at, now),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "outcome": attempt.outcome,
        "error_class": attempt.error_class,
        "error": attempt.error,
        "signed_kids": " ".join(attempt.signed_kids or []),
        "dispatcher": attempt.dispatcher,
        "response_body": attempt.response_body,
    }


def entry_id_of(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def done_notice(request: Request, language: str, notices: Mapping[str, str]) -> str | None:
    """The notice a page shows after a change redirected to it with ``?done=KEY``
    (``notices`` maps keys to sentences), in ``language``; None without one."""
    done = notices.get(request.query_params.get("done", ""))
    return gettext_of(language)(done) if done else None
