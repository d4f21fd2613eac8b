"""`/` and addresses with no page: a page for a browser (what 1pass is, where to go),
in English or Korean; the API's JSON 404 for everyone else, as before. The favicon."""

from __future__ import annotations

import httpx
import pytest

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
NOT_FOUND = {"error": "not_found", "message": "Not Found"}


async def test_home_for_a_browser_is_a_page_linking_discovery_jwks_and_status(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/", headers={"accept": BROWSER, "accept-language": "en-US,en"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-language"] == "en"
    assert "OpenID Connect provider" in page.text
    for link in (
        'href="/.well-known/openid-configuration"',
        'href="/.well-known/jwks.json"',
        'href="/status"',
    ):
        assert link in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()


async def test_home_in_korean_for_a_korean_browser(http: httpx.AsyncClient) -> None:
    page = await http.get("/", headers={"accept": BROWSER, "accept-language": "ko-KR,ko;q=0.9"})
    assert page.status_code == 200 and page.headers["content-language"] == "ko"
    assert '<html lang="ko">' in page.text and "OpenID Connect 제공자" in page.text


async def test_unknown_path_for_a_browser_is_a_404_page_with_the_same_links(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/nowhere/at/all", headers={"accept": BROWSER})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in page.text and 'href="/status"' in page.text


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"]
)
async def test_home_and_unknown_paths_keep_the_json_404_for_api_clients(
    http: httpx.AsyncClient, accept: str | None
) -> None:
    headers = {"accept": accept} if accept else {}
    for path in ("/", "/nowhere"):
        response = await http.get(path, headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json() == NOT_FOUND


async def test_api_paths_and_other_methods_keep_json_even_for_a_browser(
    http: httpx.AsyncClient,
) -> None:
    api = await http.get("/api/v1/admin/nowhere", headers={"accept": BROWSER})
    assert (api.status_code, api.json()) == (404, NOT_FOUND)
    post = await http.post("/nowhere", headers={"accept": BROWSER})
    assert post.status_code == 404 and post.json() == NOT_FOUND


async def test_favicon_is_an_icon(http: httpx.AsyncClient) -> None:
    icon = await http.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    svg = await http.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.text.startswith("<svg")
