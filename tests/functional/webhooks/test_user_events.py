"""The user.* webhooks as an RP receives them: signed (verified with the independent
``standardwebhooks`` package), only to applications subscribed to them (no list: every
event), naming the user by ``sub``. SQLite and PostgreSQL."""

from __future__ import annotations

from onepass.operators.audit import Actor
from onepass.playbook import users
from onepass.runtime import Runtime
from tests.factories import make_user
from tests.webhook_helpers import Receiver, dispatch_once, make_webhook_app

ACTOR = Actor("cli:test", "cli")


async def test_user_events_reach_subscribed_rps_signed_with_the_sub(
    runtime: Runtime, receiver: Receiver
) -> None:
    everything = await make_webhook_app(runtime, receiver.url("/all"), name="all")
    deletions = await make_webhook_app(
        runtime, receiver.url("/deleted"), events=["user.deleted"], name="deleted only"
    )
    await make_webhook_app(
        runtime, receiver.url("/links"), events=["identity.link.created"], name="links only"
    )
    user = await make_user(runtime, name="Ada")

    await users.update_user(runtime, ACTOR, user.email, name="Ada L.")
    await users.disable_user(runtime, ACTOR, user.email)
    await users.enable_user(runtime, ACTOR, user.email)
    await users.delete_user(runtime, ACTOR, user.email)
    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == 5)

    got = {b["type"]: b["data"] for b in (d.verify(everything.secret) for d in receiver.at("/all"))}
    assert set(got) == {"user.updated", "user.disabled", "user.enabled", "user.deleted"}
    assert {data["sub"] for data in got.values()} == {user.sub}
    assert got["user.updated"]["changed"] == ["name"]
    [deleted] = receiver.at("/deleted")
    body = deleted.verify(deletions.secret)
    assert body["type"] == "user.deleted" and set(body["data"]) == {"sub", "deleted_at"}
    assert deleted.webhook_id == f"user.deleted:{user.sub}"
    assert receiver.at("/links") == []
