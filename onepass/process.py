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

import gc

# Allocations (minus deallocations) between collections of the youngest generation;
# Python's default is 700.
GEN0_THRESHOLD = 10_000


def settle_gc() -> None:
    """Collect once, then keep the objects of start-up out of every later collection."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
