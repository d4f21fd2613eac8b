"""A step-up nonce names one merge only, and one TOTP code issues one nonce or one
console sign-in, however the requests race. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import func, select

from onepass.clock import FrozenClock
from onepass.identity.models import IdentityLink
from onepass.runtime import Runtime
from tests.factories import AdminInfo, make_user
from tests.functional.admin import test_hostile_input as hostile_input
from tests.functional.admin.test_admin_api import bearer, step_up
from tests.functional.admin.test_hostile_input import code_now

api = hostile_input.api  # the app as a server runs it: an unexpected exception is a 500


async def test_a_merge_nonce_does_not_serve_another_merge_with_the_same_joined_target(
    api: httpx.AsyncClient, rt: Runtime, admin: AdminInfo, clock: FrozenClock
) -> None:
    # "a@x.io->b->c@x.io" reads as a@x.io -> b->c@x.io, and as a@x.io->b -> c@x.io:
    # all four are valid email addresses.
    for email in ("a@x.io", "b->c@x.io", "a@x.io->b", "c@x.io"):
        await make_user(rt, email)
    granted = await step_up(api, admin, "users.merge", "a@x.io->b->c@x.io", code_now(admin, clock))
    nonce = granted.json().get("action_request_nonce", "arn_none")
    merged = await api.post(
        "/api/v1/admin/users/merge",
        json={"source": "a@x.io->b", "target": "c@x.io", "action_request_nonce": nonce},
        headers=bearer(admin.token),
    )
    assert merged.status_code != 200, merged.text
    async with rt.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(IdentityLink)) == 0


async def test_two_step_ups_racing_with_one_code_issue_one_nonce(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    code = code_now(admin, clock)
    responses = await asyncio.gather(
        *(step_up(api, admin, "signing_keys.rotate", "jwks", code) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401], [
        r.text for r in responses
    ]


async def test_a_console_sign_in_and_a_step_up_racing_with_one_code_accept_it_once(
    api: httpx.AsyncClient, admin: AdminInfo, clock: FrozenClock
) -> None:
    from tests.functional.admin.test_console import sign_in

    code = code_now(admin, clock)
    signed, stepped = await asyncio.gather(
        sign_in(api, admin.email, admin.password, code),
        step_up(api, admin, "signing_keys.rotate", "jwks", code),
    )
    assert sorted([signed.status_code == 303, stepped.status_code == 200]) == [False, True]
