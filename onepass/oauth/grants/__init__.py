"""Token endpoint grants, one module each (RFC 6749 §4)."""
