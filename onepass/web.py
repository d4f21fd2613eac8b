"""Request input shared by the routes: the client's address, parameters, bodies.

Every text parameter a route sees went through here or through ``onepass.edge``:
query strings and paths are checked once at the edge, form bodies by ``parse_form``
and JSON bodies by ``parse_json_object``, so no route repeats those checks. Bodies
are bounded at the edge (``onepass.edge``): ``read_body`` never holds more than the
limit, whatever Content-Length says.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from starlette.exceptions import HTTPException

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_QUERY_PARAMETERS = 50
MAX_FORM_PARAMETERS = 50

# C0 controls and DEL. No parameter of ours may hold one: RFC 6749 Appendix A limits
# OAuth parameters to VSCHAR/NQCHAR and RFC 3986 URIs, RFC 5321 addresses have none,
# single-line HTML inputs cannot send CR/LF, and PostgreSQL text refuses NUL.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The same, raw or percent-encoded: one search of the undecoded text finds them all.
ENCODED_CONTROL = re.compile(r"[\x00-\x1f\x7f]|%(?:[01][0-9A-Fa-f]|7[Ff])")


class BodyTooLarge(HTTPException):
    """The request body passed its limit (413). An ``HTTPException`` so that FastAPI's
    own body parsing lets it through; ``onepass.edge`` renders it in the route's protocol."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


class BadParameter(ValueError):
    """Input no route accepts (bad UTF-8, control characters, too many parameters); the
    message is safe to show."""


class Params(dict[str, str]):
    """Single-valued parameters, empty values left out (RFC 6749 §3.1: "sent without a
    value MUST be treated as if they were omitted"), and the names sent more than once:
    ``repeated``, which §3.1 makes an error (each route decides how to answer)."""

    repeated: frozenset[str] = frozenset()


def single_values(pairs: list[tuple[str, str]]) -> Params:
    params = Params()
    seen: set[str] = set()
    repeated = None
    for name, value in pairs:
        if name in seen:
            repeated = {name} if repeated is None else repeated | {name}
        seen.add(name)
        if value:
            params[name] = value
    if repeated is not None:
        params.repeated = frozenset(repeated)
    return params


def printable_name(name: str) -> str:
    """A parameter name fit to echo in an error (RFC 6749 §5.2 charset, 40 characters)."""
    cleaned = "".join(ch for ch in name[:40] if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')
    return cleaned or "?"


def parse_pairs(text: str, max_fields: int) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs (a query string or a form body),
    refusing control characters in names and values, after percent-decoding."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields, errors="strict")
    except UnicodeDecodeError:
        raise BadParameter("a parameter is not valid UTF-8 once percent-decoded") from None
    except ValueError:
        raise BadParameter(f"too many parameters (at most {max_fields})") from None
    if ENCODED_CONTROL.search(text):
        name = next((n for n, v in pairs if CONTROL.search(n) or CONTROL.search(v)), "?")
        raise BadParameter(f"parameter {printable_name(name)!r} contains a control character")
    return pairs


def parse_form(body: bytes, max_fields: int = MAX_FORM_PARAMETERS) -> Params:
    """A form body (UTF-8; RFC 6749 Appendix B) as single values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameter("the request body is not valid UTF-8") from None
    return single_values(parse_pairs(text, max_fields))


def is_form_content_type(content_type: str | None) -> bool:
    """True for ``application/x-www-form-urlencoded`` with no charset or UTF-8."""
    if not content_type:
        return False
    media_type, *params = (part.strip().lower() for part in content_type.split(";"))
    if media_type != FORM_CONTENT_TYPE:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


async def read_body(request: Request) -> bytes:
    """The request body; ``BodyTooLarge`` past the route's limit (enforced by the edge
    as the bytes arrive, so a large body is never held)."""
    return await request.body()


async def read_form(request: Request, max_fields: int = MAX_FORM_PARAMETERS) -> Params | None:
    """The posted form, or None when the body is not a form. ``BadParameter`` for a
    form no route accepts, ``BodyTooLarge`` past the limit."""
    if not is_form_content_type(request.headers.get("content-type")):
        return None
    return parse_form(await read_body(request), max_fields)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object; ``BadParameter`` if it is not one or holds a NUL in any string or
    key, at any depth (PostgreSQL text refuses NUL; other characters are each field's
    business, as JSON strings may carry newlines)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadParameter("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadParameter("the body must be a JSON object")
    # orjson decodes \u0000 to a NUL character; a raw NUL byte is invalid JSON already.
    if b"\\u0000" in raw and _has_nul(body):
        raise BadParameter("the body must not contain NUL characters")
    return body


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def query_params(request: Request) -> Params:
    """The query string as single values (the edge has refused control characters)."""
    return single_values(parse_pairs(request.url.query, MAX_QUERY_PARAMETERS))


def client_ip(request: Request) -> str:
    """The client's address, for throttling and the audit log.

    ``onepass serve`` has uvicorn replace the socket peer by the right-most address in
    ``X-Forwarded-For`` that is not a trusted proxy, only when the peer is one
    (``ONEPASS_TRUSTED_PROXIES``; none by default, so the header is ignored). A value
    that is not an IP address (only a trusted network can make one appear) is not
    believed either: it would be a throttle key of the sender's choosing.
    """
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "unknown"
