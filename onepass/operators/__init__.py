"""The operators domain: administrators, their TOTP second factor, admin API tokens,
step-up nonces, and the audit log's storage. The admin API and console
(``onepass.admin``) are its HTTP adapters; the playbook (``onepass.playbook``) its
only writer."""
