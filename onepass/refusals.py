"""The refusal family: what a domain raises when it will not do what was asked.

A refusal is an answer, not a failure: the message says why, for the operator or the
administrator who asked. Each domain has a family of its own (``AccountError``,
``WebhookError``, ``MergeError``, …, subclasses of ``Refusal``) and each concrete
refusal says which kind it is:

- ``NotFound``: what was named does not exist (the admin API's 404);
- ``Conflict``: it exists, but its state forbids this (409);
- ``Invalid``: the request itself is wrong, whatever the state (400);
- ``Denied``: the caller may not do this, or not now (401, 403, 429: the admin API
  decides which from the refusal's class).

A refusal of no kind is answered as a conflict. Adapters (the CLI, the admin API and
its console) catch ``Refusal`` and nothing broader: any other exception is a bug, a
traceback in the log and a 500 or a failing command, never a tidy 409.
"""

from __future__ import annotations


class Refusal(Exception):
    """A domain's refusal; ``str(refusal)`` says why."""


class NotFound(Refusal):
    """What was named does not exist."""


class Conflict(Refusal):
    """What was named exists, but its state forbids the operation."""


class Invalid(Refusal):
    """The request is wrong in itself (a value out of range, a malformed name)."""


class Denied(Refusal):
    """The caller may not do this (not authenticated, not allowed, not now)."""
