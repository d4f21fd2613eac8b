from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base, JSONType
from onepass.db.types import IdType, UTCDateTime


class Consent(Base):
    """Scopes a user granted an application; asked again only for new scopes."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("user_id", "oauth_application_id"),)


class AuthorizationCode(Base):
    """RFC 6749 §4.1.2: single use, short-lived, bound to client, redirect URI and PKCE."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    login_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("login_sessions.id", ondelete="SET NULL")
    )
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSONType, default=list)
    sid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the redemption issued, so that a replay can revoke it.
    access_token_jti: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refresh_token_family: Mapped[str | None] = mapped_column(String(64))
    # DPoP (RFC 9449 §10): the thumbprint of the key the code is bound to (dpop_jkt).
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    # Resource Indicators (RFC 8707): the resource server the code was granted for.
    resource: Mapped[str | None] = mapped_column(Text)


class RefreshToken(Base):
    """Rotated on every use (RFC 9700 §4.14.2); reuse of a rotated token revokes its family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    family_id: Mapped[str] = mapped_column(String(64))
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    sid: Mapped[str | None] = mapped_column(String(64))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # sliding
    family_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # absolute
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The access token issued alongside, revoked with the family.
    access_token_jti: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # DPoP (RFC 9449 §5): a public client's refresh tokens are bound to its key.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    # Resource Indicators (RFC 8707): the resource server the grant was for.
    resource: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "family_id"), Index(None, "user_id"))


class RevokedAccessToken(Base):
    """Access tokens (by jti) refused before they expire; rows past ``expires_at`` can go."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(64))


class PushedAuthorizationRequest(Base):
    """An authorization request a client pushed (RFC 9126): its parameters, kept until
    ``/authorize`` takes them once by the ``request_uri`` handed back (only the URI's
    keyed hash is stored), or until they expire (about a minute)."""

    __tablename__ = "pushed_authorization_requests"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    request_uri_hash: Mapped[str] = mapped_column(String(128), unique=True)
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    parameters: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "expires_at"),)


class DeviceAuthorization(Base):
    """A device authorization (RFC 8628 §3.2): the device code the client polls with
    (only its keyed hash is stored), the user code a person enters at ``/device``
    (normalised: eight letters, no dash), and, once they decide, who approved and how
    they signed in. A poll reads it (``oauth.statements.DEVICE_CODE_STATE``); once
    approved, one statement redeems it, once (``POLL_DEVICE_CODE``)."""

    __tablename__ = "device_authorizations"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_code: Mapped[str] = mapped_column(String(16), unique=True)
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE")
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # pending, approved or denied.
    status: Mapped[str] = mapped_column(String(10), default="pending")
    # Seconds between polls the client was given (§3.2); slow_down's longer intervals
    # are kept in the cache (``oauth.grants.device_code``), so that a pending poll
    # only reads.
    poll_interval: Mapped[int] = mapped_column(Integer)
    # The person who decided, and their login (for the ID token's auth_time, acr, amr, sid).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acr: Mapped[str | None] = mapped_column(String(100))
    amr: Mapped[list[str] | None] = mapped_column(JSONType)
    sid: Mapped[str | None] = mapped_column(String(64))
    # The one exchange for tokens, and what it issued.
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    access_token_jti: Mapped[str | None] = mapped_column(String(64))
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refresh_token_family: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index(None, "expires_at"),)
