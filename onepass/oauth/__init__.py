"""OAuth 2.0 / OpenID Connect: the endpoints, grants and tokens (the RPs themselves are
``onepass.clients``)."""
