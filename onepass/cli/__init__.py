"""The ``onepass`` command: one module per command group, each thin over a service."""

from onepass.cli.main import app, main

__all__ = ["app", "main"]
