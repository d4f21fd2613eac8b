"""Driving 1pass's login pages over HTTP, as a browser without JavaScript would."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import httpx

from onepass.oauth import pkce
from tests.factories import REDIRECT_URI, Client

VERIFIER = "v" * 43


def authorize_url(client: Client, **extra: str) -> str:
    """``/authorize`` for a code with PKCE (S256 of ``VERIFIER``), ``openid email``."""
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "xyz",
        "code_challenge": pkce.s256(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }
    return "/authorize?" + urlencode(params)


FIELD = re.compile(
    r'<input type="hidden" name="(csrf_token|interaction|token|invite)" value="([^"]*)">'
)


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in FIELD.findall(page)}


async def submit_login(
    http: httpx.AsyncClient, page: httpx.Response, email: str, password: str
) -> httpx.Response:
    fields = hidden_fields(page.text)
    assert set(fields) == {"csrf_token", "interaction"}, page.text[:500]
    return await http.post("/login", data={**fields, "email": email, "password": password})


async def submit_consent(
    http: httpx.AsyncClient, page: httpx.Response, decision: str = "allow"
) -> httpx.Response:
    fields = hidden_fields(page.text)
    return await http.post("/consent", data={**fields, "decision": decision})


async def log_in_and_consent(
    http: httpx.AsyncClient, authorize_url: str, email: str, password: str
) -> str:
    """From an authorization URL to the callback URL the RP receives."""
    page = await http.get(authorize_url)
    if page.status_code == 303:
        return page.headers["location"]  # already signed in and consented
    assert page.status_code == 200, page.text[:500]
    response = await submit_login(http, page, email, password)
    if response.status_code == 200 and 'action="/consent"' in response.text:
        response = await submit_consent(http, response)
    assert response.status_code == 303, response.text[:500]
    return response.headers["location"]
