"""Webhook domain errors: each message says what is wrong and, where it helps, what to do.

They are refusals (``onepass.refusals``): the CLI reports them on stderr with a non-zero
exit, the admin API as its error, by kind (not found, conflict, invalid).
"""

from __future__ import annotations

from onepass.refusals import Conflict, Invalid, NotFound, Refusal


class WebhookError(Refusal):
    """A webhook operation that cannot be done; the message says why."""


class PayloadTooLarge(WebhookError, Invalid):
    pass


class DuplicateIdempotencyKey(WebhookError, Conflict):
    """The application already has an outbox entry with this idempotency key."""


class EntryNotFound(WebhookError, NotFound):
    pass


class SigningKeyNotFound(WebhookError, NotFound):
    pass


class UnknownEventType(WebhookError, Invalid):
    """A webhook event type 1pass does not send."""


class EventsWithoutUrl(WebhookError, Invalid):
    """Event types subscribed to without a webhook URL to send them to."""


class UnsafeWebhookTarget(WebhookError, Invalid):
    """A webhook URL or address that 1pass refuses to deliver to (SSRF protection)."""
