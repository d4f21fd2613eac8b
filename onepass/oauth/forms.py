"""``application/x-www-form-urlencoded`` request bodies (RFC 6749 §3.1, §3.2, Appendix B)."""

from __future__ import annotations

from onepass import web
from onepass.oauth_errors import InvalidRequestError
from onepass.web import is_form_content_type

__all__ = ["FORM_CONTENT_TYPE", "is_form_content_type", "parse_form"]

FORM_CONTENT_TYPE = web.FORM_CONTENT_TYPE
MAX_PARAMETER_LENGTH = 4096
# A signed request object (RFC 9101, pushed to /par) may be longer; the body's limit
# (ONEPASS_MAX_FORM_BYTES) still bounds the whole form.
LONGER_PARAMETERS = {"request": 16 * 1024}
MAX_PARAMETERS = 32


def parse_form(body: bytes) -> dict[str, str]:
    """Parse a form body into single values, or ``invalid_request``.

    RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
    §3.2: request parameters must not be included more than once.
    """
    try:
        form = web.parse_form(body, MAX_PARAMETERS)
    except web.BadParameter as exc:
        raise InvalidRequestError(str(exc)) from None
    if form.repeated:
        name = min(form.repeated)
        raise InvalidRequestError(f"parameter {web.printable_name(name)!r} is repeated")
    for name, value in form.items():
        if len(value) > LONGER_PARAMETERS.get(name, MAX_PARAMETER_LENGTH):
            raise InvalidRequestError(f"parameter {web.printable_name(name)!r} is too long")
    return form
