"""Administrators: admin API tokens, step-up nonces (``action_request_nonce``), the
audit log, the ``/api/v1/admin`` routes and the ``/admin`` pages."""
