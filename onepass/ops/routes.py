from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from onepass.ops.health import run_checks

router = APIRouter(tags=["ops"])


@router.get("/up")
async def up(request: Request) -> JSONResponse:
    """200 when the database answers, every needed signing key is active, and this
    process holds those keys, fresh; else 503 naming the failing check."""
    runtime = request.app.state.runtime
    required = {"RS256", runtime.settings.access_token_alg}
    checks = await run_checks(runtime.database, request.app.state.keyring, required)
    healthy = all(check.ok for check in checks)
    return JSONResponse(
        {
            "status": "ok" if healthy else "fail",
            "checks": {check.name: check.detail for check in checks},
        },
        status_code=200 if healthy else 503,
        headers={"cache-control": "no-store"},
    )
