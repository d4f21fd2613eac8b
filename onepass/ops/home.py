"""What a browser sees at ``/`` and at an address with no page: what 1pass is, and
links to discovery, the JWKS and the status page, in the browser's language.

Only for a request that asks for HTML (``Accept`` names ``text/html`` at least as
high as ``application/json``): every other client keeps the JSON 404 the API has
always answered (``app._error_handlers``), so API clients and schemathesis see no
change.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse

from onepass import i18n
from onepass.pages import render

FAVICON = Path(__file__).parent.parent / "static" / "favicon.ico"


def _quality(accept: str, media_type: str) -> float:
    """The q-value ``accept`` gives ``media_type`` when it names it, else 0."""
    for item in accept.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() != media_type:
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    return float(value)
                except ValueError:
                    return 0.0
        return 1.0
    return 0.0


def wants_html(accept: str | None) -> bool:
    """True when the client asks for HTML by name, at least as much as for JSON (a
    browser's navigation); ``*/*`` alone (curl, httpx) is not asking for HTML."""
    if not accept:
        return False
    html = _quality(accept, "text/html")
    return html > 0 and html >= _quality(accept, "application/json")


def home_page(request: Request, *, missing: bool) -> HTMLResponse:
    """The home page (``missing``: the same, saying there is no page at this address,
    with 404)."""
    language = i18n.page_language(accept_language=request.headers.get("accept-language"))
    return render(
        "home.html",
        {"missing": missing},
        404 if missing else 200,
        language=language,
    )
