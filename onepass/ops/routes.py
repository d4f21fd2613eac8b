"""Operations endpoints: ``/up`` (health), ``/status`` (public status page), ``/metrics``."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from onepass import i18n
from onepass.keys.keyring import KEYRING
from onepass.ops import metrics
from onepass.ops.health import run_checks, run_readiness
from onepass.ops.home import FAVICON
from onepass.ops.status import STATUS_PAGE
from onepass.pages import Brand, render
from onepass.process import DRAINING
from onepass.release import current as current_release
from onepass.services import runtime_of

router = APIRouter(tags=["ops"])


@router.get(
    "/up",
    responses={
        503: {
            "description": "a check failed; `checks` names it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def up(request: Request) -> JSONResponse:
    """200 when the database answers, every needed signing key is active, and this
    process holds those keys, fresh; else 503 naming the failing check."""
    runtime = runtime_of(request)
    # Every algorithm of ONEPASS_SIGNING_ALGS (RS256 and the access token's among them):
    # a client registered with any of them fails at the token endpoint without its key.
    required: set[str] = set(runtime.settings.signing_algorithms)
    checks = await run_checks(runtime.database, KEYRING.of(request), required)
    healthy = all(check.ok for check in checks)
    return JSONResponse(
        {
            "status": "ok" if healthy else "fail",
            "checks": {check.name: check.detail for check in checks},
        },
        status_code=200 if healthy else 503,
        headers={"cache-control": "no-store"},
    )


@router.get("/livez")
async def livez() -> JSONResponse:
    """200 while this process answers; asks nothing of the database (a liveness probe
    that restarts a process because PostgreSQL is down would only add to the outage)."""
    return JSONResponse(
        {"status": "ok", "release": current_release().describe()},
        headers={"cache-control": "no-store"},
    )


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "not ready; `checks` names why",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    """200 when this process may take traffic: the database answers at a schema this
    release runs on (its own migration or a later one), the process holds its signing
    keys, and it is not draining for shutdown; else 503 naming the check. The body
    names the release (version, commit, migration) for the playbook's triage."""
    runtime = runtime_of(request)
    release = current_release()
    checks = await run_readiness(
        runtime.database,
        KEYRING.of(request),
        set(runtime.settings.signing_algorithms),
        release,
        DRAINING.active,
    )
    ready = all(check.ok for check in checks)
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": {check.name: check.detail for check in checks},
            "release": release.describe(),
        },
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """1pass's icon, for browsers' tabs (the pages also link /static/favicon.svg)."""
    return FileResponse(
        FAVICON, media_type="image/x-icon", headers={"cache-control": "public, max-age=86400"}
    )


BRAND_CSS_MAX_AGE = 365 * 86400


@router.get("/brand.css", include_in_schema=False)
async def brand_css(request: Request) -> Response:
    """The accent colour of ``ONEPASS_BRAND_ACCENT`` as a stylesheet (the pages' CSP
    allows no inline style); 404 when none is set. The pages link it with its content's
    hash (``?v=``): that URL never changes content and is cached for a year; any other
    is revalidated with its strong ETag."""
    brand = Brand.of(runtime_of(request).settings)
    body = brand.stylesheet
    if body is None:
        return JSONResponse(
            {"error": "not_found", "message": "no ONEPASS_BRAND_ACCENT is set"}, status_code=404
        )
    current = request.query_params.get("v") == brand.stylesheet_version
    headers = {
        "etag": brand.stylesheet_etag,
        "cache-control": f"public, max-age={BRAND_CSS_MAX_AGE}, immutable"
        if current
        else "public, no-cache",
        "x-content-type-options": "nosniff",
    }
    asked = request.headers.get("if-none-match", "")
    if brand.stylesheet_etag in (tag.strip() for tag in asked.split(",")) or asked.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="text/css", headers=headers)


@router.get("/status", response_class=HTMLResponse)
async def status_page(request: Request) -> HTMLResponse:
    """The public status page: health in one word, and the open sev1 incidents, in the
    browser's language, with times in UTC to the minute and how long ago."""
    language = i18n.page_language(accept_language=request.headers.get("accept-language"))
    now = runtime_of(request).clock.now()

    def when(value: str) -> str:
        return i18n.when(value, now, language)

    return render(
        "status.html",
        {"status": await STATUS_PAGE.of(request).read(), "when": when},
        language=language,
    )


@router.get("/status.json")
async def status_json(request: Request) -> JSONResponse:
    """The status page as JSON: ``status`` (operational or disrupted), ``summary``,
    ``updated_at``, the open sev1 ``incidents`` and ``incidents_available``."""
    return JSONResponse(
        await STATUS_PAGE.of(request).read(),
        headers={"cache-control": "no-store", "access-control-allow-origin": "*"},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format. With ONEPASS_METRICS_TOKEN set, only for
    ``Authorization: Bearer <token>``; in production, off until it is set."""
    runtime = runtime_of(request)
    settings = runtime.settings
    token = settings.metrics_token
    if token is None and settings.is_production:
        return JSONResponse(
            {
                "error": "not_found",
                "message": "metrics are off in production until ONEPASS_METRICS_TOKEN is set",
            },
            status_code=404,
        )
    if token is not None:
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), token.encode()
        ):
            return JSONResponse(
                {
                    "error": "unauthorized",
                    "message": "send Authorization: Bearer <ONEPASS_METRICS_TOKEN>",
                },
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="1pass metrics"'},
            )
    snapshot = await metrics.read_outbox(runtime.database, runtime.clock.now())
    return Response(
        metrics.render(snapshot),
        media_type=metrics.CONTENT_TYPE_LATEST,
        headers={"cache-control": "no-store"},
    )
