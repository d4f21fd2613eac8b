"""Every domain's models, imported in one place so Alembic sees the whole schema."""

from onepass.accounts.models import LoginSession, User
from onepass.db.base import Base
from onepass.identity.models import IdentityLink
from onepass.keys.models import SigningKey
from onepass.oauth.models import (
    AuthorizationCode,
    Consent,
    OAuthApplication,
    RefreshToken,
    RevokedAccessToken,
)
from onepass.operators.models import ActionRequestNonce, AdminToken, AuditLogEntry
from onepass.ops.models import Incident, IncidentUpdate
from onepass.webhooks.models import WebhookDeliveryAttempt, WebhookOutboxEntry, WebhookSigningKey

metadata = Base.metadata

__all__ = [
    "ActionRequestNonce",
    "AdminToken",
    "AuditLogEntry",
    "AuthorizationCode",
    "Consent",
    "IdentityLink",
    "Incident",
    "IncidentUpdate",
    "LoginSession",
    "OAuthApplication",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKey",
    "User",
    "WebhookDeliveryAttempt",
    "WebhookOutboxEntry",
    "WebhookSigningKey",
    "metadata",
]
