"""Storage: one SQLAlchemy model, two engines (SQLite embedded, PostgreSQL in production)."""

from onepass.db.base import Base
from onepass.db.engine import Database, to_async_url

__all__ = ["Base", "Database", "to_async_url"]
