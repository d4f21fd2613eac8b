"""The HTTP edge: bodies bounded for every route, no control characters in any text
parameter, each refusal in the route's own protocol (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from onepass.app import OnePass
from onepass.runtime import Runtime
from tests.factories import REDIRECT_URI, make_admin, make_rp

CHUNK = 4096
PAGES = (
    "/authorize",
    "/login",
    "/consent",
    "/logout",
    "/admin",
    "/password/",
    "/signup",
    "/account",
    "/device/",  # RFC 8628's pages (/device itself below; /device_authorization is OAuth)
)


def protocol_of(path: str) -> str:
    """How a user of each route expects to be told no."""
    if path.startswith("/api/"):
        return "admin"
    if path.startswith(PAGES) or path == "/device":
        return "page"
    return "oauth"


BODY_METHODS = ("POST", "PUT", "PATCH")


def body_routes(app: OnePass) -> list[tuple[str, str]]:
    """Every method and path that takes a body, the path as a concrete URL; new routes
    are included as added (DELETE takes none)."""
    routes = {("POST", "/token")}  # bare ASGI, in front of FastAPI's routes
    for route in iter_route_contexts(app.api.routes):
        for method in set(route.methods or ()) & set(BODY_METHODS):
            routes.add((method, re.sub(r"\{[^}]+\}", "1", route.path)))
    return sorted(routes)


def post_routes(app: OnePass) -> list[str]:
    return sorted({path for method, path in body_routes(app) if method == "POST"})


def limit_of(app: OnePass, path: str) -> int:
    settings = app.services.runtime.settings
    if protocol_of(path) == "admin":
        return int(getattr(settings, "max_json_bytes", 16 * 1024))
    return settings.max_form_bytes


def content_type_of(path: str) -> str:
    if protocol_of(path) == "admin":
        return "application/json"
    return "application/x-www-form-urlencoded"


def assert_refused(response: httpx.Response, path: str, status: int) -> None:
    """The refusal is in the route's protocol: RFC 6749 JSON, admin JSON or an HTML page."""
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    protocol = protocol_of(path)
    if protocol == "page":
        assert response.headers["content-type"].startswith("text/html"), path
        assert "<html" in response.text.lower()
    elif protocol == "oauth":
        body = response.json()
        assert body["error"] == "invalid_request" and body["error_description"], path
    else:
        body = response.json()
        assert body["error"] == "invalid_request" and body["message"], path


def test_every_post_route_is_covered(app: OnePass) -> None:
    paths = post_routes(app)
    for expected in ("/token", "/revoke", "/introspect", "/userinfo", "/login", "/consent"):
        assert expected in paths
    assert any(p.startswith("/api/v1/admin/") for p in paths)
    assert any(p.startswith("/admin/") for p in paths)


async def test_post_body_over_limit_declared_gets_413_on_every_route(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    for method, path in body_routes(app):
        body = b"a=" + b"x" * limit_of(app, path)
        response = await http.request(
            method, path, content=body, headers={"content-type": content_type_of(path)}
        )
        assert_refused(response, path, 413)


async def test_post_body_over_limit_streamed_is_never_read_past_the_limit(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    """Chunked, no Content-Length: each route either answers 413 or stops reading; none
    reads more than the limit (plus the chunk that crossed it)."""
    admin = await make_admin(app.services.runtime)
    for method, path in body_routes(app):
        limit = limit_of(app, path)
        body = CountingBody(4 * limit // CHUNK)
        headers = {"content-type": content_type_of(path)}
        if protocol_of(path) == "admin":
            headers["authorization"] = f"Bearer {admin.token}"
        response = await http.request(method, path, content=body, headers=headers)
        assert body.sent <= limit + CHUNK, (path, body.sent, response.status_code)
        assert response.status_code < 500, (path, response.text[:300])
        if body.sent > limit:
            assert_refused(response, path, 413)


class CountingBody:
    """A chunked request body that counts what the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.sent += CHUNK
            yield b"x" * CHUNK


@pytest.mark.parametrize(
    "path",
    [
        "/authorize?client_id=%00",
        "/authorize?response_type=code&client_id=x&state=a%0Ab",
        "/logout?client_id=%00",
        "/userinfo?x=%00",
        "/api/v1/admin/audit_log?action=%00",
        "/admin/applications/%00/replay",
        "/admin/audit?action=%00",
    ],
)
async def test_control_character_in_query_or_path_gets_400(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert_refused(response, path.partition("?")[0], 400)


@pytest.mark.parametrize("name", ["nonce", "state", "login_hint"])
async def test_nul_in_authorization_parameter_gets_400_page_not_a_code(
    http: httpx.AsyncClient, runtime: Runtime, name: str
) -> None:
    """Before, the request was accepted and failed at the code INSERT on PostgreSQL."""
    client = await make_rp(runtime)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        name: "before\x00after",
    }
    response = await http.get("/authorize?" + urlencode(params))
    assert_refused(response, "/authorize", 400)


async def test_nul_in_login_email_gets_400_page(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/login", data={"email": "a\x00@example.com", "password": "p", "csrf_token": "x"}
    )
    assert_refused(response, "/login", 400)


async def test_nul_in_oauth_form_gets_invalid_request(http: httpx.AsyncClient) -> None:
    response = await http.post("/revoke", data={"token": "a\x00b", "client_id": "x"})
    assert_refused(response, "/revoke", 400)


async def test_nul_anywhere_in_admin_json_gets_400(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    admin = await make_admin(runtime)
    for body in ({"action": "x\x00"}, {"nested": {"k\x00": 1}}, {"list": ["ok", "\x00"]}):
        response = await http.post(
            "/api/v1/admin/step-up", json=body, headers={"authorization": f"Bearer {admin.token}"}
        )
        assert_refused(response, "/api/v1/admin/step-up", 400)


async def test_repeated_form_parameter_is_refused_by_name(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/revoke",
        content=b"token=a&token=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "token" in response.json()["error_description"]
