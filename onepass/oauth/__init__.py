"""OAuth 2.0 / OpenID Connect endpoints and the applications (RPs) that use them."""
