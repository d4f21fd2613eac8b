"""Structured logs: one JSON object per line on stderr, for every logger in the
process (structlog's, and the standard library's: uvicorn, Alembic, asyncio, warnings).

Never log a secret, a token or a request body: log identifiers (client_id, kid).
"""

from __future__ import annotations

import logging
import sys

import structlog

# Each line carries its level and a UTC timestamp, whoever logged it.
_STAMPS: list[structlog.typing.Processor] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Logs at ``level`` and above, as JSON lines on stderr (``json=False``: structlog's
    console format, for a person at a terminal). A standard-library record is rendered
    the same way, with ``logger`` naming where it came from (``uvicorn.error``,
    ``alembic.runtime.migration``…)."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *_STAMPS],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # warnings.warn(...) as a record of ``py.warnings``
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *_STAMPS,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
