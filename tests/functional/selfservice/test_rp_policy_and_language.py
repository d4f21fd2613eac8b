"""An RP registered with ``require_second_factor`` gets two steps at every sign-in
without asking (``acr_values``), and its users cannot remove their last second factor
while they use it; a person's saved language comes after the RP's ``ui_locales`` and
before the browser's, on pages and in mail. On SQLite and on PostgreSQL with Redis."""

from __future__ import annotations

import re
import secrets

import httpx
import pyotp
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from onepass.accounts.models import Passkey
from onepass.app import OnePass
from onepass.clients.registry import CLIENTS, ClientChanges
from onepass.mail.models import MailOutboxEntry
from onepass.oauth.codes import grant_consent
from onepass.operators.audit import Actor
from onepass.playbook import clients as playbook_clients
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import make_rp, make_user
from tests.flow import authorize_url, hidden_fields, submit_consent, submit_login
from tests.functional.oauth.test_code_flow import rp_client
from tests.functional.selfservice.test_account_page import post, sign_in
from tests.functional.selfservice.test_passkeys import add_passkey, browser
from tests.functional.selfservice.test_second_factor import code, enrol, fields
from tests.passkeys import SoftAuthenticator, ceremony, origin_of

MFA = "urn:1pass:acr:mfa"


async def test_an_rp_that_requires_two_steps_gets_them_without_asking(
    app: OnePass, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    strict = await make_rp(runtime, name="Example Bank", require_second_factor=True)
    relaxed = await make_rp(runtime, name="Example Notes")
    async with browser(app) as http:
        secret, _ = await enrol(http, ada)  # signed in at /account with the password alone
        # A one-step session is enough for the relaxed RP, not for the strict one.
        relaxed_page = await http.get(authorize_url(relaxed))
        assert relaxed_page.status_code == 200 and "Allow Example Notes?" in relaxed_page.text
        async with rp_client(app, strict.client_id, strict.client_secret) as rp:
            verifier = secrets.token_urlsafe(48)
            url, _ = rp.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
            assert "acr_values" not in url
            page = await http.get(url)
            assert 'action="/login"' in page.text, "the password again, then the code"
            step = await submit_login(http, page, ada.email, ada.password)
            assert 'action="/login/second-factor"' in step.text
            done = await http.post(
                "/login/second-factor", data={**fields(step.text), "code": code(secret)}
            )
            if done.status_code == 200:
                done = await submit_consent(http, done)
            token = await rp.fetch_token(
                f"{ISSUER}/token",
                authorization_response=done.headers["location"],
                code_verifier=verifier,
            )
        jwks = (await http.get("/.well-known/jwks.json")).json()
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(jwks)).claims
    assert claims["acr"] == MFA and claims["amr"] == ["pwd", "otp", "mfa"]


async def test_a_person_without_a_factor_sets_one_up_for_such_an_rp(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    strict = await make_rp(runtime, name="Example Bank", require_second_factor=True)
    page = await http.get(authorize_url(strict))
    setup = await submit_login(http, page, ada.email, ada.password)
    assert setup.status_code == 200 and 'action="/login/enrol"' in setup.text
    assert "Example Bank asks for two-step verification" in setup.text


async def test_the_policy_is_set_and_cleared_like_any_registration_field(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    client = await make_rp(runtime, name="Example Notes")
    changed = await playbook_clients.update(
        runtime, Actor.cli(), client.client_id, ClientChanges(require_second_factor=True)
    )
    assert changed["require_second_factor"] is True
    page = await http.get(authorize_url(client))  # the app has not cached it yet
    assert 'action="/login/enrol"' in (await submit_login(http, page, ada.email, ada.password)).text
    cleared = await playbook_clients.update(
        runtime, Actor.cli(), client.client_id, ClientChanges(require_second_factor=False)
    )
    assert cleared["require_second_factor"] is False


async def test_the_last_factor_stays_while_an_rp_that_uses_it_requires_one(
    app: OnePass, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    strict = await make_rp(runtime, name="Example Bank", require_second_factor=True)
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, authenticator)
        # Consent to the strict RP (two steps: the session is one-step, the passkey next).
        page = await http.get(authorize_url(strict))
        step = await submit_login(http, page, ada.email, ada.password)
        form = ceremony(step.text, "second-step")
        done = await http.post(
            form.action, data={**form.fields, "credential": authenticator.get(form.options)}
        )
        if done.status_code == 200:
            done = await submit_consent(http, done)
        assert done.status_code == 303

        account = await http.get("/account")
        assert "Requires two-step verification." in account.text
        async with runtime.database.session(readonly=True) as session:
            key_id = await session.scalar(select(Passkey.id))
        csrf = hidden_fields(account.text)["csrf_token"]
        refused = await http.post(
            "/account/passkeys/remove",
            data={"csrf_token": csrf, "passkey_id": str(key_id), "password": ada.password},
        )
        assert refused.status_code == 409
        assert "Example Bank requires two-step verification" in refused.text
        # With an authenticator app beside it, the passkey can go; then the app cannot.
        setup = await post(http, "/account/totp/start", password=ada.password)
        secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', setup.text)
        assert secret is not None
        on = await http.post(
            "/account/totp/confirm",
            data={**fields(setup.text), "code": pyotp.TOTP(secret.group(1)).now()},
        )
        assert on.status_code == 200 and "Your recovery codes" in on.text  # new ones
        removed = await post(
            http, "/account/passkeys/remove", passkey_id=str(key_id), password=ada.password
        )
        assert removed.status_code == 303
        last = await post(http, "/account/totp/remove", password=ada.password)
        assert last.status_code == 409 and "Example Bank" in last.text


async def test_the_saved_language_comes_after_ui_locales_and_before_the_browser(
    app: OnePass, runtime: Runtime
) -> None:
    ada = await make_user(runtime)
    client = await make_rp(runtime, name="Example Notes")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
        headers={"accept-language": "en-US,en;q=0.9"},
    ) as http:
        await sign_in(http, ada.email, ada.password)
        saved = await post(http, "/account/language", language="ko")
        assert saved.status_code == 303 and saved.headers["location"] == "/account?done=language"
        account = await http.get("/account?done=language")
        assert account.headers["content-language"] == "ko"
        assert 'lang="ko"' in account.text and "언어" in account.text
        consent = await http.get(authorize_url(client))
        assert consent.headers["content-language"] == "ko", "the consent page knows the person"
        english = await http.get(authorize_url(client, ui_locales="en"))
        assert english.headers["content-language"] == "en", "the RP's ui_locales come first"
        changed = await post(
            http,
            "/account/password",
            current_password=ada.password,
            password="a brand new passphrase",
            password_again="a brand new passphrase",
        )
        assert changed.status_code == 303
        await sign_in(http, ada.email, "a brand new passphrase")
        bogus = await post(http, "/account/language", language="xx")
        assert bogus.status_code == 400
        back = await post(http, "/account/language", language="")
        assert back.status_code == 303
        assert (await http.get("/account")).headers["content-language"] == "en"
    async with runtime.database.session(readonly=True) as session:
        mail = await session.scalar(
            select(MailOutboxEntry).where(MailOutboxEntry.kind == "password_changed")
        )
    assert mail is not None and mail.language == "ko", "mail in the language the person chose"


async def test_two_removals_at_once_leave_a_factor_an_rp_requires(
    app: OnePass, runtime: Runtime
) -> None:
    """The authenticator app and the last passkey removed at the same moment: the rule
    is asked again in each removal's transaction, under the user's row lock, so one
    of them is refused and a factor stays."""
    import asyncio

    from onepass.accounts.models import User
    from onepass.selfservice.account import ACCOUNT, FactorNeeded

    ada = await make_user(runtime)
    strict = await make_rp(runtime, name="Example Bank", require_second_factor=True)
    async with browser(app) as http:
        await sign_in(http, ada.email, ada.password)
        await add_passkey(http, SoftAuthenticator(origin_of(ISSUER)))
        setup = await post(http, "/account/totp/start", password=ada.password)
        secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', setup.text)
        assert secret is not None
        await http.post(
            "/account/totp/confirm",
            data={**fields(setup.text), "code": pyotp.TOTP(secret.group(1)).now()},
        )
    async with runtime.database.session() as session:
        record = await app.services.get(CLIENTS).get(strict.client_id)
        assert record is not None
        await grant_consent(session, runtime.clock, ada.id, record, ["openid"])
        user = await session.get(User, ada.id)
        key_id = await session.scalar(select(Passkey.id))
    assert user is not None and key_id is not None
    account = app.services.get(ACCOUNT)
    results = await asyncio.gather(
        account.remove_totp(user, ada.password, "127.0.0.1", "en"),
        account.remove_passkey(user, key_id, ada.password, "127.0.0.1", "en"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, FactorNeeded)]
    assert len(refused) == 1, results
    async with runtime.database.session(readonly=True) as session:
        fresh = await session.get(User, ada.id)
        keys = await session.scalar(select(func.count()).select_from(Passkey))
    assert fresh is not None and (fresh.totp_secret_encrypted is not None or keys == 1)
