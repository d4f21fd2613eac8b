"""The ``oauth_applications`` table: one row per relying party (OAuth client)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from onepass.db.base import Base, JSONType
from onepass.db.types import IdType, UTCDateTime


class OAuthApplication(Base):
    """A relying party: one OAuth client (RFC 7591 field names where they exist)."""

    __tablename__ = "oauth_applications"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    # KeyedHasher output; NULL for public clients.
    client_secret_hash: Mapped[str | None] = mapped_column(String(128))
    # The secret replaced by a rotation with a grace: it verifies too until then.
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JSONType, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSONType, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    response_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Space-separated scopes the client may ask for.
    scope: Mapped[str] = mapped_column(Text, default="")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    # First-party applications skip the consent screen.
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set by ``onepass clients disable``: the client is served nowhere until enabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every sign-in to this RP needs two steps (as if it always sent
    # ``acr_values=urn:1pass:acr:mfa``), and its users keep at least one second factor.
    require_second_factor: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Authorization requests only by PAR (RFC 9126 §6): /authorize takes a request_uri.
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # private_key_jwt (RFC 7523): the client's public keys, inline (a JWK set) or at a
    # URL 1pass fetches (one of the two).
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    # The RP's own privacy policy and terms (OAuth client metadata, RFC 7591 §2), linked
    # from the consent page.
    policy_uri: Mapped[str | None] = mapped_column(Text)
    tos_uri: Mapped[str | None] = mapped_column(Text)
    # DPoP (RFC 9449 §5.2): access tokens only with a proof of possession.
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Authorization requests only as signed request objects (RFC 9101 §10.5).
    require_signed_request_object: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # The security profile the client is registered under: NULL (1pass's default) or
    # "fapi2" (FAPI 2.0 Security Profile).
    profile: Mapped[str | None] = mapped_column(String(16))
    # OpenID Connect Back-Channel Logout 1.0 §2.2.
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # OpenID Connect Core 1.0 §8: "public" (every RP sees users.sub) or "pairwise" (a
    # sub of the client's sector, ``clients.subjects``); the sector is the host of
    # sector_identifier_uri when given, else of the redirect URIs.
    subject_type: Mapped[str] = mapped_column(
        String(16), default="public", server_default=text("'public'")
    )
    sector_identifier_uri: Mapped[str | None] = mapped_column(Text)
    # JARM §3: how its signed authorization responses are signed; NULL: the default
    # (RS256; under the fapi2 profile, its ID token algorithm).
    authorization_signed_response_alg: Mapped[str | None] = mapped_column(String(16))

    # Dynamic Client Registration (RFC 7591/7592; ``clients.registration``): how the
    # client was registered ("initial_access_token" or "open"; NULL: by an operator),
    # with which initial access token, and the keyed hash of its registration access
    # token (RFC 7592 §1), which manages it at /register/{client_id}.
    registration_source: Mapped[str | None] = mapped_column(String(32))
    initial_access_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("initial_access_tokens.id", ondelete="SET NULL")
    )
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(128))
    # Resource Indicators (RFC 8707): the resource servers (identifiers) this client may
    # ask tokens for; and Token Exchange (RFC 8693): those it may exchange a user's
    # token to. NULL: none (exchange is refused by default).
    allowed_resources: Mapped[list[str] | None] = mapped_column(JSONType)
    token_exchange_resources: Mapped[list[str] | None] = mapped_column(JSONType)

    __table_args__ = (
        # The webhook claim skips disabled applications' entries: this (usually empty)
        # index answers that without reading the table.
        Index(
            "ix_oauth_applications_disabled",
            "id",
            postgresql_where=text("disabled_at IS NOT NULL"),
            sqlite_where=text("disabled_at IS NOT NULL"),
        ),
    )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


class UsedClientAssertion(Base):
    """A client assertion's ``jti`` already presented (RFC 7523 §3: single use): kept
    until the assertion would have expired anyway."""

    __tablename__ = "used_client_assertions"

    jti_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "expires_at"),)


class PairwiseSubject(Base):
    """The ``sub`` a sector's RPs know a user by (OpenID Connect Core 1.0 §8.1): random,
    made on first use (``clients.subjects``), so it reveals nothing about the user's
    public ``sub`` and no key rotation changes it. Unique, so that userinfo and
    introspection find the user from it in one index probe."""

    __tablename__ = "pairwise_subjects"

    sector: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    sub: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InitialAccessToken(Base):
    """A bearer token that lets its holder register clients at ``/register`` (RFC 7591
    §3: the "initial access token"). Only its keyed hash is stored; the token is shown
    once, when created. ``uses`` counts registrations; ``max_uses`` NULL: no limit."""

    __tablename__ = "initial_access_tokens"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    # The first characters of the token, to tell tokens apart in lists and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ResourceServer(Base):
    """A protected resource (RFC 8707 §2): the audience of the access tokens issued for
    it, the scopes it defines, and its own token lifetime and signing algorithm."""

    __tablename__ = "resource_servers"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # An absolute URI without a fragment (RFC 8707 §2): the tokens' ``aud``.
    identifier: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    access_token_ttl: Mapped[int] = mapped_column(Integer)
    signing_alg: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
