"""What a Shared Signals push (``ssf.set`` entries, RFC 8935) needs at each attempt: the
application's stream (its status, endpoint URL and Authorization header) and the
algorithm its ID tokens are signed with, read just before the attempt, never cached,
so that a stream paused, disabled, re-pointed or deleted takes effect at its next
attempt."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from onepass.clients.models import OAuthApplication
from onepass.crypto import DecryptionError, SecretBox
from onepass.db import Database
from onepass.webhooks.models import SsfStream


def header_context(stream_id: str) -> str:
    """The AES-GCM context a stream's Authorization header is sealed under."""
    return f"ssf-stream-authorization:{stream_id}"


@dataclass(frozen=True)
class StreamTarget:
    stream_id: str
    delivery_method: str
    status: str
    endpoint_url: str | None
    authorization: str | None
    client_id: str
    id_token_alg: str | None
    error: str | None = None


class Streams:
    def __init__(self, database: Database, box: SecretBox) -> None:
        self.database = database
        self.box = box

    async def get(self, app_id: int) -> StreamTarget | None:
        """The application's stream, or None when it has none."""
        async with self.database.session(readonly=True) as session:
            row = (
                await session.execute(
                    select(
                        SsfStream,
                        OAuthApplication.client_id,
                        OAuthApplication.id_token_signed_response_alg,
                    )
                    .join(OAuthApplication, OAuthApplication.id == SsfStream.oauth_application_id)
                    .where(SsfStream.oauth_application_id == app_id)
                )
            ).first()
        if row is None:
            return None
        stream, client_id, alg = row
        authorization = None
        error = None
        if stream.authorization_header_encrypted:
            try:
                authorization = self.box.decrypt(
                    stream.authorization_header_encrypted, header_context(stream.stream_id)
                ).decode()
            except DecryptionError as exc:
                error = f"the stream's authorization header does not decrypt: {exc}"
        return StreamTarget(
            stream_id=stream.stream_id,
            delivery_method=stream.delivery_method,
            status=stream.status,
            endpoint_url=stream.endpoint_url,
            authorization=authorization,
            client_id=client_id,
            id_token_alg=alg,
            error=error,
        )
