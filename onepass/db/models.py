"""Every domain's models, imported in one place so Alembic sees the whole schema."""

from onepass.accounts.models import LoginSession, User
from onepass.db.base import Base
from onepass.keys.models import SigningKey
from onepass.oauth.models import (
    AuthorizationCode,
    Consent,
    OAuthApplication,
    RefreshToken,
    RevokedAccessToken,
)

metadata = Base.metadata

__all__ = [
    "AuthorizationCode",
    "Consent",
    "LoginSession",
    "OAuthApplication",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKey",
    "User",
    "metadata",
]
