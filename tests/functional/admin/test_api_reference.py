"""/api/v1/admin/docs: the admin API's reference page, its document and its viewer,
all from this server."""

from __future__ import annotations

import json

import httpx

PREFIX = "/api/v1/admin"


async def test_reference_page_loads_only_from_this_server(http: httpx.AsyncClient) -> None:
    page = await http.get(f"{PREFIX}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in (
        f"{PREFIX}/docs/swagger-ui-bundle.js",
        f"{PREFIX}/docs/swagger-ui.css",
        "/static/admin-docs.js",
    ):
        assert asset in page.text
        served = await http.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert (await http.get(f"{PREFIX}/docs/favicon.png")).status_code == 404
    assert (await http.get(f"{PREFIX}/docs/..%2F..%2Fcore.py")).status_code in (400, 404)


async def test_reference_document_is_the_admin_part_of_openapi(http: httpx.AsyncClient) -> None:
    whole = (await http.get("/openapi.json")).json()
    part = (await http.get(f"{PREFIX}/openapi.json")).json()
    admin_paths = {p for p in whole["paths"] if p.startswith(PREFIX + "/")}
    assert set(part["paths"]) == admin_paths and f"{PREFIX}/step-up" in admin_paths
    assert part["info"]["title"] == "1pass admin API"
    # Every $ref it holds resolves inside it.
    text = json.dumps(part)
    for ref in {r for r in text.split('"$ref": "')[1:]}:
        name = ref.split('"')[0].rsplit("/", 1)[1]
        assert name in part["components"]["schemas"], name
    assert "TokenResponse" not in part.get("components", {}).get("schemas", {})
    # The reference's own routes are not in the document.
    assert f"{PREFIX}/docs" not in whole["paths"] and f"{PREFIX}/openapi.json" not in whole["paths"]
