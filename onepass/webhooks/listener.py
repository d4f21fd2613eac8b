"""PostgreSQL LISTEN for dispatchers: a new outbox entry or a key change wakes them at once.

One dedicated asyncpg connection per dispatcher. If it drops, the dispatcher keeps
polling (the fallback) while this reconnects with a growing delay; ``connected`` says
whether notifications are arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

log = structlog.get_logger("onepass.webhooks.listener")


class Listener:
    def __init__(self, url: str, handlers: dict[str, Callable[[str], None]]) -> None:
        self._url = make_url(url)
        self._handlers = handlers
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._ready = asyncio.Event()
        self.connected = False

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; wait (up to ``wait`` seconds) for the first connection."""
        self._task = asyncio.create_task(self._run(), name="webhooks-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None and not self._connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), 2)
        self.connected = False

    async def _run(self) -> None:
        delay = 0.5
        while True:
            closed = asyncio.Event()
            try:
                self._connection = await asyncpg.connect(
                    host=self._url.host,
                    port=self._url.port or 5432,
                    user=self._url.username,
                    password=self._url.password,
                    database=self._url.database,
                    timeout=5,
                )
                self._connection.add_termination_listener(_on_close(closed))
                for channel, handler in self._handlers.items():
                    await self._connection.add_listener(channel, _callback(handler))
                self.connected = True
                delay = 0.5
                log.info("webhooks.listen_connected", channels=list(self._handlers))
                self._ready.set()
                # A notification may have been missed while disconnected: look now.
                for handler in self._handlers.values():
                    handler("")
                await closed.wait()
                log.warning("webhooks.listen_disconnected", fallback="polling")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, auth, …: keep polling, retry
                log.warning("webhooks.listen_failed", error=type(exc).__name__, retry_in=delay)
            finally:
                self.connected = False
            self._ready.set()  # do not hold up start() while PostgreSQL is away
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def _on_close(closed: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: closed.set()


def _callback(handler: Callable[[str], None]) -> Callable[..., None]:
    def on_notification(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        handler(payload)

    return on_notification
