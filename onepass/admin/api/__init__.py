"""``/api/v1/admin``: the playbook over HTTP, for the admin console and for scripts.

``base`` holds the router and what every route shares (the caller, bodies, ``change``);
each other module adds the routes of one resource to that router.
"""

from onepass.admin.api import (  # noqa: F401  (they add their routes)
    administrators,
    audit,
    clients,
    identity,
    keys,
    stepup,
    users,
    webhooks,
)
from onepass.admin.api.base import router

__all__ = ["router"]
