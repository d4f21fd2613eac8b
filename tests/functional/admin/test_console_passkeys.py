"""An administrator's passkeys confirm console changes instead of a code: added on
``/admin/passkeys`` after a fresh code (audited), then every step-up form offers
"Confirm with a passkey"; its answer approves one change once, the step-up audited as
made with a passkey; a person's passkey, another administrator's, or an answer given
before approves nothing; ``reset-totp`` removes them. SQLite and PostgreSQL, frozen
clock, a software authenticator (``tests.passkeys``)."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy import func, select

from onepass.accounts.models import Passkey, User
from onepass.clock import FrozenClock
from onepass.operators.audit import Actor
from onepass.playbook import admins as admins_playbook
from onepass.runtime import Runtime
from tests.conftest import ISSUER
from tests.factories import AdminInfo, make_admin, make_user
from tests.functional.admin.test_console import audit_rows, code_now, csrf_token, signed_in
from tests.passkeys import SoftAuthenticator, ceremony, origin_of

STEP_UP = re.compile(
    r'<input type="hidden" name="step_up_state" value="([^"]*)">.*?'
    r'data-passkey-step-up data-options="([^"]*)"',
    re.S,
)


def step_up_of(page: httpx.Response) -> tuple[str, dict[str, object]]:
    """The step-up ceremony a console page offers: its sealed state and its options."""
    import json

    found = STEP_UP.search(page.text)
    assert found, "no passkey step-up on the page"
    return html.unescape(found.group(1)), json.loads(html.unescape(found.group(2)))


async def add_passkey(
    web: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock, authenticator: SoftAuthenticator
) -> httpx.Response:
    page = await web.get("/admin/passkeys")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    form = ceremony(page.text, "register")
    clock.advance(30)
    return await web.post(
        form.action,
        data={
            **form.fields,
            "csrf_token": csrf_token(page),
            "credential": authenticator.create(form.options),
            "name": "YubiKey",
            "totp_code": code_now(admin, clock),
        },
    )


async def disabled(rt: Runtime, user_id: int) -> bool:
    async with rt.database.session(readonly=True) as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user.disabled_at is not None


async def test_a_passkey_confirms_a_change_once_instead_of_a_code(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    await signed_in(api, admin, clock)
    before = await api.get("/admin/users")
    assert "data-passkey-step-up" not in before.text, "no passkey yet: codes only"
    assert "script-src" not in before.headers["content-security-policy"]

    added = await add_passkey(api, admin, clock, authenticator)
    assert added.status_code == 303 and added.headers["location"] == "/admin/passkeys?done=added"
    listed = await api.get(added.headers["location"])
    assert "YubiKey" in listed.text and "The passkey is added" in listed.text
    [audited] = await audit_rows(rt, "admins.add_passkey")
    assert audited.outcome == "ok" and audited.detail["name"] == "YubiKey"

    ada = await make_user(rt)
    path = f"/admin/users/{ada.id}"
    page = await api.get(path)
    assert '<script src="/static/passkey.js" defer></script>' in page.text
    state, options = step_up_of(page)
    assert options["userVerification"] == "required"
    answer = authenticator.get(options)
    data = {"csrf_token": csrf_token(page), "step_up_state": state, "step_up_credential": answer}
    done = await api.post(path + "/disable", data=data)
    assert done.status_code == 303, done.text[:500]
    assert await disabled(rt, ada.id)
    step_ups = await audit_rows(rt, "step_up:users.disable")
    assert [(r.outcome, r.detail) for r in step_ups] == [("ok", {"with": "passkey"})]

    again = await api.post(path + "/enable", data=data)
    assert again.status_code == 401 and "Nothing was changed" in again.text
    assert await disabled(rt, ada.id), "the same answer approves one change"


async def test_only_the_administrators_own_passkey_approves(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    mine, theirs = SoftAuthenticator(origin_of(ISSUER)), SoftAuthenticator(origin_of(ISSUER))
    other = await make_admin(rt, email="other-ops@example.com")
    async with httpx.AsyncClient(transport=api._transport, base_url=ISSUER) as other_web:
        await signed_in(other_web, other, clock)
        assert (await add_passkey(other_web, other, clock, theirs)).status_code == 303
    await signed_in(api, admin, clock)
    assert (await add_passkey(api, admin, clock, mine)).status_code == 303
    ada = await make_user(rt)
    path = f"/admin/users/{ada.id}"
    page = await api.get(path)
    state, options = step_up_of(page)
    for credential in (
        theirs.get(options | {"allowCredentials": []}),
        mine.get(options, verified=False),
        mine.get(options, origin="https://evil.example"),
        "{not json",
    ):
        refused = await api.post(
            path + "/disable",
            data={
                "csrf_token": csrf_token(page),
                "step_up_state": state,
                "step_up_credential": credential,
            },
        )
        assert refused.status_code == 401, refused.text[:300]
        assert "passkey" in refused.text and "Nothing was changed" in refused.text
    assert not await disabled(rt, ada.id)
    assert {r.outcome for r in await audit_rows(rt, "step_up:users.disable")} == {"denied"}


async def test_removing_takes_a_code_and_reset_totp_removes_them_all(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    authenticator = SoftAuthenticator(origin_of(ISSUER))
    await signed_in(api, admin, clock)
    await add_passkey(api, admin, clock, authenticator)
    await add_passkey(api, admin, clock, SoftAuthenticator(origin_of(ISSUER)))
    page = await api.get("/admin/passkeys")
    ids = re.findall(r'name="passkey_id" value="(\d+)"', page.text)
    assert len(ids) == 2
    bogus = await api.post(
        "/admin/passkeys/remove",
        data={"csrf_token": csrf_token(page), "passkey_id": "abc", "totp_code": "000000"},
    )
    assert bogus.status_code in (401, 404) and "Nothing was changed" in bogus.text
    clock.advance(30)
    removed = await api.post(
        "/admin/passkeys/remove",
        data={
            "csrf_token": csrf_token(page),
            "passkey_id": ids[0],
            "totp_code": code_now(admin, clock),
        },
    )
    assert removed.status_code == 303
    assert removed.headers["location"] == "/admin/passkeys?done=removed"
    clock.advance(30)
    missing = await api.post(
        "/admin/passkeys/remove",
        data={
            "csrf_token": csrf_token(page),
            "passkey_id": ids[0],
            "totp_code": code_now(admin, clock),
        },
    )
    assert missing.status_code == 404 and "no passkey" in missing.text
    await admins_playbook.reset_totp(rt, Actor.cli(), email=admin.email)
    async with rt.database.session(readonly=True) as session:
        assert await session.scalar(select(func.count()).select_from(Passkey)) == 0


async def test_adding_a_passkey_takes_a_code_not_another_passkey(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    first = SoftAuthenticator(origin_of(ISSUER))
    await signed_in(api, admin, clock)
    await add_passkey(api, admin, clock, first)
    page = await api.get("/admin/passkeys")
    form = ceremony(page.text, "register")
    assert form.options["authenticatorSelection"]["userVerification"] == "required"  # type: ignore[index]
    state, options = step_up_of(page)
    refused = await api.post(
        form.action,
        data={
            **form.fields,
            "csrf_token": csrf_token(page),
            "credential": SoftAuthenticator(origin_of(ISSUER)).create(form.options),
            "step_up_state": state,
            "step_up_credential": first.get(options),
        },
    )
    assert refused.status_code == 400 and "not with another passkey" in refused.text
    async with rt.database.session(readonly=True) as session:
        assert await session.scalar(select(func.count()).select_from(Passkey)) == 1
