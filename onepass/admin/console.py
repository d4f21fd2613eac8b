"""``/admin``: the admin console, server-rendered pages without JavaScript.

The playbook's "single retry: the admin UI is recommended — step-up authentication
required". An administrator signs in with email, password and a TOTP code
(``console_service``); the pages read the webhook outbox and the audit log; every
change asks for a fresh TOTP code, which becomes at once a step-up nonce
(``service.step_up``) that the action spends (``service.spend_nonce``) before it runs
(``procedures``), exactly as through the admin API. Refusals are audited.

Every page has the login pages' headers (no frames, no caching); every POST carries
the CSRF form token; the console cookie is HttpOnly, SameSite=Strict, Path=/admin.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlencode

import orjson
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from onepass.accounts import csrf as csrf_mod
from onepass.accounts.throttle import LoginThrottled
from onepass.admin import audit, console_service, procedures, service
from onepass.admin.audit import Actor
from onepass.admin.console_service import ConsoleLoginRefused, ConsoleSession
from onepass.admin.errors import AdminError, refusal
from onepass.oauth.authorize import single_values
from onepass.oauth.clients import ClientNotFound, find_client
from onepass.oauth.forms import is_form_content_type
from onepass.pages import PAGE_HEADERS, render
from onepass.runtime import Runtime
from onepass.web import BodyTooLarge, read_body
from onepass.webhooks import outbox
from onepass.webhooks.errors import EntryNotFound
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry

log = structlog.get_logger("onepass.admin.console")

router = APIRouter(prefix="/admin", tags=["admin console"], include_in_schema=False)

COOKIE = "onepass_admin"
COOKIE_PATH = "/admin"
MAX_FORM = 8 * 1024
PAGE_SIZE = 50
EXPIRED_FORM = (
    "This form has expired or your browser's security token did not match. "
    "Reload the page and try again."
)
NOTHING_CHANGED = "Nothing was changed."

Handler = Callable[..., Awaitable[Response]]


# -- plumbing -------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _csrf_cookie(request: Request) -> tuple[str, bool]:
    value = request.cookies.get(csrf_mod.COOKIE)
    if value and len(value) <= 128:
        return value, False
    return csrf_mod.CSRF.new_cookie_value(), True


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    console: ConsoleSession | None = None,
) -> Response:
    """A console page with the CSRF form token (and its cookie if the browser has none)."""
    cookie, is_new = _csrf_cookie(request)
    context = {
        "csrf_token": request.app.state.csrf.token_for(cookie),
        "admin_email": console.user.email if console is not None else None,
        **context,
    }
    response = render(template, context, status)
    if is_new:
        # The same cookie, with the same attributes, as the login pages' forms.
        response.set_cookie(
            csrf_mod.COOKIE,
            cookie,
            httponly=True,
            secure=_runtime(request).settings.secure_cookies,
            samesite="lax",
            path="/",
        )
    return response


def _problem(
    request: Request,
    title: str,
    message: str,
    status: int,
    console: ConsoleSession | None = None,
) -> Response:
    return _page(
        request, "admin/problem.html", {"title": title, "error": message}, status, console=console
    )


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=dict(PAGE_HEADERS))


def _guarded(handler: Handler) -> Handler:
    """A page instead of a 500 when the database does not answer."""

    @functools.wraps(handler)
    async def run(request: Request, **kwargs: Any) -> Response:
        try:
            return await handler(request, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
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

    return run


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's single values, or None when it is not a form (or too big)."""
    if not is_form_content_type(request.headers.get("content-type")):
        return None
    try:
        body = await read_body(request, MAX_FORM)
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (BodyTooLarge, UnicodeDecodeError, ValueError):
        return None
    form = single_values(pairs)
    return None if "__repeated__" in form else form


def _csrf_ok(request: Request, form: dict[str, str]) -> bool:
    return bool(
        request.app.state.csrf.valid(request.cookies.get(csrf_mod.COOKIE), form.get("csrf_token"))
    )


async def _console(request: Request) -> ConsoleSession | None:
    runtime = _runtime(request)
    async with runtime.database.session(readonly=True) as session:
        return await console_service.current(
            session, runtime.hasher, runtime.clock, request.cookies.get(COOKIE)
        )


def _to_login(request: Request) -> Response:
    here = request.url.path
    if request.method == "GET" and request.url.query:
        here += "?" + request.url.query
    return _redirect("/admin/login?" + urlencode({"next": _safe_next(here)}))


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path, never another site."""
    if not value or len(value) > 500:
        return "/admin"
    if not (value == "/admin" or value.startswith(("/admin/", "/admin?"))):
        return "/admin"
    if "//" in value or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/admin"
    return value


def _printable(value: str) -> bool:
    """No control characters (PostgreSQL refuses NUL in text: not a database outage)."""
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _actor(request: Request, console: ConsoleSession) -> Actor:
    return Actor(f"admin:{console.user.email}", "console", console.user.id, _ip(request))


def _sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


async def _approve(
    request: Request, console: ConsoleSession, action: str, target: str, code: str
) -> tuple[str, None] | tuple[None, AdminError]:
    """Step-up for ``action`` on ``target`` with a TOTP code, and the nonce spent at once.

    Returns the canonical target, or the refusal (audited). The code's step is used up
    either way once it matched; a wrong code changes nothing but the failure count.
    """
    runtime = _runtime(request)
    settings = runtime.settings
    actor = _actor(request, console)
    canonical: str | None = None
    try:
        async with runtime.database.session() as session:
            canonical = await procedures.canonical_target(session, action, target)
            nonce, _ = await service.step_up(
                session,
                runtime.hasher,
                runtime.box,
                runtime.clock,
                runtime.cache,
                console.user.id,
                token_id=None,  # the console holds no admin token
                code=code,
                action=action,
                target=canonical,
                ttl=timedelta(seconds=settings.admin_step_up_ttl),
                max_failures=settings.admin_totp_max_failures,
                failure_window=settings.login_failure_window,
            )
            audit.add(session, runtime.clock, actor, f"step_up:{action}", canonical)
            await service.spend_nonce(
                session,
                runtime.hasher,
                runtime.clock,
                console.user,
                nonce,
                action=action,
                target=canonical,
                token_id=None,
            )
    except ValueError as exc:
        error = refusal(exc)
        await audit.record_refusal(
            runtime.database,
            runtime.clock,
            actor,
            f"step_up:{action}",
            canonical or target[:300],
            error,
        )
        return None, error
    return canonical, None


def _code(form: dict[str, str]) -> str:
    return form.get("totp_code", "").strip().replace(" ", "")[:16]


# -- formatting -----------------------------------------------------------------------


def _ago(delta: timedelta) -> str:
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


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "—"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({_ago(now - value)})"


def _entry_row(
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
        "enqueued": _when(entry.enqueued_at, now),
        "ended": _when(ended, now) if ended is not None else "",
    }


def _attempt_row(attempt: WebhookDeliveryAttempt, now: datetime) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "started": _when(attempt.started_at, now),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "outcome": attempt.outcome,
        "error_class": attempt.error_class,
        "error": attempt.error,
        "signed_kids": " ".join(attempt.signed_kids or []),
        "dispatcher": attempt.dispatcher,
        "response_body": attempt.response_body,
    }


def _entry_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


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
    return _page(
        request,
        "admin/login.html",
        {"next": next_url, "email": email, "error": error, "notice": notice},
        status,
    )


@router.get("/login")
@_guarded
async def login_form(request: Request) -> Response:
    next_url = _safe_next(request.query_params.get("next"))
    if await _console(request) is not None:
        return _redirect(next_url)
    signed_out = request.query_params.get("signed_out") == "1"
    return _login_page(
        request, next_url=next_url, notice="You are signed out." if signed_out else None
    )


@router.post("/login")
@_guarded
async def login(request: Request) -> Response:
    state = request.app.state
    runtime = _runtime(request)
    form = await _form(request)
    if form is None:
        return _login_page(
            request, error="The sign-in form was not sent as a form. Reload the page.", status=400
        )
    next_url = _safe_next(form.get("next"))
    if not _csrf_ok(request, form):
        return _login_page(request, next_url=next_url, error=EXPIRED_FORM, status=403)
    email = form.get("email", "").strip()[:320]
    password = form.get("password", "")
    code = _code(form)
    if not email or not password or not code:
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error="Enter your email, your password and the 6-digit code from your authenticator app.",
            status=400,
        )
    if not _printable(email):
        return _login_page(
            request, next_url=next_url, error=console_service.GENERIC_REFUSAL, status=401
        )
    ip = _ip(request)
    try:
        await state.throttle.check(email, ip)
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
    try:
        async with runtime.database.session() as session:
            new, user = await console_service.log_in(
                session,
                state.passwords,
                runtime.box,
                runtime.hasher,
                runtime.clock,
                email=email,
                password=password,
                code=code,
                ttl=runtime.settings.admin_console_session_ttl,
                ip_address=ip,
                user_agent=request.headers.get("user-agent"),
            )
            actor = Actor(f"admin:{user.email}", "console", user.id, ip)
            audit.add(session, runtime.clock, actor, "console.login", user.email)
    except ConsoleLoginRefused as exc:
        if exc.counts:
            await state.throttle.failed(email, ip)
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
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            error=exc.message,
            status=401 if exc.counts else 403,
        )
    await state.throttle.succeeded(email)
    response = _redirect(next_url)
    response.set_cookie(
        COOKIE,
        new.token,
        max_age=runtime.settings.admin_console_session_ttl,
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="strict",
        path=COOKIE_PATH,
    )
    return response


@router.post("/logout")
@_guarded
async def logout(request: Request) -> Response:
    runtime = _runtime(request)
    console = await _console(request)
    if console is None:
        response = _redirect("/admin/login?signed_out=1")
    else:
        form = await _form(request)
        if form is None or not _csrf_ok(request, form):
            return _problem(request, "Sign-out refused", EXPIRED_FORM, 403, console)
        async with runtime.database.session() as session:
            await console_service.log_out(session, runtime.clock, console)
            audit.add(
                session,
                runtime.clock,
                _actor(request, console),
                "console.logout",
                console.user.email,
            )
        response = _redirect("/admin/login?signed_out=1")
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


# -- overview -------------------------------------------------------------------------


@router.get("")
@_guarded
async def overview(request: Request) -> Response:
    console = await _console(request)
    if console is None:
        return _to_login(request)
    runtime = _runtime(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        dead = await console_service.dead_by_application(session)
        backlog = await console_service.backlog(session, now)
    return _page(
        request,
        "admin/overview.html",
        {
            "nav": "overview",
            "dead": dead,
            "dead_total": sum(d.dead_count for d in dead),
            "backlog": backlog,
            "oldest_due": _when(backlog.oldest_due_at, now) if backlog.oldest_due_at else None,
            "oldest_due_age": _ago(now - backlog.oldest_due_at).removesuffix(" ago")
            if backlog.oldest_due_at
            else None,
            "now": _when(now, now).split(" (")[0],
        },
        console=console,
    )


# -- webhook outbox -------------------------------------------------------------------


@router.get("/webhooks")
@_guarded
async def webhooks(request: Request) -> Response:
    console = await _console(request)
    if console is None:
        return _to_login(request)
    runtime = _runtime(request)
    params = request.query_params
    status = params.get("status") or None
    app_ref = (params.get("app") or "").strip()[:200] or None
    order = params.get("order") or "newest"
    cursor_text = params.get("cursor") or ""
    filters = {"status": status or "", "app": app_ref or "", "order": order}
    problem: str | None = None
    if app_ref is not None and not _printable(app_ref):
        problem = "The application must be a client_id or an id."
    elif status is not None and status not in outbox.STATUSES:
        problem = f"Unknown status {status[:40]!r}: choose dead, pending or delivered."
    elif order not in ("newest", "oldest"):
        problem = "Order is newest or oldest."
    elif cursor_text and _entry_id(cursor_text) is None:
        problem = "The page cursor is not a number; start from the first page."
    if problem is not None:
        return _page(
            request,
            "admin/webhooks.html",
            {"nav": "webhooks", "filters": filters, "rows": [], "error": problem},
            400,
            console=console,
        )
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        app_id = None
        if app_ref is not None:
            try:
                app_id = (await find_client(session, app_ref)).id
            except ClientNotFound:
                return _page(
                    request,
                    "admin/webhooks.html",
                    {
                        "nav": "webhooks",
                        "filters": filters,
                        "rows": [],
                        "error": f"No application with client_id or id {app_ref[:80]!r}.",
                    },
                    404,
                    console=console,
                )
        entries, next_cursor = await console_service.page_of_entries(
            session,
            status=status,
            app_id=app_id,
            newest_first=order == "newest",
            cursor=_entry_id(cursor_text),
            limit=PAGE_SIZE,
        )
        apps = await console_service.applications(
            session, {e.oauth_application_id for e in entries}
        )
    client_ids = {app_id: a.client_id for app_id, a in apps.items()}
    next_url = None
    if next_cursor is not None:
        query = {k: v for k, v in filters.items() if v} | {"cursor": str(next_cursor)}
        next_url = "/admin/webhooks?" + urlencode(query)
    first_url = "/admin/webhooks?" + urlencode({k: v for k, v in filters.items() if v})
    return _page(
        request,
        "admin/webhooks.html",
        {
            "nav": "dead" if status == "dead" else "webhooks",
            "filters": filters,
            "rows": [_entry_row(e, client_ids, now) for e in entries],
            "next_url": next_url,
            "first_url": first_url if cursor_text else None,
        },
        console=console,
    )


async def _entry_page(
    request: Request,
    console: ConsoleSession,
    entry_id: int,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime = _runtime(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        try:
            entry = await outbox.get_entry(session, entry_id)
        except EntryNotFound:
            return _problem(
                request,
                "No such webhook",
                f"There is no webhook outbox entry {entry_id}.",
                404,
                console,
            )
        attempts = await outbox.list_attempts(session, entry_id)
        apps = await console_service.applications(session, {entry.oauth_application_id})
        app = apps.get(entry.oauth_application_id)
        dead_of_app = len(
            await outbox.replay_dead(
                session, runtime.clock, entry.oauth_application_id, dry_run=True
            )
        )
    state = console_service.status_of(entry)
    lease = None
    if entry.lease_expires_at is not None and entry.lease_expires_at > now:
        lease = f"{entry.leased_by} until {_when(entry.lease_expires_at, now)}"
    response = _page(
        request,
        "admin/entry.html",
        {
            "nav": "dead" if state == "dead" else "webhooks",
            "entry": entry,
            "status": state,
            "app": app,
            "client_id": app.client_id if app is not None else str(entry.oauth_application_id),
            "times": {
                "created": _when(entry.created_at, now),
                "enqueued": _when(entry.enqueued_at, now),
                "due": _when(entry.due_at, now),
                "next_retry": _when(entry.next_retry_at, now),
                "delivered": _when(entry.delivered_at, now),
                "dead": _when(entry.dlq_at, now),
            },
            "lease": lease,
            "payload": orjson.dumps(
                entry.payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            ).decode(),
            "attempts": [_attempt_row(a, now) for a in attempts],
            "dead_of_app": dead_of_app,
            "error": error,
            "notice": notice,
        },
        status,
        console=console,
    )
    response.headers.update(headers or {})
    return response


@router.get("/webhooks/{entry_id}")
@_guarded
async def webhook_entry(request: Request, entry_id: str) -> Response:
    console = await _console(request)
    if console is None:
        return _to_login(request)
    found = _entry_id(entry_id)
    if found is None:
        return _problem(
            request, "No such webhook", "A webhook outbox entry id is a number.", 404, console
        )
    notice = None
    if request.query_params.get("retried") == "1":
        notice = f"Entry {found} is queued for delivery again (attempts reset to 0)."
    return await _entry_page(request, console, found, notice=notice)


@router.post("/webhooks/{entry_id}/retry")
@_guarded
async def retry(request: Request, entry_id: str) -> Response:
    console = await _console(request)
    if console is None:
        return _to_login(request)
    found = _entry_id(entry_id)
    if found is None:
        return _problem(
            request, "No such webhook", "A webhook outbox entry id is a number.", 404, console
        )
    form = await _form(request)
    async with _runtime(request).database.session(readonly=True) as session:
        try:
            await outbox.get_entry(session, found)  # before a code is used up on nothing
        except EntryNotFound:
            return _problem(
                request,
                "No such webhook",
                f"There is no webhook outbox entry {found}.",
                404,
                console,
            )
    done = await _act(
        request,
        console,
        form,
        procedures.RETRY,
        str(found),
        verb="retry",
        show=functools.partial(_entry_page, request, console, found),
        do=lambda runtime, actor, target: procedures.retry_entry(runtime, actor, int(target)),
    )
    if isinstance(done, Response):
        return done
    return _redirect(f"/admin/webhooks/{found}?retried=1")


async def _act(
    request: Request,
    console: ConsoleSession,
    form: dict[str, str] | None,
    action: str,
    target: str,
    *,
    verb: str,
    show: Callable[..., Awaitable[Response]],
    do: Callable[[Runtime, Actor, str], Awaitable[Any]],
) -> Any:
    """A change from a form: CSRF, a fresh TOTP code (step-up, the nonce spent at once),
    then ``do(runtime, actor, canonical target)``. Its result, or the page ``show``
    renders with the error (nothing changed)."""
    if form is None or not _csrf_ok(request, form):
        return await show(error=EXPIRED_FORM + " " + NOTHING_CHANGED, status=403)
    code = _code(form)
    if not code:
        return await show(
            error=f"Enter the current 6-digit code from your authenticator app to {verb}.",
            status=400,
        )
    canonical, refused = await _approve(request, console, action, target, code)
    if refused is not None:
        return await show(
            error=_sentence(refused.message) + " " + NOTHING_CHANGED,
            status=refused.status,
            headers=refused.headers,
        )
    runtime = _runtime(request)
    actor = _actor(request, console)
    try:
        return await do(runtime, actor, canonical)
    except ValueError as exc:
        error = refusal(exc)
        await audit.record_refusal(runtime.database, runtime.clock, actor, action, canonical, error)
        return await show(error=_sentence(error.message), status=error.status)


# -- replay an application's dead-letter queue ----------------------------------------


async def _replay_page(
    request: Request,
    console: ConsoleSession,
    app_ref: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime = _runtime(request)
    async with runtime.database.session(readonly=True) as session:
        try:
            if not _printable(app_ref):
                raise ClientNotFound("not a client_id")
            app = await find_client(session, app_ref[:200])
        except ClientNotFound:
            return _problem(
                request,
                "No such application",
                f"No application with client_id or id {app_ref[:80]!r}.",
                404,
                console,
            )
        ids = await outbox.replay_dead(session, runtime.clock, app.id, dry_run=True)
    response = _page(
        request,
        "admin/replay.html",
        {
            "nav": "dead",
            "app": app,
            "app_path": quote(app.client_id, safe=""),
            "count": len(ids),
            "sample": ids[:20],
            "error": error,
            "notice": notice,
        },
        status,
        console=console,
    )
    response.headers.update(headers or {})
    return response


@router.get("/applications/{app}/replay")
@_guarded
async def replay_form(request: Request, app: str) -> Response:
    """The dry run: how many dead entries a replay would send again, and the form."""
    console = await _console(request)
    if console is None:
        return _to_login(request)
    notice = None
    replayed = request.query_params.get("replayed", "")
    if replayed.isascii() and replayed.isdigit() and len(replayed) <= 9:
        notice = f"{int(replayed)} dead entries were queued for delivery again."
    return await _replay_page(request, console, app, notice=notice)


@router.post("/applications/{app}/replay")
@_guarded
async def replay(request: Request, app: str) -> Response:
    console = await _console(request)
    if console is None:
        return _to_login(request)
    form = await _form(request)
    async with _runtime(request).database.session(readonly=True) as session:
        try:
            if not _printable(app):
                raise ClientNotFound("not a client_id")
            await find_client(session, app[:200])  # before a code is used up on nothing
        except ClientNotFound:
            return await _replay_page(request, console, app)
    done = await _act(
        request,
        console,
        form,
        procedures.REPLAY_DLQ,
        app[:200],
        verb="replay",
        show=functools.partial(_replay_page, request, console, app),
        do=lambda runtime, actor, target: procedures.replay_dlq(runtime, actor, target),
    )
    if isinstance(done, Response):
        return done
    return _redirect(
        f"/admin/applications/{quote(done['client_id'], safe='')}/replay?replayed={done['replayed']}"
    )


# -- audit log ------------------------------------------------------------------------


@router.get("/audit")
@_guarded
async def audit_log(request: Request) -> Response:
    console = await _console(request)
    if console is None:
        return _to_login(request)
    runtime = _runtime(request)
    params = request.query_params
    before_text = params.get("before") or ""
    action = (params.get("action") or "").strip()[:100] or None
    before = _entry_id(before_text)
    if action is not None and not _printable(action):
        action = None
    if before_text and before is None:
        return _page(
            request,
            "admin/audit.html",
            {
                "nav": "audit",
                "rows": [],
                "action": action or "",
                "error": "The page cursor is not a number; start from the first page.",
            },
            400,
            console=console,
        )
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        found = await audit.entries(session, limit=PAGE_SIZE + 1, before_id=before, action=action)
    rows = [
        {
            "id": e.id,
            "at": _when(e.at, now),
            "actor": e.actor,
            "via": e.via,
            "action": e.action,
            "target": e.target,
            "outcome": e.outcome,
            "message": e.message,
            "ip_address": e.ip_address,
            "detail": orjson.dumps(e.detail, option=orjson.OPT_SORT_KEYS).decode()
            if e.detail
            else "",
        }
        for e in found[:PAGE_SIZE]
    ]
    next_url = None
    if len(found) > PAGE_SIZE:
        query = {"before": str(found[PAGE_SIZE - 1].id)} | ({"action": action} if action else {})
        next_url = "/admin/audit?" + urlencode(query)
    return _page(
        request,
        "admin/audit.html",
        {
            "nav": "audit",
            "rows": rows,
            "action": action or "",
            "next_url": next_url,
            "first_url": "/admin/audit" if before is not None else None,
        },
        console=console,
    )
