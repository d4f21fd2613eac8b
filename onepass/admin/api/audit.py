"""``/api/v1/admin/audit_log``: the audit log."""

from __future__ import annotations

from fastapi import Query, Response

from onepass.admin.api.base import (
    MAX_ID,
    AuditReader,
    _json,
    router,
)
from onepass.operators import audit

# -- audit ----------------------------------------------------------------------------


@router.get("/audit_log")
async def audit_log(
    who: AuditReader,
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None, ge=1, le=MAX_ID),
    action: str | None = Query(None, max_length=100),
) -> Response:
    """The audit log, newest first."""
    async with who.runtime.database.session(readonly=True) as session:
        entries = await audit.entries(session, limit=limit, before_id=before_id, action=action)
    rows = [audit.describe(e) for e in entries]
    return _json(
        {"entries": rows, "next_before_id": rows[-1]["id"] if len(rows) == limit else None}
    )
