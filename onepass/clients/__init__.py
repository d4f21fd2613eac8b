"""The relying parties (RPs) 1pass serves: the registry of OAuth applications.

- ``models``: the ``oauth_applications`` table (``OAuthApplication``).
- ``registry``: create, find, list, rotate a secret, delete; ``ClientRecord`` (the
  client as the protocol sees it) and ``ClientCache`` (per process, by ``client_id``).
- ``auth``: client authentication (RFC 6749 §2.3.1), one ``ClientAuthenticator`` used
  by ``/token``, ``/revoke``, ``/introspect`` and ``/webhooks/signing-keys``.
- ``scopes``: scope strings (RFC 6749 §3.3) and the scopes a client is granted.

Below ``oauth``, ``webhooks``, ``identity`` and ``ops``, which all need to know the
RPs; it imports none of them.
"""
