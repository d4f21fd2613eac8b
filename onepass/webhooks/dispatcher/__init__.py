"""The webhook dispatcher: claim due entries, sign them, deliver them, record the outcome.

Along its seams:

- ``loop``: ``Dispatcher``, the claim loop and its wake-up rules (when a claim is worth
  its statement, how much it takes of each application), and shutting down;
- ``targets``: each application's URL and valid signing keys, read for every batch;
- ``attempt``: one HTTP attempt and its failure taxonomy (``Result``);
- ``recording``: results written in batches, fenced by the lease token (``Stats``).

The statements are the store's (``webhooks/store.py``: PostgreSQL, SQLAlchemy;
``webhooks/memory_store.py`` for the loop's unit tests). Delivery policy: ``retry.py``.
Signatures: ``signing.py``. Address checks: ``safety.py`` and ``resolver.py``.
"""

from __future__ import annotations

from onepass.webhooks.dispatcher.attempt import USER_AGENT, Result
from onepass.webhooks.dispatcher.loop import DATABASE_ERRORS, Dispatcher, default_name
from onepass.webhooks.dispatcher.recording import Stats
from onepass.webhooks.dispatcher.targets import MAX_SIGNING_KEYS, Target

__all__ = [
    "DATABASE_ERRORS",
    "MAX_SIGNING_KEYS",
    "USER_AGENT",
    "Dispatcher",
    "Result",
    "Stats",
    "Target",
    "default_name",
]
