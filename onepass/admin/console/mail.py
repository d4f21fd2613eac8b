"""The console's mail page: the mail outbox by state (dead by default, pending, sent),
newest first, as ``onepass mail list`` shows it. Read-only: a dead mail is not sent
again (a link in it would have expired; the person asks again once mail works), and
no body is ever shown: a body holds a single-use link for someone else (encrypted
while the mail waits, erased once it is sent or dead; kept only of mail written to the
log in development, for ``onepass mail list``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from onepass.admin.console.web import (
    PAGE_SIZE,
    SignedIn,
    entry_id_of,
    gettext_of,
    guarded,
    language_of,
    render_page,
    router,
    when_text,
)
from onepass.mail import outbox
from onepass.mail.models import MailOutboxEntry
from onepass.mail.outbox import MailStatus
from onepass.services import runtime_of

MAIL_PATH = "/admin/mail"


def mail_row(entry: MailOutboxEntry, now: datetime) -> dict[str, Any]:
    """What the page shows of a mail: to whom, what kind, and how its delivery went;
    never its body."""
    return {
        "id": entry.id,
        "kind": entry.kind,
        "to_address": entry.to_address,
        "user_path": f"/admin/users/{entry.user_id}" if entry.user_id is not None else None,
        "language": entry.language,
        "attempts": entry.attempts,
        "last_status_code": entry.last_status_code,
        "last_error": entry.last_error or "",
        "created": when_text(entry.created_at, now),
        "next_attempt": when_text(entry.due_at, now),
        "dead": when_text(entry.dead_at, now),
        "sent": when_text(entry.sent_at, now),
        "sent_via": entry.sent_via or "",
    }


@router.get("/mail")
@guarded
async def mail(request: Request, console: SignedIn) -> Response:
    language = language_of(request)
    _ = gettext_of(language)
    params = request.query_params
    status_text = params.get("status") or MailStatus.DEAD.value
    cursor_text = params.get("cursor") or ""
    context: dict[str, Any] = {"nav": "mail", "status": status_text, "rows": []}
    problem: str | None = None
    if status_text not in outbox.STATUSES:
        context["status"] = MailStatus.DEAD.value
        problem = _("Unknown state %(state)s: choose dead, pending or sent.") % {
            "state": repr(status_text[:40])
        }
    elif cursor_text and entry_id_of(cursor_text) is None:
        problem = _("The page cursor is not a number; start from the first page.")
    if problem is not None:
        context["error"] = problem
        return render_page(
            request, "admin/mail.html", context, 400, console=console, language=language
        )
    status = MailStatus(status_text)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        entries, next_before = await outbox.page_of_entries(
            session, status=status, before_id=entry_id_of(cursor_text), limit=PAGE_SIZE
        )
    filters = {"status": status.value}
    next_url = None
    if next_before is not None:
        next_url = f"{MAIL_PATH}?" + urlencode(filters | {"cursor": str(next_before)})
    context.update(
        rows=[mail_row(e, now) for e in entries],
        next_url=next_url,
        first_url=f"{MAIL_PATH}?" + urlencode(filters) if cursor_text else None,
    )
    return render_page(request, "admin/mail.html", context, console=console, language=language)
