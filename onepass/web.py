"""Small HTTP helpers shared by the routes."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

MAX_QUERY_PARAMETERS = 50


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or ``BodyTooLarge`` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def query_pairs(request: Request) -> list[tuple[str, str]] | None:
    """The query string's pairs, or None when it cannot be parsed (too many, bad)."""
    try:
        return parse_qsl(
            request.url.query, keep_blank_values=True, max_num_fields=MAX_QUERY_PARAMETERS
        )
    except ValueError:
        return None
