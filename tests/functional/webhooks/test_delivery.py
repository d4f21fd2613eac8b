"""Delivery to a real receiver: every status class, Retry-After, timeouts, refusals.

Every delivery that reaches the receiver is verified with the independent
``standardwebhooks`` package.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from onepass.clock import FrozenClock
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks.safety import address_problem
from tests.webhook_helpers import (
    Receiver,
    attempts,
    dispatch_once,
    drain,
    enqueue,
    entry,
    make_webhook_app,
    runtime_with,
    sequence,
    status,
)


@pytest.mark.parametrize("code", [200, 202, 204])
async def test_2xx_is_delivered_signed_over_the_exact_body(
    runtime: Runtime, receiver: Receiver, code: int
) -> None:
    receiver.default = status(code, body=b"")
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id, key="evt-2xx", payload={"user": {"id": 7}})

    stats = await dispatch_once(runtime)

    assert stats.delivered == 1
    [delivery] = receiver.deliveries
    body = delivery.verify(app.secret)  # standardwebhooks: signature and timestamp
    assert body["type"] == "test.ping" and body["data"] == {"user": {"id": 7}}
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert delivery.webhook_id == "evt-2xx"
    assert delivery.kids == [app.kid]
    assert delivery.headers["Content-Type"] == "application/json"
    done = await entry(runtime, entry_id)
    assert done.delivered_at is not None and done.dlq_at is None
    assert (done.attempts, done.last_status_code, done.last_error) == (1, code, None)
    assert done.leased_by is None and done.lease_expires_at is None
    [attempt] = await attempts(runtime, entry_id)
    assert (attempt.attempt, attempt.status_code, attempt.outcome) == (1, code, "delivered")
    assert attempt.signed_kids == [app.kid] and attempt.error is None


async def test_409_means_already_processed_delivered_never_dead(
    runtime: Runtime, receiver: Receiver
) -> None:
    receiver.default = status(409, body=b'{"error":"duplicate"}')
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)

    receiver.deliveries[0].verify(app.secret)
    done = await entry(runtime, entry_id)
    assert done.delivered_at is not None and done.dlq_at is None
    assert done.last_status_code == 409 and "already processed" in done.last_error
    [attempt] = await attempts(runtime, entry_id)
    assert attempt.outcome == "delivered" and attempt.response_body == '{"error":"duplicate"}'


@pytest.mark.parametrize("code", [500, 503, 408, 429])
async def test_retryable_status_retries_on_the_schedule_then_dead_letters(
    runtime: Runtime, receiver: Receiver, code: int
) -> None:
    receiver.default = status(code, body=b"busy")
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id, key="evt-retry")

    await dispatch_once(runtime)
    first = await entry(runtime, entry_id)
    assert first.delivered_at is None and first.dlq_at is None
    assert first.attempts == 1 and first.last_status_code == code
    assert first.next_retry_at is not None
    assert f"HTTP {code}" in first.last_error and "attempt 2 of 3" in first.last_error

    await drain(runtime)  # the test schedule: 50 ms, 50 ms

    dead = await entry(runtime, entry_id)
    assert dead.dlq_at is not None and dead.delivered_at is None
    assert dead.attempts == 3 and dead.last_status_code == code
    assert "gave up after 3 attempts" in dead.last_error
    assert [a.outcome for a in await attempts(runtime, entry_id)] == ["retry", "retry", "dead"]
    # The same webhook-id on every attempt; each one freshly and validly signed.
    assert [d.webhook_id for d in receiver.deliveries] == ["evt-retry"] * 3
    for delivery in receiver.deliveries:
        delivery.verify(app.secret)


async def test_a_retry_that_succeeds_is_delivered(runtime: Runtime, receiver: Receiver) -> None:
    receiver.default = sequence(status(503), status(502), status(200))
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)

    await drain(runtime)

    done = await entry(runtime, entry_id)
    assert done.delivered_at is not None and done.attempts == 3 and done.dlq_at is None
    assert done.last_status_code == 200 and done.last_error is None


@pytest.mark.parametrize("code", [400, 401, 404, 410, 422])
async def test_other_4xx_dead_letters_at_once(
    runtime: Runtime, receiver: Receiver, code: int
) -> None:
    receiver.default = status(code)
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)

    receiver.deliveries[0].verify(app.secret)
    dead = await entry(runtime, entry_id)
    assert dead.dlq_at is not None and dead.delivered_at is None and dead.attempts == 1
    assert dead.last_status_code == code and "not retried" in dead.last_error
    assert len(receiver.deliveries) == 1


async def test_redirects_are_not_followed(runtime: Runtime, receiver: Receiver) -> None:
    receiver.routes["/hook"] = status(302, headers={"Location": receiver.url("/elsewhere")})
    app = await make_webhook_app(runtime, receiver.url("/hook"))
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)

    assert receiver.at("/elsewhere") == []
    dead = await entry(runtime, entry_id)
    assert dead.dlq_at is not None and dead.last_status_code == 302
    assert "redirects are not followed" in dead.last_error


async def test_retry_after_is_honoured_clamped_and_read_as_a_date(
    settings: Settings, receiver: Receiver
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    runtime = await runtime_with(
        settings.model_copy(update={"webhook_retry_after_max": 600}), clock
    )
    try:
        app = await make_webhook_app(runtime, receiver.url())
        start = clock.now()
        receiver.routes["/hook"] = status(429, headers={"Retry-After": "120"})
        seconds = await enqueue(runtime, app.id, key="seconds")
        await dispatch_once(runtime)
        assert (await entry(runtime, seconds)).next_retry_at == start + timedelta(seconds=120)

        receiver.routes["/hook"] = status(503, headers={"Retry-After": "86400000"})
        clamped = await enqueue(runtime, app.id, key="clamped")
        await dispatch_once(runtime)
        assert (await entry(runtime, clamped)).next_retry_at == start + timedelta(seconds=600)

        when = format_datetime(start + timedelta(seconds=200), usegmt=True)
        receiver.routes["/hook"] = status(503, headers={"Retry-After": when})
        dated = await enqueue(runtime, app.id, key="dated")
        await dispatch_once(runtime)
        delay = (await entry(runtime, dated)).next_retry_at - start
        assert timedelta(seconds=199) < delay <= timedelta(seconds=200)

        # Nothing is due until the clock reaches the Retry-After.
        receiver.routes["/hook"] = status(200)
        sent = len(receiver.deliveries)
        clock.advance(119)
        await dispatch_once(runtime)
        assert len(receiver.deliveries) == sent
        clock.advance(2)
        await dispatch_once(runtime)
        assert [d.webhook_id for d in receiver.deliveries[sent:]] == ["seconds"]
        receiver.deliveries[-1].verify(app.secret)
        assert (await entry(runtime, seconds)).delivered_at == clock.now()
    finally:
        await runtime.close()


async def test_timeout_is_retried_and_says_so(runtime: Runtime, receiver: Receiver) -> None:
    from tests.webhook_helpers import hang

    receiver.default = hang()
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)  # ONEPASS_WEBHOOK_TIMEOUT=0.5 in these tests

    late = await entry(runtime, entry_id)
    assert late.attempts == 1 and late.dlq_at is None and late.next_retry_at is not None
    assert late.last_status_code is None and "no response within 0.5 s" in late.last_error
    [attempt] = await attempts(runtime, entry_id)
    assert attempt.error_class == "timeout" and attempt.signed_kids == [app.kid]


async def test_connection_refused_is_retried_and_says_so(runtime: Runtime) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    app = await make_webhook_app(runtime, f"http://127.0.0.1:{port}/hook")
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)

    failed = await entry(runtime, entry_id)
    assert failed.attempts == 1 and failed.dlq_at is None and failed.next_retry_at is not None
    assert f"could not connect to 127.0.0.1:{port}" in failed.last_error
    assert (await attempts(runtime, entry_id))[0].error_class == "connection"


async def test_response_body_is_read_only_up_to_the_cap(
    runtime: Runtime, receiver: Receiver
) -> None:
    receiver.default = status(500, body=b"x" * 1_000_000)
    app = await make_webhook_app(runtime, receiver.url())
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)

    [attempt] = await attempts(runtime, entry_id)
    assert attempt.response_body == "x" * runtime.settings.webhook_max_response_bytes


async def test_private_and_loopback_targets_are_refused_unless_allowed(
    settings: Settings, runtime: Runtime, receiver: Receiver
) -> None:
    # A host name that resolves to this machine (a private or loopback address): only
    # the resolver, at connection time, can tell.
    host = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    assert all(address_problem(ipaddress.ip_address(a)) for a in addresses), addresses
    by_address = await make_webhook_app(runtime, receiver.url(), name="by address")
    by_name = await make_webhook_app(runtime, f"http://{host}:{receiver.port}/hook", name="by name")
    address_entry = await enqueue(runtime, by_address.id)
    name_entry = await enqueue(runtime, by_name.id)
    strict = await runtime_with(
        settings.model_copy(update={"webhook_allow_private_targets": False})
    )
    try:
        await dispatch_once(strict)
    finally:
        await strict.close()

    assert receiver.deliveries == []
    refused = await entry(runtime, address_entry)
    assert refused.dlq_at is not None and "127.0.0.1 is a loopback address" in refused.last_error
    resolved = await entry(runtime, name_entry)
    assert resolved.dlq_at is not None
    assert f"{host} resolves only to refused addresses" in resolved.last_error
    assert (await attempts(runtime, name_entry))[0].error_class == "unsafe_target"


async def test_an_application_without_signing_key_waits_with_a_reason(
    runtime: Runtime, receiver: Receiver
) -> None:
    from sqlalchemy import delete

    from onepass.webhooks.models import WebhookSigningKey

    app = await make_webhook_app(runtime, receiver.url())
    async with runtime.database.session() as session:
        await session.execute(delete(WebhookSigningKey))
    entry_id = await enqueue(runtime, app.id)

    await dispatch_once(runtime)

    assert receiver.deliveries == []
    waiting = await entry(runtime, entry_id)
    assert waiting.dlq_at is None and waiting.next_retry_at is not None
    assert "no valid webhook signing key" in waiting.last_error
