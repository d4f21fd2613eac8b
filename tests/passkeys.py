"""A software WebAuthn authenticator for tests over HTTP: it answers the options a
1pass page carries as a platform authenticator would (attestation "none", ES256,
user present and verified, a counter that grows), so a test can register passkeys and
sign in with them without a browser. What it builds follows WebAuthn Level 3 §6
(authenticator data, attested credential data, the assertion signature over the
authenticator data and the hash of the client data); 1pass checks it with the
``webauthn`` library. The browser tests use Chromium's own virtual authenticator."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40

PASSKEY_FORM = re.compile(
    r'<form method="post" action="([^"]+)" data-passkey="([a-z-]+)" data-options="([^"]*)"'
    r"(.*?)</form>",
    re.S,
)
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "===")


@dataclass
class Ceremony:
    """A passkey form of a page: where it posts, its options, its hidden fields."""

    action: str
    kind: str
    options: dict[str, object]
    fields: dict[str, str]


def ceremony(page: str, kind: str) -> Ceremony:
    """The page's passkey form of ``kind`` (register, sign-in, second-step)."""
    for action, found, options, body in PASSKEY_FORM.findall(page):
        if found == kind:
            fields = {k: html.unescape(v) for k, v in HIDDEN.findall(body)}
            return Ceremony(action, kind, json.loads(html.unescape(options)), fields)
    raise AssertionError(f"no {kind} passkey form on the page")


@dataclass
class Credential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class SoftAuthenticator:
    origin: str
    credentials: list[Credential] = field(default_factory=list)
    synced: bool = False

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}
        ).encode()

    def _flags(self, verified: bool) -> int:
        flags = UP | (UV if verified else 0)
        return flags | (BE | BS if self.synced else 0)

    def create(self, options: dict[str, object]) -> str:
        """The answer to ``navigator.credentials.create`` with these options (JSON)."""
        rp = options["rp"]
        user = options["user"]
        assert isinstance(rp, dict) and isinstance(user, dict)
        rp_id = str(rp["id"])
        credential = Credential(
            secrets.token_bytes(32),
            ec.generate_private_key(ec.SECP256R1()),
            rp_id,
            unb64(str(user["id"])),
        )
        self.credentials.append(credential)
        attested = (
            bytes(16)
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_key()
        )
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(True) | AT])
            + struct.pack(">I", credential.sign_count)
            + attested
        )
        client_data = self._client_data("webauthn.create", str(options["challenge"]))
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": b64(credential.credential_id),
                "rawId": b64(credential.credential_id),
                "type": "public-key",
                "clientExtensionResults": {},
                "response": {
                    "clientDataJSON": b64(client_data),
                    "attestationObject": b64(attestation),
                    "transports": ["internal"],
                },
            }
        )

    def get(
        self,
        options: dict[str, object],
        *,
        credential: Credential | None = None,
        verified: bool = True,
        origin: str | None = None,
    ) -> str:
        """The answer to ``navigator.credentials.get`` with these options (JSON): the
        first credential the options allow, or ``credential``."""
        if credential is None:
            allowed = {unb64(str(d["id"])) for d in options.get("allowCredentials") or []}  # type: ignore[attr-defined]
            candidates = [c for c in self.credentials if not allowed or c.credential_id in allowed]
            assert candidates, "no credential of this authenticator is allowed"
            credential = candidates[0]
        credential.sign_count += 1
        auth_data = (
            hashlib.sha256(credential.rp_id.encode()).digest()
            + bytes([self._flags(verified)])
            + struct.pack(">I", credential.sign_count)
        )
        client_data = json.dumps(
            {
                "type": "webauthn.get",
                "challenge": str(options["challenge"]),
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode()
        signature = credential.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return json.dumps(
            {
                "id": b64(credential.credential_id),
                "rawId": b64(credential.credential_id),
                "type": "public-key",
                "clientExtensionResults": {},
                "response": {
                    "clientDataJSON": b64(client_data),
                    "authenticatorData": b64(auth_data),
                    "signature": b64(signature),
                    "userHandle": b64(credential.user_handle),
                },
            }
        )


def origin_of(issuer: str) -> str:
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}"
