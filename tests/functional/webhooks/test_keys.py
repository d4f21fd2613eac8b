"""Webhook signing keys: rotation with grace, compromise with an entry in flight, v1a,
secrets at rest, and the client-authenticated endpoint where an RP fetches its keys."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from standardwebhooks.webhooks import WebhookVerificationError

from onepass.clients.models import OAuthApplication
from onepass.clock import FrozenClock
from onepass.crypto import DecryptionError
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks import keys as service
from onepass.webhooks.dispatcher import Dispatcher
from onepass.webhooks.errors import SigningKeyNotFound, WebhookError
from onepass.webhooks.models import WebhookSigningKey
from tests.webhook_helpers import (
    Delivery,
    Receiver,
    WebhookApp,
    attempts,
    dispatch_once,
    enqueue,
    entries,
    entry,
    hang,
    make_webhook_app,
    runtime_with,
    sequence,
    status,
)


async def rotate(runtime: Runtime, app_id: int, grace: float, scheme: str | None = None):
    async with runtime.database.session(exclusive=service.keys_lock(app_id)) as session:
        new, _ = await service.rotate(
            session,
            runtime.box,
            runtime.clock,
            app_id,
            grace=timedelta(seconds=grace),
            scheme=scheme,
        )
    return new


async def compromise(runtime: Runtime, app_id: int, kid: str) -> service.Compromise:
    async with runtime.database.session(exclusive=service.keys_lock(app_id)) as session:
        application = await session.get(OAuthApplication, app_id)
        return await service.compromise(session, runtime.box, runtime.clock, application, kid)


def refuses(delivery: Delivery, secret: str) -> bool:
    try:
        delivery.verify(secret)
    except WebhookVerificationError:
        return True
    return False


async def test_rotation_signs_with_both_keys_during_the_grace_then_only_the_new(
    settings: Settings, receiver: Receiver
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    runtime = await runtime_with(settings, clock)
    try:
        app = await make_webhook_app(runtime, receiver.url())
        new = await rotate(runtime, app.id, grace=60)
        assert new.secret.startswith("whsec_") and new.kid != app.kid

        await enqueue(runtime, app.id, key="during-grace")
        await dispatch_once(runtime)
        during = receiver.deliveries[-1]
        assert during.kids == [new.kid, app.kid]  # newest first, in signature order
        assert len(during.signatures) == 2
        during.verify(app.secret)  # an RP that still has the old secret
        during.verify(new.secret)  # an RP that already switched

        clock.advance(61)
        await enqueue(runtime, app.id, key="after-grace")
        await dispatch_once(runtime)
        after = receiver.deliveries[-1]
        assert after.kids == [new.kid]
        after.verify(new.secret)
        assert refuses(after, app.secret)

        async with runtime.database.session() as session:
            states = {k.kid: k for k in await service.list_keys(session, app.id)}
        assert states[app.kid].state == "retired"
        assert states[app.kid].expires_at == clock.now() - timedelta(seconds=1)
        assert states[new.kid].state == "active" and states[new.kid].expires_at is None

        # No grace: the previous key stops at once.
        third = await rotate(runtime, app.id, grace=0)
        await enqueue(runtime, app.id, key="no-grace")
        await dispatch_once(runtime)
        assert receiver.deliveries[-1].kids == [third.kid]
        receiver.deliveries[-1].verify(third.secret)
    finally:
        await runtime.close()


async def test_compromise_with_an_entry_in_flight_never_signs_with_the_revoked_key_again(
    runtime: Runtime, receiver: Receiver
) -> None:
    release = asyncio.Event()
    # The first request is held open (in flight) across the compromise, then accepted.
    receiver.default = sequence(hang(release, then=200), status(200))
    app = await make_webhook_app(runtime, receiver.url())
    other = await make_webhook_app(runtime, receiver.url("/other"), name="untouched")
    in_flight = await enqueue(runtime, app.id, key="in-flight")
    waiting = await enqueue(runtime, app.id, key="waiting-for-retry")
    async with runtime.database.session() as session:
        # One entry waits for a retry: it must not go out with the old key either.
        from sqlalchemy import update

        from onepass.webhooks.models import WebhookOutboxEntry

        await session.execute(
            update(WebhookOutboxEntry)
            .where(WebhookOutboxEntry.id == waiting)
            .values(due_at=datetime.now(UTC) + timedelta(hours=1), attempts=1)
        )

    stop = asyncio.Event()
    async with Dispatcher.from_runtime(runtime) as dispatcher:
        running = asyncio.create_task(dispatcher.run(stop))
        await receiver.wait_for(lambda: len(receiver.deliveries) == 1)
        [first] = receiver.deliveries
        assert first.kids == [app.kid] and first.webhook_id == "in-flight"

        result = await compromise(runtime, app.id, app.kid)
        committed = datetime.now(UTC)
        release.set()  # the RP accepts the attempt signed before the compromise…

        # …but that attempt does not count: the entry goes again, with the new key only,
        # and so does the webhook_key.compromised event.
        await receiver.wait_for(lambda: len(receiver.deliveries) >= 3)
        await _until(lambda: _delivered(runtime, in_flight))
        stop.set()
        await running

    assert result.revoked_kid == app.kid and result.new_key.kid != app.kid
    assert result.restamped == 2  # both undelivered entries
    new_secret = result.new_key.secret
    for delivery in receiver.deliveries[1:]:
        assert delivery.kids == [result.new_key.kid]
        delivery.verify(new_secret)
        assert refuses(delivery, app.secret)
    by_id = {d.webhook_id: d for d in receiver.deliveries[1:]}
    assert set(by_id) == {"in-flight", f"webhook_key.compromised.{app.kid}"}
    event = by_id[f"webhook_key.compromised.{app.kid}"].verify(new_secret)
    assert event["type"] == "webhook_key.compromised"
    assert event["data"]["revoked_kid"] == app.kid and event["data"]["kid"] == result.new_key.kid

    history = await attempts(runtime, in_flight)
    assert [a.outcome for a in history] == ["discarded", "delivered"]
    assert history[0].signed_kids == [app.kid] and "revoked" in history[0].error
    assert history[1].signed_kids == [result.new_key.kid]
    # No attempt that started after the commit carries the revoked kid.
    for entry_row in await entries(runtime):
        for attempt in await attempts(runtime, entry_row.id):
            if attempt.started_at >= committed:
                assert app.kid not in attempt.signed_kids
    assert (await entry(runtime, waiting)).key_epoch == 1
    assert (await entry(runtime, in_flight)).delivered_at is not None
    assert receiver.at("/other") == [] and other.kid != app.kid


async def _delivered(runtime: Runtime, entry_id: int) -> bool:
    return (await entry(runtime, entry_id)).delivered_at is not None


async def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_compromise_refuses_an_unknown_or_already_revoked_kid(
    runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    other = await make_webhook_app(runtime, receiver.url(), name="other")
    with pytest.raises(SigningKeyNotFound, match="has no webhook signing key 'whk_nope'"):
        await compromise(runtime, app.id, "whk_nope")
    with pytest.raises(SigningKeyNotFound):  # another application's key is not this one's
        await compromise(runtime, app.id, other.kid)
    await compromise(runtime, app.id, app.kid)
    with pytest.raises(WebhookError, match="already revoked"):
        await compromise(runtime, app.id, app.kid)
    async with runtime.database.session() as session:
        keys = await service.list_keys(session, app.id)
    assert [k.state for k in keys] == ["active", "revoked"]  # exactly one new key


async def test_v1a_applications_sign_with_ed25519_verifiable_with_the_public_key_alone(
    runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url(), scheme="v1a")
    assert app.secret is None and app.public_key.startswith("whpk_")
    await enqueue(runtime, app.id, key="evt-v1a")
    await dispatch_once(runtime)

    [delivery] = receiver.deliveries
    [signature] = delivery.signatures
    scheme, encoded = signature.split(",")
    assert scheme == "v1a" and delivery.kids == [app.kid]
    public = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(app.public_key.removeprefix("whpk_"))
    )
    signed = b"%s.%s.%s" % (
        delivery.webhook_id.encode(),
        delivery.headers["webhook-timestamp"].encode(),
        delivery.body,
    )
    public.verify(base64.b64decode(encoded), signed)  # raises if wrong
    # Rotation keeps the scheme.
    assert (await rotate(runtime, app.id, grace=0)).scheme == "v1a"


async def test_secrets_are_encrypted_at_rest_and_bound_to_their_kid(
    runtime: Runtime, receiver: Receiver
) -> None:
    first = await make_webhook_app(runtime, receiver.url())
    second = await make_webhook_app(runtime, receiver.url(), name="second")
    async with runtime.database.session() as session:
        rows = {k.kid: k for k in await session.scalars(select(WebhookSigningKey))}
    raw = first.secret.removeprefix("whsec_")
    stored = rows[first.kid].secret_encrypted
    assert raw not in stored and first.secret not in stored
    assert service.load_signer(runtime.box, rows[first.kid]).secret == base64.b64decode(raw)
    # A ciphertext copied onto another key's row does not decrypt.
    rows[second.kid].secret_encrypted = stored
    with pytest.raises(DecryptionError):
        service.load_signer(runtime.box, rows[second.kid])


async def _fetch(http: httpx.AsyncClient, app: WebhookApp) -> httpx.Response:
    return await http.get("/webhooks/signing-keys", auth=(app.client_id, app.client_secret))


async def test_rp_fetches_its_current_keys_with_client_authentication(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    response = await _fetch(http, app)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["client_id"] == app.client_id and body["revoked_kids"] == []
    assert [(k["kid"], k["secret"], k["scheme"]) for k in body["keys"]] == [
        (app.kid, app.secret, "v1")
    ]

    new = await rotate(runtime, app.id, grace=3600)
    listed = (await _fetch(http, app)).json()["keys"]
    assert [k["kid"] for k in listed] == [new.kid, app.kid]
    assert listed[0]["secret"] == new.secret and listed[1]["expires_at"] is not None

    revoked = await compromise(runtime, app.id, new.kid)
    body = (await _fetch(http, app)).json()
    assert body["revoked_kids"] == [new.kid]
    kids = [k["kid"] for k in body["keys"]]
    assert new.kid not in kids and kids[0] == revoked.new_key.kid

    # Authentication works exactly as at the token endpoint: a client holding a secret
    # sends it either way, whichever method it registered.
    poster = await make_webhook_app(
        runtime, receiver.url(), name="poster", auth_method="client_secret_post"
    )
    form = {"client_id": poster.client_id, "client_secret": poster.client_secret}
    posted = await http.post("/webhooks/signing-keys", data=form)
    assert posted.status_code == 200 and posted.json()["keys"][0]["kid"] == poster.kid
    as_form = await http.post(
        "/webhooks/signing-keys",
        data={"client_id": app.client_id, "client_secret": app.client_secret},
    )
    assert as_form.status_code == 200
    assert as_form.json()["keys"] == (await _fetch(http, app)).json()["keys"]

    # The fetched secret verifies a real delivery.
    await enqueue(runtime, app.id, key="after-fetch")
    await dispatch_once(runtime)
    delivery = next(d for d in receiver.deliveries if d.webhook_id == "after-fetch")
    delivery.verify(body["keys"][0]["secret"])


async def test_signing_keys_endpoint_refuses_bad_credentials_in_rfc6749_form(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    app = await make_webhook_app(runtime, receiver.url())
    public = await make_webhook_app(runtime, receiver.url(), public=True, name="spa")

    wrong = await http.get("/webhooks/signing-keys", auth=(app.client_id, "wrong"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    unknown = await http.get("/webhooks/signing-keys", auth=("nobody", "x"))
    assert unknown.json() == wrong.json()  # no hint which clients exist

    none = await http.get("/webhooks/signing-keys")
    assert none.status_code == 401 and none.json()["error"] == "invalid_client"
    garbled = await http.get(
        "/webhooks/signing-keys", headers={"authorization": "Basic !!!not-base64"}
    )
    assert garbled.status_code == 401 and garbled.json()["error"] == "invalid_client"
    spa = await http.post("/webhooks/signing-keys", data={"client_id": public.client_id})
    assert spa.status_code == 400 and spa.json()["error"] == "unauthorized_client"
    json_body = await http.post(
        "/webhooks/signing-keys",
        json={"client_id": app.client_id},
        auth=(app.client_id, app.client_secret),
    )
    assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"
    huge = await http.post(
        "/webhooks/signing-keys",
        content=b"a=" + b"x" * 100_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413 and huge.json()["error"] == "invalid_request"
    for response in (wrong, unknown, none, garbled, spa, json_body, huge):
        assert app.secret not in response.text and "Traceback" not in response.text
