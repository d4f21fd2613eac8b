"""``/admin``: the admin console, server-rendered pages without JavaScript.

The playbook's "single retry: the admin UI is recommended — step-up authentication
required". An administrator signs in with email, password and a TOTP code
(``console_service``); the pages read the webhook outbox, the mail outbox (``mail``)
and the audit log, and manage applications, users and administrators
(``applications``, ``users``, ``administrators``), and an administrator's own
passkeys (``passkeys``, the one part that runs a script: WebAuthn); every
change asks for a fresh TOTP code (or a passkey's answer), which becomes at once a step-up nonce
(``playbook.actions.grant_step_up``) that the action spends (``spend_nonce``) before
it runs (``onepass.playbook``), exactly as through the admin API. Refusals are audited.

Every page has the login pages' headers (no frames, no caching); every POST carries
the CSRF form token; the console cookie is HttpOnly, SameSite=Strict, Path=/admin.
"""

from onepass.admin.console import (  # noqa: F401  (they add their routes)
    administrators,
    applications,
    mail,
    pages,
    passkeys,
    signin,
    users,
)
from onepass.admin.console.web import router

__all__ = ["router"]
