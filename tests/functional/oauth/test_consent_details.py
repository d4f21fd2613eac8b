"""The consent page tells the person who asks and where they go: the RP's name, the
host of the request's redirect URI, and the RP's own privacy policy and terms
(``policy_uri``, ``tos_uri``) when it registered them. SQLite and PostgreSQL."""

from __future__ import annotations

import html

import httpx
import pytest

from onepass.clients.registry import ClientChanges
from onepass.oauth.authorize_routes import redirect_host
from onepass.operators.audit import Actor
from onepass.playbook import clients as playbook
from onepass.runtime import Runtime
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, submit_login

POLICY = "https://notes.example.com/privacy?lang=en&v=2"
TERMS = "https://notes.example.com/terms"
NOTES_CALLBACK = "https://notes.example.com/oauth/callback"


async def consent_page(
    http: httpx.AsyncClient, runtime: Runtime, rp_name: str, **options: object
) -> httpx.Response:
    rp = await make_rp(runtime, name=rp_name, redirect_uris=[NOTES_CALLBACK], **options)
    user = await make_user(runtime)
    login = await http.get(authorize_url(rp, redirect_uri=NOTES_CALLBACK))
    page = await submit_login(http, login, user.email, user.password)
    assert page.status_code == 200 and 'action="/consent"' in page.text, page.text[:500]
    return page


async def test_consent_shows_the_redirect_host_and_the_rps_policy_and_terms(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    page = await consent_page(http, runtime, "Notes", policy_uri=POLICY, tos_uri=TERMS)
    assert "<h1>Allow Notes?</h1>" in page.text
    assert "You will be sent back to <strong>notes.example.com</strong>." in page.text
    policies = page.text.split('<p id="client-policies" class="hint">', 1)[1].split("</p>")[0]
    assert "Notes's own pages:" in policies
    assert f'<a id="client-policy" href="{html.escape(POLICY)}"' in policies
    assert ">Privacy policy</a>" in policies
    assert f'<a id="client-tos" href="{TERMS}"' in policies and ">Terms of service</a>" in policies


async def test_consent_without_policy_or_terms_shows_no_links_but_the_host(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    page = await consent_page(http, runtime, "Notes")
    assert "<strong>notes.example.com</strong>" in page.text
    assert 'id="client-policies"' not in page.text and "Privacy policy" not in page.text


async def test_consent_shows_only_the_terms_when_only_they_are_registered_in_korean(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    http.headers["accept-language"] = "ko"
    page = await consent_page(http, runtime, "Notes", tos_uri=TERMS)
    assert "완료되면 <strong>notes.example.com</strong>(으)로 돌아갑니다." in page.text
    assert ">서비스 약관</a>" in page.text and "client-policy" not in page.text


async def test_a_policy_changed_by_update_is_the_one_consent_links(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    rp = await make_rp(runtime, policy_uri=POLICY)
    await playbook.update(
        runtime,
        Actor.cli(),
        rp.client_id,
        ClientChanges(policy_uri="https://rp.example/privacy-v3", tos_uri=TERMS),
    )
    record = await playbook.update(runtime, Actor.cli(), rp.client_id, ClientChanges(tos_uri=""))
    assert record["policy_uri"] == "https://rp.example/privacy-v3"
    assert record["tos_uri"] is None


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("https://notes.example.com/cb", "notes.example.com"),
        ("https://Notes.Example.com:8443/cb?x=1", "notes.example.com:8443"),
        ("http://127.0.0.1:8080/cb", "127.0.0.1:8080"),
        ("http://[::1]:9000/cb", "[::1]:9000"),
        ("com.example.notes:/oauth2redirect", "com.example.notes"),
    ],
)
def test_redirect_host_is_the_host_and_port_or_a_native_apps_scheme(uri: str, host: str) -> None:
    assert redirect_host(uri) == host
