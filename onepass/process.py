"""Settings of a long-running server process (``onepass serve``, ``onepass webhooks
dispatch``), applied once start-up is done.

Python's cyclic garbage collector scans every tracked object of a generation when it
collects it, and the oldest generation holds everything imported at start (SQLAlchemy,
FastAPI, aiohttp: a few hundred thousand objects that live as long as the process).
Collections of it, triggered by the garbage of ordinary requests, took 30 % of a
webhook dispatcher's CPU (bench/webhook_dispatch.py: 49 µs per delivery). ``gc.freeze``
moves what exists once start-up is done out of the collector's sight, and a larger
first threshold makes collections of new objects rarer; both leave reference counting,
which frees almost everything, as it is.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
from types import FrameType

# Allocations (minus deallocations) between collections of the youngest generation;
# Python's default is 700.
GEN0_THRESHOLD = 10_000


def settle_gc() -> None:
    """Collect once, then keep the objects of start-up out of every later collection."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


class Draining:
    """Graceful shutdown's first step: once SIGTERM arrives, ``/readyz`` answers 503 for
    ``delay`` seconds while requests are still served, so that a load balancer polling it
    stops sending new ones; then the server's own shutdown runs (uvicorn stops accepting,
    finishes the requests in flight within its grace period, then the lifespan ends).

    Installed from inside the server (after uvicorn captured the signals), it wraps
    uvicorn's handler rather than replacing it."""

    def __init__(self) -> None:
        self.since: float | None = None

    @property
    def active(self) -> bool:
        return self.since is not None

    def install(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return

        def on_term(sig: int, frame: FrameType | None) -> None:
            if self.since is not None:
                previous(sig, frame)  # a second SIGTERM: stop now
                return
            self.since = time.monotonic()
            if delay <= 0:
                previous(sig, frame)
            else:
                loop.call_soon_threadsafe(loop.call_later, delay, previous, sig, None)

        signal.signal(signal.SIGTERM, on_term)


DRAINING = Draining()
