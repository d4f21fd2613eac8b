"""Public identifiers (client_id, sub): random, letters and digits only.

base64url would do for randomness, but an identifier starting with "-" is read as an
option by every command line that takes it (`onepass clients show -abc…`).
"""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_identifier(length: int) -> str:
    """``length`` characters of [A-Za-z0-9]: 5.95 bits each (24 give 142 bits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
