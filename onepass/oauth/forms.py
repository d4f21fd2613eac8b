"""``application/x-www-form-urlencoded`` request bodies (RFC 6749 §3.1, §3.2, Appendix B)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from onepass.oauth.errors import InvalidRequestError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_PARAMETER_LENGTH = 4096
MAX_PARAMETERS = 32


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


def parse_form(body: bytes) -> dict[str, str]:
    """Parse a form body into single values.

    RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
    §3.2: request parameters must not be included more than once.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_PARAMETERS,
        )
    except UnicodeDecodeError:
        raise InvalidRequestError("the request body is not valid UTF-8") from None
    except ValueError:
        raise InvalidRequestError(f"too many parameters (at most {MAX_PARAMETERS})") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InvalidRequestError(f"parameter {_safe(name)!r} is repeated")
        seen.add(name)
        if len(value) > MAX_PARAMETER_LENGTH:
            raise InvalidRequestError(f"parameter {_safe(name)!r} is too long")
        if "\x00" in value or "\x00" in name:
            raise InvalidRequestError("parameters must not contain NUL characters")
        if value:
            form[name] = value
    return form


def _safe(name: str) -> str:
    """A parameter name fit to echo in an error description (RFC 6749 §5.2 charset)."""
    cleaned = "".join(ch for ch in name[:40] if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')
    return cleaned or "?"
