"""Alembic environment: always called with a connection from ``onepass.db.migrate``.

The one place that imports every domain's models, so that Alembic sees the whole
schema (``onepass.db`` itself imports no domain). A new domain's ``models`` goes here.
"""

from alembic import context

import onepass.accounts.models
import onepass.clients.models
import onepass.db.installation
import onepass.identity.models
import onepass.keys.models
import onepass.mail.models
import onepass.oauth.models
import onepass.operators.models
import onepass.ops.models
import onepass.webhooks.models  # noqa: F401 (each import registers its tables)
from onepass.db.base import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `onepass db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
