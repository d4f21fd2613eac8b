"""The playbook: every state-changing operator procedure, one module per chapter.

- ``webhooks``: retry an outbox entry, replay an application's dead letters, test pings;
- ``keys``: rotate the JWKS signing keys, rotate or revoke (compromise) an RP's webhook key;
- ``merges``: merge two users;
- ``cache``: drop cached canonical-user resolutions;
- ``incidents``: open, update, acknowledge, resolve, escalate;
- ``clients``: register, update, disable, enable, delete an RP, rotate its secret;
- ``users``: create, update, disable, enable and delete users, set their password, end
  their sessions, revoke their consents (and the ``user.*`` webhooks);
- ``admins``: administrators, their TOTP enrolment, admin API tokens; disable, enable,
  reset their second factor;
- ``console``: the audit rows of console sign-in and sign-out;
- ``actions``: the actions that need a step-up, the step-up, refusals' audit rows.

Each function takes the process's ``Runtime``, an ``Actor`` where the change is audited,
and the procedure's arguments; it owns the transaction, takes the procedure's lock and
writes the audit row in the same transaction as the change. It returns what the CLI
prints with ``--json`` and the admin API answers. Refusals are the domains'
(``onepass.refusals``). The CLI, the admin API and the console change state only
through these functions; the rules themselves live in the domains they call.
"""
