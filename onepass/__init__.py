"""1pass: an OpenID Connect provider."""

__version__ = "0.1.0"
