"""Durations written by people: ``90`` (seconds), ``250ms``, ``5s``, ``30m``, ``72h``, ``3d``.

A leaf module (it imports nothing of 1pass): settings validate the webhook retry
schedule with it, the CLI and the admin API read ``--older-than``-style arguments,
and the retry policy (``onepass.webhooks.retry``) words its decisions with it.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90`` (seconds), ``250ms``, ``5s``, ``30m``, ``72h``, ``3d``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:50]!r} is not a duration; write a number with a unit, e.g. 30s, 5m, 72h, 3d"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """A short human form of ``seconds`` (``5 s``, ``30 min``, ``2 h``)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def parse_schedule(text: str) -> tuple[float, ...]:
    """A retry schedule, ``"5s,5m,30m"``: the delays before the 2nd, 3rd, … attempt
    (``ONEPASS_WEBHOOK_RETRY_SCHEDULE``); may be empty."""
    parts = [part for part in (p.strip() for p in text.split(",")) if part]
    if len(parts) > 50:
        raise ValueError("a retry schedule has at most 50 steps")
    return tuple(parse_duration(part) for part in parts)
