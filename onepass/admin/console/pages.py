"""The console's pages: overview (webhooks and mail), the webhook outbox, an entry with
its attempts, the replay of an application's dead letters, the audit log; retry and
replay with a step-up."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import structlog
from fastapi import Request
from fastapi.responses import Response

from onepass.admin import console_service
from onepass.admin.console.web import (
    EXPIRED_FORM,
    NOTHING_CHANGED,
    PAGE_SIZE,
    SignedIn,
    actor_of,
    ago,
    approve,
    attempt_row,
    csrf_ok,
    entry_id_of,
    entry_row,
    guarded,
    passkey_of,
    printable,
    problem_page,
    read_form,
    redirect_to,
    render_page,
    router,
    sentence,
    totp_code_of,
    when_text,
)
from onepass.admin.console_service import ConsoleSession
from onepass.admin.errors import refusal
from onepass.clients.registry import ClientNotFound, find_client
from onepass.mail import outbox as mail_outbox
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook import actions
from onepass.playbook import webhooks as webhooks_playbook
from onepass.refusals import Refusal
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.webhooks import outbox
from onepass.webhooks.errors import EntryNotFound

log = structlog.get_logger("onepass.admin.console")


# -- overview -------------------------------------------------------------------------


@router.get("")
@guarded
async def overview(request: Request, console: SignedIn) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        dead = await console_service.dead_by_application(session)
        backlog = await console_service.backlog(session, now)
        mail = await mail_outbox.counts(session, now)
    return render_page(
        request,
        "admin/overview.html",
        {
            "nav": "overview",
            "dead": dead,
            "dead_total": sum(d.dead_count for d in dead),
            "backlog": backlog,
            "mail": mail,
            "oldest_due": when_text(backlog.oldest_due_at, now) if backlog.oldest_due_at else None,
            "oldest_due_age": ago(now - backlog.oldest_due_at).removesuffix(" ago")
            if backlog.oldest_due_at
            else None,
            "now": when_text(now, now).split(" (")[0],
        },
        console=console,
    )


# -- webhook outbox -------------------------------------------------------------------


@router.get("/webhooks")
@guarded
async def webhooks(request: Request, console: SignedIn) -> Response:
    runtime = runtime_of(request)
    params = request.query_params
    status = params.get("status") or None
    app_ref = (params.get("app") or "").strip()[:200] or None
    order = params.get("order") or "newest"
    cursor_text = params.get("cursor") or ""
    filters = {"status": status or "", "app": app_ref or "", "order": order}
    problem: str | None = None
    if app_ref is not None and not printable(app_ref):
        problem = "The application must be a client_id or an id."
    elif status is not None and status not in outbox.STATUSES:
        problem = f"Unknown status {status[:40]!r}: choose dead, pending or delivered."
    elif order not in ("newest", "oldest"):
        problem = "Order is newest or oldest."
    elif cursor_text and entry_id_of(cursor_text) is None:
        problem = "The page cursor is not a number; start from the first page."
    if problem is not None:
        return render_page(
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
                return render_page(
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
            cursor=entry_id_of(cursor_text),
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
    return render_page(
        request,
        "admin/webhooks.html",
        {
            "nav": "dead" if status == "dead" else "webhooks",
            "filters": filters,
            "rows": [entry_row(e, client_ids, now) for e in entries],
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
    retried: bool = False,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        try:
            entry = await outbox.get_entry(session, entry_id)
        except EntryNotFound:
            return problem_page(
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
    refresh = None
    if retried:
        notice, refresh = _after_retry(entry_id, state)
    lease = None
    if entry.lease_expires_at is not None and entry.lease_expires_at > now:
        lease = f"{entry.leased_by} until {when_text(entry.lease_expires_at, now)}"
    return render_page(
        request,
        "admin/entry.html",
        {
            "nav": "dead" if state == "dead" else "webhooks",
            "entry": entry,
            "status": state,
            "app": app,
            "client_id": app.client_id if app is not None else str(entry.oauth_application_id),
            "times": {
                "created": when_text(entry.created_at, now),
                "enqueued": when_text(entry.enqueued_at, now),
                "due": when_text(entry.due_at, now),
                "next_retry": when_text(entry.next_retry_at, now),
                "delivered": when_text(entry.delivered_at, now),
                "dead": when_text(entry.dlq_at, now),
            },
            "lease": lease,
            "payload": orjson.dumps(
                entry.payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            ).decode(),
            "attempts": [attempt_row(a, now) for a in attempts],
            "dead_of_app": dead_of_app,
            "error": error,
            "notice": notice,
            "refresh": refresh,
        },
        status,
        console=console,
        headers=headers,
    )


RETRY_REFRESH = 5  # seconds between reloads of an entry's page while its retry is pending


def _after_retry(entry_id: int, state: str) -> tuple[str, int | None]:
    """What the entry's page says after a retry, and whether it reloads itself: while
    the entry is pending, every few seconds, until it is delivered or dead again."""
    if state == "delivered":
        return f"Entry {entry_id} was delivered after the retry.", None
    if state == "dead":
        return (
            f"Entry {entry_id} failed again after the retry: the last delivery attempt "
            "below says why.",
            None,
        )
    return (
        f"Entry {entry_id} is queued for delivery again (attempts reset to 0). A webhook "
        "dispatcher sends it on its next pass, usually within seconds; this page reloads "
        f"every {RETRY_REFRESH} seconds until it is delivered or fails again.",
        RETRY_REFRESH,
    )


@router.get("/webhooks/{entry_id}")
@guarded
async def webhook_entry(request: Request, console: SignedIn, entry_id: str) -> Response:
    found = entry_id_of(entry_id)
    if found is None:
        return problem_page(
            request, "No such webhook", "A webhook outbox entry id is a number.", 404, console
        )
    retried = request.query_params.get("retried") == "1"
    return await _entry_page(request, console, found, retried=retried)


@router.post("/webhooks/{entry_id}/retry")
@guarded
async def retry(request: Request, console: SignedIn, entry_id: str) -> Response:
    found = entry_id_of(entry_id)
    if found is None:
        return problem_page(
            request, "No such webhook", "A webhook outbox entry id is a number.", 404, console
        )
    form = await read_form(request)
    async with runtime_of(request).database.session(readonly=True) as session:
        try:
            await outbox.get_entry(session, found)  # before a code is used up on nothing
        except EntryNotFound:
            return problem_page(
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
        actions.RETRY,
        str(found),
        verb="retry",
        show=functools.partial(_entry_page, request, console, found),
        do=lambda runtime, actor, target: webhooks_playbook.retry(runtime, actor, int(target)),
    )
    if isinstance(done, Response):
        return done
    return redirect_to(f"/admin/webhooks/{found}?retried=1")


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
    if form is None or not csrf_ok(request, form):
        return await show(error=EXPIRED_FORM + " " + NOTHING_CHANGED, status=403)
    code = totp_code_of(form)
    passkey = passkey_of(request, form)
    if not code and passkey is None:
        return await show(
            error=f"Enter the current 6-digit code from your authenticator app to {verb}.",
            status=400,
        )
    canonical, refused = await approve(request, console, action, target, code, passkey)
    if refused is not None:
        return await show(
            error=sentence(refused.message) + " " + NOTHING_CHANGED,
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
        return await show(error=sentence(error.message), status=error.status)


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
    retried: bool = False,
) -> Response:
    runtime = runtime_of(request)
    async with runtime.database.session(readonly=True) as session:
        try:
            if not printable(app_ref):
                raise ClientNotFound("not a client_id")
            app = await find_client(session, app_ref[:200])
        except ClientNotFound:
            return problem_page(
                request,
                "No such application",
                f"No application with client_id or id {app_ref[:80]!r}.",
                404,
                console,
            )
        ids = await outbox.replay_dead(session, runtime.clock, app.id, dry_run=True)
    return render_page(
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
        headers=headers,
    )


@router.get("/applications/{app}/replay")
@guarded
async def replay_form(request: Request, console: SignedIn, app: str) -> Response:
    """The dry run: how many dead entries a replay would send again, and the form."""
    notice = None
    replayed = request.query_params.get("replayed", "")
    if replayed.isascii() and replayed.isdigit() and len(replayed) <= 9:
        notice = f"{int(replayed)} dead entries were queued for delivery again."
    return await _replay_page(request, console, app, notice=notice)


@router.post("/applications/{app}/replay")
@guarded
async def replay(request: Request, console: SignedIn, app: str) -> Response:
    form = await read_form(request)
    async with runtime_of(request).database.session(readonly=True) as session:
        try:
            if not printable(app):
                raise ClientNotFound("not a client_id")
            await find_client(session, app[:200])  # before a code is used up on nothing
        except ClientNotFound:
            return await _replay_page(request, console, app)
    done = await _act(
        request,
        console,
        form,
        actions.REPLAY_DLQ,
        app[:200],
        verb="replay",
        show=functools.partial(_replay_page, request, console, app),
        do=lambda runtime, actor, target: webhooks_playbook.replay_dlq(runtime, actor, target),
    )
    if isinstance(done, Response):
        return done
    return redirect_to(
        f"/admin/applications/{quote(done['client_id'], safe='')}/replay?replayed={done['replayed']}"
    )


# -- audit log ------------------------------------------------------------------------


@router.get("/audit")
@guarded
async def audit_log(request: Request, console: SignedIn) -> Response:
    runtime = runtime_of(request)
    params = request.query_params
    before_text = params.get("before") or ""
    action = (params.get("action") or "").strip()[:100] or None
    before = entry_id_of(before_text)
    if action is not None and not printable(action):
        action = None
    if before_text and before is None:
        return render_page(
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
            "at": when_text(e.at, now),
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
    return render_page(
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
