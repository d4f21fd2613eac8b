from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base, JSONType
from onepass.db.types import IdType, UTCDateTime


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # The stable, opaque subject identifier RPs see (never the sequential id).
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased email: unique case-insensitively on both engines.
    email_normalized: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Deleted (`onepass users delete`): personal data erased, the row kept (anonymised,
    # disabled) so that identity links and the audit log still name it.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Administrators (`onepass admin create`) may hold admin API tokens; their second
    # factor is TOTP (`onepass admin enroll-totp`), its secret encrypted at rest.
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # The language the person chose for 1pass's pages and mails (``en``, ``ko``); None:
    # the browser's (after an RP's ``ui_locales``, which comes first).
    locale: Mapped[str | None] = mapped_column(String(16))


class LoginSession(Base):
    """A browser's login at 1pass; the cookie carries a token whose hash is ``token_hash``."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # The public session id (the ``sid`` claim of ID tokens).
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSONType, default=list)
    acr: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index(None, "user_id"),)


class LoginSessionClient(Base):
    """An RP a login session signed in to (an authorization code issued under it): whom
    OpenID Connect Back-Channel Logout tells when the session ends."""

    __tablename__ = "login_session_clients"

    login_session_id: Mapped[int] = mapped_column(
        ForeignKey("login_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    oauth_application_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_applications.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AccountToken(Base):
    """A single-use link sent to a person by mail (``accounts.links``): a password
    reset, a sign-up to confirm, an invitation. Only the token's keyed hash is stored.

    ``password_binding`` (a reset) is a hash of the password hash the account had when
    the link was made: once the password changes by any path, the link is void
    without anything having to find and cancel it."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str | None] = mapped_column(String(320))
    password_binding: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ip_address: Mapped[str | None] = mapped_column(String(64))
    # What the link carries: a sign-up's name and password hash (until the address is
    # proved), an invitation's inviter.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index(None, "user_id"),)


class RecoveryCode(Base):
    """A one-time code that stands in for the second factor (the authenticator app
    lost); only its keyed hash is kept, and it works once."""

    __tablename__ = "user_recovery_codes"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "user_id"),)


class Passkey(Base):
    """A WebAuthn credential (a passkey or a security key) of a user: signs in without
    a password, or is the second step after one (``accounts.passkeys``). Only the
    public key is here; ``sign_count`` is the authenticator's counter, which must grow
    where the authenticator keeps one (a clone shows as a counter that does not)."""

    __tablename__ = "user_passkeys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # base64url of the credential id (at most 1,023 bytes by WebAuthn Level 3).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    # base64url of the COSE public key.
    public_key: Mapped[str] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    aaguid: Mapped[str | None] = mapped_column(String(36))
    transports: Mapped[list[str]] = mapped_column(JSONType, default=list)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "user_id"),)


class UsedPasskeyChallenge(Base):
    """A WebAuthn challenge already answered: the challenge travels sealed in the page
    (nothing is stored when a page shows one), and is written here when it is used, so
    an answer presented twice finds its challenge taken (the primary key). Rows are
    deleted once the challenge would have expired anyway."""

    __tablename__ = "used_passkey_challenges"

    challenge_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "expires_at"),)
