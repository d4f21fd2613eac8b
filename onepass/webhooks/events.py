"""Webhook event types: every type 1pass can send, in one place."""

from __future__ import annotations

from enum import StrEnum

from onepass.webhooks.errors import UnknownEventType


class EventType(StrEnum):
    # Sent on demand (``onepass webhooks ping``); always delivered to an application
    # with a webhook URL, whatever it subscribed to.
    TEST_PING = "test.ping"
    # A user was merged into another (identity_links); RPs mirror the link.
    IDENTITY_LINK_CREATED = "identity.link.created"
    # One of the application's webhook signing keys was revoked as compromised;
    # always delivered, signed only with the keys still valid.
    WEBHOOK_KEY_COMPROMISED = "webhook_key.compromised"
    # A user's profile changed (`users update`): its sub and the names of the fields.
    USER_UPDATED = "user.updated"
    # A user was disabled (their sessions ended, their tokens revoked) or enabled again.
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    # A user was deleted: their personal data erased; RPs erase theirs.
    USER_DELETED = "user.deleted"
    # A user's consent to the application was revoked, by the user (their account
    # page) or an operator: ``{"sub", "client_id", "revoked_at"}``; the refresh tokens
    # the application held for the user are revoked with it.
    CONSENT_REVOKED = "consent.revoked"

    # The application's registration was changed by an operator (``clients update``):
    # ``{"client_id", "changed": [field names], "updated_at"}``, never a secret.
    CLIENT_UPDATED = "client.updated"

    # OpenID Connect Back-Channel Logout 1.0: not a webhook but a logout token POSTed to
    # the application's ``backchannel_logout_uri`` (``webhooks.logout_tokens``), carried
    # by the outbox so that it is retried, dead-lettered and replayed like one. Sent to
    # every application with that URI that had a session of the user
    # (``oauth.backchannel``), whether or not it has a webhook URL; never subscribed to.
    OIDC_BACKCHANNEL_LOGOUT = "oidc.backchannel_logout"

    # OpenID Shared Signals Framework 1.0: not a webhook but a Security Event Token
    # (RFC 8417) POSTed to the application's SSF stream endpoint (RFC 8935,
    # ``webhooks.secevents``), carried by the outbox so that it is retried,
    # dead-lettered and replayed like one. Enqueued only for an application whose push
    # stream asked for the event (``oauth.ssf``); never subscribed to as a webhook.
    SSF_SET = "ssf.set"


# Delivered whether or not the application subscribed to them.
ALWAYS_DELIVERED = frozenset({EventType.TEST_PING, EventType.WEBHOOK_KEY_COMPROMISED})
# Not webhooks: they go elsewhere than the webhook URL, and no application subscribes to
# them (``--event`` refuses them).
NOT_WEBHOOKS = frozenset({EventType.OIDC_BACKCHANNEL_LOGOUT, EventType.SSF_SET})


def parse_event_type(value: str) -> EventType:
    """The event type named ``value``; ``UnknownEventType`` naming the known types otherwise."""
    try:
        return EventType(value)
    except ValueError:
        known = ", ".join(e.value for e in EventType)
        raise UnknownEventType(
            f"unknown webhook event type {value[:100]!r}; known: {known}"
        ) from None
