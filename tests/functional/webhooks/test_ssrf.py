"""SSRF: webhook URLs that spell a loopback address some other way never reach it.

A real receiver listens on 127.0.0.1 and private targets are disallowed, as in
production. A URL stored before the current rules (or written to the database
directly) is refused when it is delivered, and the connector refuses a blocked
address even if a URL got past every check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import update

from onepass.clients.models import OAuthApplication
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.webhooks import resolver, safety
from tests.webhook_helpers import (
    Receiver,
    attempts,
    dispatch_once,
    enqueue,
    entry,
    make_webhook_app,
    runtime_with,
)

FULLWIDTH = str.maketrans(
    "0123456789.", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff0e"
)


def loopback_spellings(port: int) -> dict[str, str]:
    """127.0.0.1:port as the attack review wrote it, and the forms next to it."""
    return {
        "fullwidth digits": f"http://{'127.0.0.1'.translate(FULLWIDTH)}:{port}/x",
        "circled digits": f"http://\u2460\u2461\u2466.0.0.1:{port}/x",
        "ideographic full stops": f"http://127\u30020\u30020\u30021:{port}/x",
        "SIIT (RFC 2765)": f"http://[::ffff:0:127.0.0.1]:{port}/x",
        "IPv4-mapped": f"http://[::ffff:127.0.0.1]:{port}/x",
        "short IPv4": f"http://127.1:{port}/x",
    }


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[Runtime]:
    """The same database with private targets disallowed (the production default)."""
    runtime = await runtime_with(
        settings.model_copy(update={"webhook_allow_private_targets": False})
    )
    yield runtime
    await runtime.close()


async def set_webhook_url(runtime: Runtime, app_id: int, url: str) -> None:
    """Write a webhook URL as an old release (or an UPDATE by hand) left it."""
    async with runtime.database.session() as session:
        await session.execute(
            update(OAuthApplication).where(OAuthApplication.id == app_id).values(webhook_url=url)
        )


async def test_unicode_loopback_urls_in_the_database_are_refused_at_delivery(
    runtime: Runtime, strict: Runtime, receiver: Receiver
) -> None:
    entry_ids = {}
    for name, url in loopback_spellings(receiver.port).items():
        app = await make_webhook_app(runtime, receiver.url(), name=name)
        await set_webhook_url(runtime, app.id, url)
        entry_ids[name] = await enqueue(runtime, app.id)

    await dispatch_once(strict)

    assert receiver.deliveries == []
    for name, entry_id in entry_ids.items():
        refused = await entry(runtime, entry_id)
        assert refused.dlq_at is not None and refused.delivered_at is None, name
        [attempt] = await attempts(runtime, entry_id)
        assert attempt.error_class == "unsafe_target", (name, attempt.error)
        assert attempt.status_code is None, name
        assert "127.0.0.1" in refused.last_error or "127.1" in refused.last_error, name


async def test_the_dispatcher_connects_to_no_blocked_address_even_past_the_url_check(
    runtime: Runtime, strict: Runtime, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Should a URL form ever get past check_url, the connection itself refuses: the
    # connector checks the address of each socket before connecting, literals included.
    literal = await make_webhook_app(runtime, receiver.url(), name="literal")
    unicode = await make_webhook_app(runtime, receiver.url(), name="unicode")
    await set_webhook_url(
        runtime, unicode.id, loopback_spellings(receiver.port)["fullwidth digits"]
    )
    entry_ids = [await enqueue(runtime, literal.id), await enqueue(runtime, unicode.id)]
    monkeypatch.setattr(safety, "check_url", lambda url, **_: None)

    await dispatch_once(strict)

    assert receiver.deliveries == []
    for entry_id in entry_ids:
        refused = await entry(runtime, entry_id)
        assert refused.dlq_at is not None, refused.last_error
        assert "refused to connect to 127.0.0.1, a loopback address" in refused.last_error
        assert (await attempts(runtime, entry_id))[0].error_class == "unsafe_target"


async def test_the_connector_refuses_blocked_literals_and_allows_them_only_when_told(
    receiver: Receiver,
) -> None:
    urls = [receiver.url(), *loopback_spellings(receiver.port).values()]
    urls.remove(loopback_spellings(receiver.port)["short IPv4"])  # aiohttp refuses it itself
    async with aiohttp.ClientSession(
        connector=resolver.connector(limit=4, allow_private=False)
    ) as session:
        for url in urls:
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await session.post(url, data=b"{}")
            assert isinstance(refused.value.os_error, resolver.UnsafeAddressError), url
    assert receiver.deliveries == []

    async with aiohttp.ClientSession(
        connector=resolver.connector(limit=4, allow_private=True)
    ) as session:
        async with session.post(receiver.url(), data=b"{}") as response:
            assert response.status == 200
    assert len(receiver.deliveries) == 1
