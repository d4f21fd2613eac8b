"""Branding by settings (``ONEPASS_BRAND_*``, ``ONEPASS_SUPPORT_URL``, …): the name,
logo and links on the end-user pages, the accent as ``/brand.css``, the CSP widened
only for a data: logo, and the admin console left as 1pass. SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx

from onepass.app import create_app
from onepass.pages import PAGE_HEADERS
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, submit_login
from tests.unit.core.test_settings import PNG_1PX

CSP = PAGE_HEADERS["content-security-policy"]
BRANDED = {
    "brand_name": "Acme ID",
    "brand_logo_url": "/static/acme-logo.svg",
    "brand_accent": "#c0ffee",
    "support_url": "https://help.acme.example/",
    "privacy_url": "https://acme.example/privacy",
}


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    """The application built with ``changes`` to the settings, over HTTP."""
    application = create_app(runtime.settings.model_copy(update=changes))
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client


def csp_of(page: httpx.Response) -> str:
    """The page's CSP, less the ``script-src 'self'`` of the pages with a passkey form."""
    return page.headers["content-security-policy"].replace(" script-src 'self';", "")


def title(page: httpx.Response) -> str:
    found = re.search(r"<title>(.*?)</title>", page.text)
    assert found, page.text[:300]
    return found.group(1)


def stylesheet(page: httpx.Response) -> str | None:
    found = re.search(r'<link rel="stylesheet" href="(/brand\.css\?v=[0-9a-f]+)">', page.text)
    return found.group(1) if found else None


async def test_pages_without_branding_say_1pass_with_the_strict_csp_and_no_links(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    rp = await make_rp(runtime)
    for page in (await http.get(authorize_url(rp)), await http.get("/account")):
        assert page.status_code == 200
        assert '<p class="brand">1pass</p>' in page.text
        assert title(page).endswith(" — 1pass") and "<img" not in page.text
        assert stylesheet(page) is None and '<footer class="links">' not in page.text
        assert csp_of(page) == CSP
        assert "img-src 'self';" in CSP and "data:" not in CSP
    missing = await http.get("/brand.css")
    assert missing.status_code == 404


async def test_login_account_and_consent_pages_carry_the_brand_and_only_the_links_set(
    runtime: Runtime,
) -> None:
    rp = await make_rp(runtime)
    user = await make_user(runtime)
    async with serving(runtime, **BRANDED) as http:
        login = await http.get(authorize_url(rp))
        account = await http.get("/account")
        consent = await submit_login(http, login, user.email, user.password)
        assert 'action="/consent"' in consent.text
        for page, heading in ((login, "Sign in"), (account, "Your account"), (consent, None)):
            assert page.status_code == 200
            assert (
                '<p class="brand"><img src="/static/acme-logo.svg" alt="Acme ID"> '
                '<span aria-hidden="true">Acme ID</span></p>'
            ) in page.text
            assert "1pass" not in page.text
            if heading:
                assert title(page) == f"{heading} — Acme ID"
            assert stylesheet(page) is not None
            # The stylesheet comes after the base one, so its accent wins.
            assert page.text.index("/static/style.css") < page.text.index("/brand.css")
            assert csp_of(page) == CSP  # a path logo: unchanged
            footer = page.text.split('<footer class="links">', 1)[1].split("</footer>", 1)[0]
            assert 'href="https://help.acme.example/"' in footer and ">Help</a>" in footer
            assert 'href="https://acme.example/privacy"' in footer and ">Privacy</a>" in footer
            assert "Terms" not in footer  # ONEPASS_TERMS_URL is not set
        assert "Sign in to see and change your Acme ID account." in account.text
        assert title(consent) == "Allow access — Acme ID"
        assert "your Acme ID account identifier" in consent.text

        http.cookies.clear()  # signed out: /account is its sign-in page again
        korean = await http.get("/account", headers={"accept-language": "ko"})
        assert ">도움말</a>" in korean.text and ">개인정보</a>" in korean.text
        assert "Acme ID 계정을 확인하고 변경하려면 로그인하세요." in korean.text

        # Pages other than those three carry the name but no links.
        forgot = await http.get("/password/forgot")
        assert title(forgot) == "Reset your password — Acme ID"
        assert '<footer class="links">' not in forgot.text
        error = await http.get("/authorize")
        assert error.status_code == 400 and title(error).endswith(" — Acme ID")


async def test_brand_css_is_the_accent_cached_by_its_hash_with_a_strong_etag(
    runtime: Runtime,
) -> None:
    rp = await make_rp(runtime)
    async with serving(runtime, **BRANDED) as http:
        href = stylesheet(await http.get(authorize_url(rp)))
        assert href is not None
        css = await http.get(href)
        assert css.status_code == 200 and css.content == b":root{--accent:#c0ffee}\n"
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers["x-content-type-options"] == "nosniff"
        assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
        etag = css.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{20}"', etag) and etag.strip('"') in href

        again = await http.get(href, headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        listed = await http.get(href, headers={"if-none-match": f'"other", {etag}'})
        assert listed.status_code == 304
        stale = await http.get(href, headers={"if-none-match": '"0123456789abcdef0123"'})
        assert stale.status_code == 200 and stale.content == css.content
        # Any other URL is revalidated, never cached for good.
        bare = await http.get("/brand.css")
        assert bare.status_code == 200 and bare.headers["cache-control"] == "public, no-cache"
        assert bare.headers["etag"] == etag

    async with serving(runtime, brand_accent="#123456") as http:
        other = stylesheet(await http.get(authorize_url(rp)))
        assert other is not None and other != href
        assert (await http.get(other)).content == b":root{--accent:#123456}\n"


async def test_a_data_logo_allows_data_images_only_and_only_when_configured(
    runtime: Runtime,
) -> None:
    rp = await make_rp(runtime)
    async with serving(runtime, brand_logo_url=PNG_1PX) as http:
        page = await http.get(authorize_url(rp))
        assert f'<img src="{PNG_1PX}" alt="1pass">' in page.text
        csp = csp_of(page)
        assert csp == CSP.replace("img-src 'self';", "img-src 'self' data:;")
        assert "default-src 'none'" in csp and "style-src 'self';" in csp
        # The admin console is the operator's tool: never branded, its CSP unchanged.
        console = await http.get("/admin/login")
        assert (
            console.status_code == 200 and "data:" not in console.headers["content-security-policy"]
        )
        assert "<img" not in console.text


async def test_the_admin_console_keeps_1pass(runtime: Runtime) -> None:
    async with serving(runtime, **BRANDED) as http:
        console = await http.get("/admin/login")
        assert console.status_code == 200
        assert '<p class="brand">1pass admin</p>' in console.text
        assert "Acme" not in console.text and "/brand.css" not in console.text
