"""The dispatcher inside ``onepass serve`` (webhooks, and mail beside them:
``mail.delivery``), and the one-dispatcher rule on SQLite.

SQLite has no ``SKIP LOCKED``: one dispatcher per database file. The rule is kept by
an exclusive ``flock`` on a lock file beside the database
(``onepass.db.webhook-dispatcher.lock``): ``onepass webhooks dispatch`` refuses to
start while another holds it, and each ``onepass serve`` worker tries to take it, so
exactly one worker runs the dispatcher, however many there are. The others try again
every few seconds, so if that worker dies, another takes over. The operating system
releases the lock when its holder exits, even on SIGKILL.

On PostgreSQL no lock is needed: every worker may run a dispatcher (claims skip
each other's rows), but by default ``onepass serve`` runs none there, and
``onepass webhooks dispatch`` processes run beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import structlog

from onepass.mail.delivery import delivering
from onepass.runtime import Runtime
from onepass.settings import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("onepass.webhooks.embedded")

RETRY_LOCK_SECONDS = 5.0


def lock_path(settings: Settings) -> Path | None:
    """Where the one-dispatcher lock of a SQLite database lives (None for PostgreSQL)."""
    db_path = settings.sqlite_path()
    if db_path is None:
        return None
    return db_path.with_name(db_path.name + ".webhook-dispatcher.lock")


class DispatcherLock:
    """An exclusive, non-blocking ``flock`` held for as long as this object is open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        if fcntl is None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


async def run_embedded(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run a dispatcher in this process until ``stop``; on SQLite only if this
    process holds the database's dispatcher lock (tried again every few seconds)."""
    from onepass.webhooks.dispatcher import Dispatcher

    path = lock_path(runtime.settings)
    lock = DispatcherLock(path) if path is not None else None
    try:
        while not stop.is_set():
            if lock is None or lock.acquire():
                log.info("webhooks.embedded_dispatcher", pid=os.getpid(), lock=str(path or ""))
                try:
                    async with (
                        Dispatcher.from_runtime(runtime) as dispatcher,
                        delivering(runtime, stop),
                    ):
                        await dispatcher.run(stop)
                    return
                except Exception:  # keep serving; try again shortly
                    log.exception("webhooks.embedded_dispatcher_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY_LOCK_SECONDS)
    finally:
        if lock is not None:
            lock.release()
