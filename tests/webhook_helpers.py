"""A real webhook receiver for tests: an aiohttp server on 127.0.0.1 that records every
delivery, answers as each test tells it to, and verifies signatures with the
independent ``standardwebhooks`` package."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from onepass.clients import registry as clients
from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.runtime import Runtime
from onepass.settings import Settings
from onepass.startup import prepare
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks import outbox
from onepass.webhooks.dispatcher import Dispatcher, Stats
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    answered_status: int | None = None

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def kids(self) -> list[str]:
        return self.headers.get("webhook-signature-kids", "").split()

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """The payload, verified with ``standardwebhooks`` against ``secret``; raises if not."""
        return Webhook(secret).verify(self.body, self.headers)


Handler = Callable[[Delivery, web.Request], Awaitable[web.StreamResponse]]


def status(code: int, *, headers: dict[str, str] | None = None, body: bytes = b"ok") -> Handler:
    async def handler(_delivery: Delivery, _request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body, headers=headers)

    return handler


def hang(release: asyncio.Event | None = None, then: int = 200) -> Handler:
    """Hold the request open until ``release`` is set (or the client gives up)."""

    async def handler(_delivery: Delivery, _request: web.Request) -> web.StreamResponse:
        if release is None:
            await asyncio.Event().wait()
        else:
            await release.wait()
        return web.Response(status=then, body=b"late")

    return handler


def sequence(*handlers: Handler) -> Handler:
    """The first request gets the first handler, …; the last one answers the rest."""
    calls = {"n": 0}

    async def handler(delivery: Delivery, request: web.Request) -> web.StreamResponse:
        index = min(calls["n"], len(handlers) - 1)
        calls["n"] += 1
        return await handlers[index](delivery, request)

    return handler


class Receiver:
    """The RP's webhook endpoint. ``routes[path]`` answers requests to that path."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.routes: dict[str, Handler] = {}
        self.default: Handler = status(200)
        self.in_flight: dict[str, int] = {}
        self.max_in_flight_per_id = 0
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        delivery = Delivery(request.path, dict(request.headers), await request.read())
        self.deliveries.append(delivery)
        self.arrived.set()
        key = delivery.headers.get("webhook-id", "")
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.max_in_flight_per_id = max(self.max_in_flight_per_id, self.in_flight[key])
        try:
            response = await self.routes.get(request.path, self.default)(delivery, request)
            delivery.answered_status = response.status
            return response
        finally:
            delivery.answered_at = time.time()
            self.in_flight[key] -= 1

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.deliveries)}")
            await asyncio.sleep(0.01)


class ThreadedReceiver(Receiver):
    """A ``Receiver`` on its own event loop in a thread, for tests that run subprocesses."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> ThreadedReceiver:
        asyncio.run_coroutine_threadsafe(self.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the receiver's loop (to set an asyncio.Event, say)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.deliveries)}")
            time.sleep(0.02)


@dataclass
class WebhookApp:
    id: int
    client_id: str
    client_secret: str | None
    kid: str
    secret: str | None  # whsec_… (v1)
    public_key: str | None = None  # whpk_… (v1a)


async def make_webhook_app(
    runtime: Runtime,
    url: str,
    *,
    events: list[str] | None = None,
    scheme: str = "v1",
    public: bool = False,
    name: str = "webhook app",
    auth_method: str | None = None,
) -> WebhookApp:
    """An application with a webhook URL and its first signing key, made as the CLI does."""
    async with runtime.database.session() as session:
        new = await clients.create_client(
            session,
            runtime.hasher,
            runtime.clock,
            name=name,
            grant_types=["authorization_code"] if public else ["client_credentials"],
            redirect_uris=["https://rp.example/cb"] if public else None,
            public=public,
            token_endpoint_auth_method=auth_method,
            scope="" if not public else None,
            webhook_url=url,
            webhook_events=events or [],
        )
        key = await webhook_keys.setup_application(
            session,
            runtime.box,
            runtime.clock,
            new.application,
            scheme=scheme,
            production=False,
            allow_private=True,
        )
    assert key is not None
    return WebhookApp(
        new.application.id,
        new.application.client_id,
        new.client_secret,
        key.kid,
        key.secret,
        key.public_key,
    )


async def enqueue(
    runtime: Runtime,
    app_id: int,
    *,
    key: str | None = None,
    payload: dict[str, Any] | None = None,
    event_type: str = "test.ping",
) -> int:
    """One webhook for an application, committed; returns the entry id."""
    async with runtime.database.session(exclusive=outbox.OUTBOX_LOCK) as session:
        application = await session.get(OAuthApplication, app_id)
        assert application is not None
        entry_id = await outbox.enqueue(
            session,
            application,
            event_type,
            payload if payload is not None else {"hello": "world"},
            key or f"evt-{uuid.uuid4().hex}",
            clock=runtime.clock,
        )
    assert entry_id is not None
    return entry_id


async def dispatch_once(runtime: Runtime, **options: Any) -> Stats:
    options.setdefault("listen", False)
    async with Dispatcher.from_runtime(runtime, **options) as dispatcher:
        return await dispatcher.run_once()


async def drain(runtime: Runtime, *, passes: int = 60) -> None:
    """Dispatch until nothing is pending (the test schedule retries after 50 ms)."""
    for _ in range(passes):
        await dispatch_once(runtime)
        if not await entries(runtime, status="pending"):
            return
        await asyncio.sleep(0.06)
    raise AssertionError("entries still pending after the schedule should have run out")


async def entries(runtime: Runtime, **filters: Any) -> list[WebhookOutboxEntry]:
    async with runtime.database.session() as session:
        return await outbox.list_entries(session, **filters)


async def entry(runtime: Runtime, entry_id: int) -> WebhookOutboxEntry:
    async with runtime.database.session() as session:
        return await outbox.get_entry(session, entry_id)


async def attempts(runtime: Runtime, entry_id: int) -> list[WebhookDeliveryAttempt]:
    async with runtime.database.session() as session:
        return await outbox.list_attempts(session, entry_id)


async def runtime_with(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Another runtime on the same database (other settings, or a frozen clock)."""
    runtime = Runtime.build(settings, clock)
    await prepare(runtime)
    return runtime
