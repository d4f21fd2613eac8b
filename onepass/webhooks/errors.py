"""Webhook domain errors: each message says what is wrong and, where it helps, what to do.

They are ``ValueError``s, so the CLI reports them on stderr with a non-zero exit.
"""

from __future__ import annotations


class WebhookError(ValueError):
    """A webhook operation that cannot be done; the message says why."""


class PayloadTooLarge(WebhookError):
    pass


class DuplicateIdempotencyKey(WebhookError):
    """The application already has an outbox entry with this idempotency key."""


class EntryNotFound(WebhookError):
    pass


class SigningKeyNotFound(WebhookError):
    pass


class UnsafeWebhookTarget(WebhookError):
    """A webhook URL or address that 1pass refuses to deliver to (SSRF protection)."""
