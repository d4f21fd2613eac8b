"""A validated authorization request, carried through the login and consent forms.

The request is sealed (HMAC-SHA-256 under a key derived from ONEPASS_SECRET_KEY, with
an expiry) into a hidden form field instead of server-side state, so the flow works
across any number of worker processes and machines without a shared store, and
cannot be altered by the browser.

Besides the request, the seal carries the ``sid`` of a login completed during the
interaction: the consent form that follows a login must not ask for that login again
(``prompt=login`` and ``max_age`` are satisfied by it, OIDC Core §3.1.2.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from onepass.crypto import derive_key
from onepass.oauth.authorize import AuthorizationRequest
from onepass.services import Service


class InteractionInvalid(Exception):
    pass


@dataclass(frozen=True)
class Interaction:
    request: AuthorizationRequest
    # The login session (by sid) authenticated in this interaction, if one was.
    login_sid: str | None = None


class Sealer:
    def __init__(self, secret_key: str, ttl: int) -> None:
        self._key = derive_key(secret_key, "onepass/interaction/v1")
        self._ttl = ttl

    def seal(
        self, request: AuthorizationRequest, now: float, *, login_sid: str | None = None
    ) -> str:
        data = {"r": request.to_dict(), "exp": int(now) + self._ttl, "sid": login_sid}
        payload = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.digest(self._key, payload, hashlib.sha256)).rstrip(b"=")
        return (payload + b"." + mac).decode()

    def unseal(self, sealed: str, now: float) -> Interaction:
        try:
            payload, mac = sealed.encode("ascii").split(b".")
            expected = base64.urlsafe_b64encode(
                hmac.digest(self._key, payload, hashlib.sha256)
            ).rstrip(b"=")
            if not hmac.compare_digest(mac, expected):
                raise InteractionInvalid("the form was altered")
            data = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
            if data["exp"] < now:
                raise InteractionInvalid("the form has expired; start again from the application")
            login_sid = data.get("sid")
            if login_sid is not None and not isinstance(login_sid, str):
                raise TypeError
            return Interaction(AuthorizationRequest.from_dict(data["r"]), login_sid)
        except InteractionInvalid:
            raise
        except (ValueError, KeyError, TypeError, UnicodeEncodeError):
            raise InteractionInvalid("the form is damaged") from None


SEALER: Service[Sealer] = Service("oauth.sealer")
