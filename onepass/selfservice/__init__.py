"""Self-service for the people who sign in: what they do for themselves, without an
operator (a forgotten password, so far). Above the domains it uses: accounts, oauth
(their tokens are revoked), mail."""
