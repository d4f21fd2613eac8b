"""OIDC signing keys: lifecycle (next → active → retired → removed), JWKS, JWT signing."""
