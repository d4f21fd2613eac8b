"""``/api/v1/admin/docs``: the admin API's reference, for a person, in Swagger UI.

The page reads ``/api/v1/admin/openapi.json``: the admin API's part of
``/openapi.json`` (its paths, and the schemas they use). Everything it loads comes
from this server (same origin, under a Content-Security-Policy that allows nothing
else): Swagger UI's script and style sheet from the pinned ``fastapi-offline``
package, which ships them, and the few lines that start it from ``onepass/static``.
The page needs no token; trying a call out needs one, as the API always does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

PREFIX = "/api/v1/admin"
DOCS = f"{PREFIX}/docs"
SPEC = f"{PREFIX}/openapi.json"

router = APIRouter(include_in_schema=False)

_spec = importlib.util.find_spec("fastapi_offline")
assert _spec is not None and _spec.submodule_search_locations, "fastapi-offline is a dependency"
VIEWER = Path(next(iter(_spec.submodule_search_locations))) / "static"
VIEWER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}

# Same origin only: the viewer's script and styles, the spec it fetches, and the calls
# "Try it out" makes. Swagger UI's own icons are data: images in its style sheet.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>1pass admin API reference</title>
  <link rel="icon" href="/favicon.ico" sizes="any">
  <link rel="stylesheet" href="{DOCS}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-spec="{SPEC}"></div>
  <script src="{DOCS}/swagger-ui-bundle.js"></script>
  <script src="/static/admin-docs.js"></script>
</body>
</html>
"""


def admin_part(document: dict[str, Any]) -> dict[str, Any]:
    """The admin API's part of an OpenAPI document: its paths, and only the component
    schemas they reach (through ``$ref``, transitively)."""
    paths = {p: v for p, v in document.get("paths", {}).items() if p.startswith(PREFIX + "/")}
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    wanted: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in wanted and name in schemas:
                    wanted.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    part: dict[str, Any] = {
        "openapi": document.get("openapi", "3.1.0"),
        "info": {
            **document.get("info", {}),
            "title": "1pass admin API",
            "description": (
                "Every request carries an admin token (`Authorization: Bearer opa_…`, "
                "from `onepass admin tokens create`) with the scope the route needs. "
                "Every change also needs an `action_request_nonce` from "
                '`POST /api/v1/admin/step-up`. Errors are `{"error", "message"}`.'
            ),
        },
        "paths": paths,
    }
    if wanted:
        part["components"] = {"schemas": {n: schemas[n] for n in sorted(wanted)}}
    return part


@router.get(DOCS)
async def reference_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={**_HEADERS, "cache-control": "no-cache"})


@router.get(SPEC)
async def admin_openapi(request: Request) -> JSONResponse:
    return JSONResponse(
        admin_part(request.app.openapi()),
        headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"},
    )


@router.get(DOCS + "/{name}")
async def viewer_file(name: str) -> FileResponse:
    media_type = VIEWER_FILES.get(name)
    if media_type is None:
        raise HTTPException(404)
    return FileResponse(
        VIEWER / name,
        media_type=media_type,
        headers={"cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"},
    )
