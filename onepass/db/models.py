"""Every domain's models, imported in one place so Alembic sees the whole schema."""

from onepass.db.base import Base
from onepass.keys.models import SigningKey
from onepass.oauth.models import OAuthApplication

metadata = Base.metadata

__all__ = ["OAuthApplication", "SigningKey", "metadata"]
