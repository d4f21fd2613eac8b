"""The statements of the grants' and userinfo's hot paths (``onepass.db.direct``).

A code is redeemed, and a refresh token rotated, by the ``UPDATE … RETURNING`` that also
checks it (client, expiry, not used, not revoked; for a code the redirect URI and the
PKCE challenge too), so that it is consumed only when the request is good; the same
statement reads the user the grant was issued to and, with ENFORCE_CANONICAL_RESOLUTION
on (``:enforce``), that user's canonical user. When it returns no row, the grant goes the
slow way (``oauth.codes.refuse_code``, ``oauth.grants.refresh_token.refuse``: the ORM) to
tell the client why and to revoke what a replay must revoke.

Resource Indicators (RFC 8707): a code or refresh token is used for ``:resource`` only
if it was granted for it (NULL: for what it was granted), one more condition of the same
``WHERE``; the next refresh token keeps the grant's resource.

DPoP (RFC 9449): a code bound to a key (``dpop_jkt``, §10) is redeemed, and a refresh
token bound to one (a public client's, §5) rotated, only with a proof of that key
(``:jkt``, NULL without a proof): one more condition of the same ``WHERE``. The next
refresh token is bound to ``refresh_jkt``: a rotated token's own, or for a code the
proof's key when the client is public (``:refresh_jkt``).

On SQLite the new refresh token is a second statement of the same transaction (SQLite
runs both in microseconds, in this process). On PostgreSQL each grant is one statement:
the ``UPDATE`` and the refresh token's ``INSERT`` in one ``WITH``, committed on its own,
one round trip instead of four (BEGIN, UPDATE, INSERT, COMMIT).
"""

from __future__ import annotations

from onepass.db.direct import statement

# The columns every grant statement returns about its user: ``user_sub`` and
# ``user_disabled_at`` of the user the grant was issued to, and ``target_id``,
# ``target_sub``, ``target_disabled_at`` of its canonical user (only with ``:enforce``).
_USER_COLUMNS = ("user_disabled_at", "target_disabled_at")

# ---------------------------------------------------------------------------- SQLite

# A refresh token that may be used (by this client, not rotated, revoked or expired, and
# with a proof of the DPoP key it is bound to), and what its use returns.
_USABLE_REFRESH_TOKEN = """
    WHERE token_hash = :token_hash AND oauth_application_id = :client
      AND rotated_at IS NULL AND revoked_at IS NULL
      AND expires_at > :now AND family_expires_at > :now
      AND (dpop_jkt IS NULL OR dpop_jkt = :jkt)
      AND (CAST(:resource AS text) IS NULL OR resource = :resource)
    RETURNING family_id, user_id, scope, sid, auth_time, acr, amr, family_expires_at,
        dpop_jkt AS refresh_jkt, resource,
        (SELECT sub FROM users u WHERE u.id = refresh_tokens.user_id) AS user_sub,
        (SELECT disabled_at FROM users u WHERE u.id = refresh_tokens.user_id) AS user_disabled_at,
        (SELECT t.id FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = refresh_tokens.user_id AND :enforce) AS target_id,
        (SELECT t.sub FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = refresh_tokens.user_id AND :enforce) AS target_sub,
        (SELECT t.disabled_at FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = refresh_tokens.user_id AND :enforce) AS target_disabled_at
"""

ROTATE_REFRESH_TOKEN = statement(
    "UPDATE refresh_tokens SET rotated_at = :now " + _USABLE_REFRESH_TOKEN,  # noqa: S608
    datetimes=("now", "auth_time", "family_expires_at", *_USER_COLUMNS),
    json=("amr",),
)

# A refresh token used without rotation (a FAPI 2.0 client, ``clients.profiles``): the
# same checks as ROTATE_REFRESH_TOKEN, its sliding expiry moved on and the access token
# issued alongside recorded (revoked with the family); the token stays usable. Both
# engines.
USE_REFRESH_TOKEN = statement(
    """
    UPDATE refresh_tokens SET
        expires_at = CASE WHEN family_expires_at < :sliding_expires_at
            THEN family_expires_at ELSE :sliding_expires_at END,
        access_token_jti = :access_token_jti,
        access_token_expires_at = :access_token_expires_at
    """
    + _USABLE_REFRESH_TOKEN,
    datetimes=(
        "now",
        "sliding_expires_at",
        "access_token_expires_at",
        "auth_time",
        "family_expires_at",
        *_USER_COLUMNS,
    ),
    json=("amr",),
)

INSERT_REFRESH_TOKEN = statement(
    """
    INSERT INTO refresh_tokens (token_hash, family_id, oauth_application_id, user_id, scope,
        sid, auth_time, acr, amr, created_at, expires_at, family_expires_at,
        access_token_jti, access_token_expires_at, dpop_jkt, resource)
    VALUES (:token_hash, :family_id, :oauth_application_id, :user_id, :scope,
        :sid, :auth_time, :acr, :amr, :created_at, :expires_at, :family_expires_at,
        :access_token_jti, :access_token_expires_at, :dpop_jkt, :resource)
    """,
    datetimes=(
        "auth_time",
        "created_at",
        "expires_at",
        "family_expires_at",
        "access_token_expires_at",
    ),
    json=("amr",),
)

# Redeemed with what the redemption issues, so that a replay can revoke it; the refresh
# family is recorded only when the code's scope gives one (``offline_access``).
REDEEM_CODE = statement(
    """
    UPDATE authorization_codes SET redeemed_at = :now,
        access_token_jti = :access_token_jti,
        access_token_expires_at = :access_token_expires_at,
        refresh_token_family = CASE WHEN ' ' || scope || ' ' LIKE '% offline_access %'
            THEN :refresh_family END
    WHERE code_hash = :code_hash AND oauth_application_id = :client
      AND redeemed_at IS NULL AND expires_at > :now AND redirect_uri = :redirect_uri
      AND (code_challenge = :challenge OR (code_challenge IS NULL AND :challenge IS NULL))
      AND (dpop_jkt IS NULL OR dpop_jkt = :jkt)
      AND (CAST(:resource AS text) IS NULL OR resource = :resource)
    RETURNING user_id, scope, nonce, auth_time, acr, amr, sid, refresh_token_family, resource,
        (SELECT sub FROM users u WHERE u.id = authorization_codes.user_id) AS user_sub,
        (SELECT disabled_at FROM users u
            WHERE u.id = authorization_codes.user_id) AS user_disabled_at,
        (SELECT t.id FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = authorization_codes.user_id AND :enforce) AS target_id,
        (SELECT t.sub FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = authorization_codes.user_id AND :enforce) AS target_sub,
        (SELECT t.disabled_at FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = authorization_codes.user_id AND :enforce)
            AS target_disabled_at
    """,
    datetimes=("now", "access_token_expires_at", "auth_time", *_USER_COLUMNS),
    json=("amr",),
)

# ---------------------------------------------------------------------------- PostgreSQL

# The refresh token a grant issues, inserted by the grant's statement from its ``who``
# row (the consumed code or token joined with its user), only when that user may have
# tokens; ``:refresh_scope`` NULL: the row's scope with offline_access.
_INSERT_FROM_WHO = """
    INSERT INTO refresh_tokens (token_hash, family_id, oauth_application_id, user_id, scope,
        sid, auth_time, acr, amr, created_at, expires_at, family_expires_at,
        access_token_jti, access_token_expires_at, dpop_jkt, resource)
    SELECT :refresh_hash, who.family_id, :client, COALESCE(who.target_id, who.user_id),
        COALESCE(:refresh_scope, CASE WHEN ' ' || who.scope || ' ' LIKE '% offline_access %'
            THEN who.scope ELSE concat_ws(' ', NULLIF(who.scope, ''), 'offline_access') END),
        who.sid, who.auth_time, who.acr, who.amr, :created_at,
        LEAST(who.family_expires_at, :sliding_expires_at), who.family_expires_at,
        :access_token_jti, :access_token_expires_at, who.refresh_jkt, who.resource
    FROM who
    WHERE who.family_id IS NOT NULL AND who.user_sub IS NOT NULL
      AND who.user_disabled_at IS NULL AND who.target_disabled_at IS NULL
"""

_WHO = """
    SELECT consumed.*, u.sub AS user_sub, u.disabled_at AS user_disabled_at,
        t.id AS target_id, t.sub AS target_sub, t.disabled_at AS target_disabled_at
    FROM consumed
    LEFT JOIN users u ON u.id = consumed.user_id
    LEFT JOIN identity_links l ON l.source_user_id = consumed.user_id AND :enforce
    LEFT JOIN users t ON t.id = l.target_user_id
"""


def _consume_and_issue(consumed: str) -> str:
    """One statement: ``consumed`` (an ``UPDATE … RETURNING``), its user, the refresh
    token it issues, and the ``who`` row returned. Only this module's constants go in."""
    return (
        f"WITH consumed AS ({consumed}), who AS ({_WHO}), "  # noqa: S608
        f"issued AS ({_INSERT_FROM_WHO}) SELECT * FROM who"
    )


ROTATE_REFRESH_TOKEN_PG = statement(
    _consume_and_issue(
        """
        UPDATE refresh_tokens SET rotated_at = :now
        WHERE token_hash = :token_hash AND oauth_application_id = :client
          AND rotated_at IS NULL AND revoked_at IS NULL
          AND expires_at > :now AND family_expires_at > :now
          AND string_to_array(scope, ' ') @> CAST(:requested AS text[])
          AND (dpop_jkt IS NULL OR dpop_jkt = CAST(:jkt AS varchar))
          AND (CAST(:resource AS text) IS NULL OR resource = CAST(:resource AS text))
        RETURNING family_id, user_id, scope, sid, auth_time, acr, amr, family_expires_at,
            dpop_jkt AS refresh_jkt, resource
        """
    ),
    datetimes=(
        "now",
        "auth_time",
        "family_expires_at",
        "created_at",
        "sliding_expires_at",
        "access_token_expires_at",
        *_USER_COLUMNS,
    ),
    json=("amr",),
)

REDEEM_CODE_PG = statement(
    _consume_and_issue(
        """
        UPDATE authorization_codes SET redeemed_at = :now,
            access_token_jti = :access_token_jti,
            access_token_expires_at = :access_token_expires_at,
            refresh_token_family = CASE WHEN ' ' || scope || ' ' LIKE '% offline_access %'
                THEN CAST(:refresh_family AS varchar) END
        WHERE code_hash = :code_hash AND oauth_application_id = :client
          AND redeemed_at IS NULL AND expires_at > :now AND redirect_uri = :redirect_uri
          AND (code_challenge = :challenge OR (code_challenge IS NULL AND :challenge IS NULL))
          AND (dpop_jkt IS NULL OR dpop_jkt = CAST(:jkt AS varchar))
          AND (CAST(:resource AS text) IS NULL OR resource = CAST(:resource AS text))
        RETURNING user_id, scope, nonce, auth_time, acr, amr, sid, resource,
            refresh_token_family AS family_id,
            CAST(:family_expires_at AS timestamptz) AS family_expires_at,
            CAST(:refresh_jkt AS varchar) AS refresh_jkt
        """
    ),
    datetimes=(
        "now",
        "access_token_expires_at",
        "auth_time",
        "created_at",
        "sliding_expires_at",
        "family_expires_at",
        *_USER_COLUMNS,
    ),
    json=("amr",),
)

# ---------------------------------------------------------------------------- both

# UserInfo (OIDC Core §5.3): the token's user, whether the token was revoked, and the
# user's canonical user, in one read.
USERINFO = statement(
    """
    SELECT id, sub, email, email_verified, name, updated_at, disabled_at,
        (SELECT 1 FROM revoked_access_tokens WHERE jti = :jti) AS revoked,
        (SELECT target_user_id FROM identity_links
            WHERE identity_links.source_user_id = users.id) AS canonical_user_id
    FROM users WHERE sub = :sub
    """,
    datetimes=("updated_at", "disabled_at"),
)

# UserInfo for a pairwise client's token (OIDC Core §8.1, ``clients.subjects``): the user
# found from the token's ``sub`` in the client's sector, by the same one read.
USERINFO_PAIRWISE = statement(
    """
    SELECT users.id, p.sub, email, email_verified, name, updated_at, disabled_at,
        (SELECT 1 FROM revoked_access_tokens WHERE jti = :jti) AS revoked,
        (SELECT target_user_id FROM identity_links
            WHERE identity_links.source_user_id = users.id) AS canonical_user_id
    FROM pairwise_subjects p JOIN users ON users.id = p.user_id
    WHERE p.sub = :sub AND p.sector = :sector
    """,
    datetimes=("updated_at", "disabled_at"),
)
# Token Exchange (RFC 8693): whether an actor token (which may be a client's own, with
# no user) was revoked.
ACCESS_TOKEN_REVOKED = statement(
    "SELECT 1 AS revoked FROM revoked_access_tokens WHERE jti = :jti",
)
# ---------------------------------------------------------------------------- device

# RFC 8628 §3.4, §3.5: a poll reads its device code (this client's) and answers from
# it; only a poll of an approved code writes: POLL_DEVICE_CODE redeems it, once (not
# expired, not redeemed), and records what it issues; the grant knows the redemption
# was its own by the ``access_token_jti`` returned (its own, random). slow_down's
# intervals are kept in the cache, not here, so that a pending poll never writes.
DEVICE_CODE_STATE = statement(
    """
    SELECT status, expires_at, redeemed_at, poll_interval FROM device_authorizations
    WHERE device_code_hash = :device_code_hash AND oauth_application_id = :client
    """,
    datetimes=("expires_at", "redeemed_at"),
)

_REDEEMS = "(status = 'approved' AND redeemed_at IS NULL AND expires_at > :now)"
_POLL_DEVICE_CODE = f"""
    UPDATE device_authorizations SET
        redeemed_at = CASE WHEN {_REDEEMS} THEN :now ELSE redeemed_at END,
        access_token_jti = CASE WHEN {_REDEEMS} THEN :access_token_jti ELSE access_token_jti END,
        access_token_expires_at = CASE WHEN {_REDEEMS}
            THEN :access_token_expires_at ELSE access_token_expires_at END,
        refresh_token_family = CASE WHEN {_REDEEMS}
                AND ' ' || scope || ' ' LIKE '% offline_access %'
            THEN :refresh_family ELSE refresh_token_family END
    WHERE device_code_hash = :device_code_hash AND oauth_application_id = :client
"""  # noqa: S608 (only this module's constants go in)

POLL_DEVICE_CODE = statement(
    _POLL_DEVICE_CODE  # noqa: S608 (only this module's constants go in)
    + """
    RETURNING status, expires_at, redeemed_at, access_token_jti,
        user_id, scope, auth_time, acr, amr, sid, refresh_token_family,
        (SELECT sub FROM users u WHERE u.id = device_authorizations.user_id) AS user_sub,
        (SELECT disabled_at FROM users u
            WHERE u.id = device_authorizations.user_id) AS user_disabled_at,
        (SELECT t.id FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = device_authorizations.user_id AND :enforce) AS target_id,
        (SELECT t.sub FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = device_authorizations.user_id AND :enforce) AS target_sub,
        (SELECT t.disabled_at FROM identity_links l JOIN users t ON t.id = l.target_user_id
            WHERE l.source_user_id = device_authorizations.user_id AND :enforce)
            AS target_disabled_at
    """,
    datetimes=(
        "now",
        "expires_at",
        "redeemed_at",
        "access_token_expires_at",
        "auth_time",
        *_USER_COLUMNS,
    ),
    json=("amr",),
)

# PostgreSQL: the poll, its user, and the refresh token a redemption issues, in one
# statement (the refresh token only from the poll that redeemed: ``family_id`` is NULL
# in every other poll's row).
POLL_DEVICE_CODE_PG = statement(
    _consume_and_issue(
        _POLL_DEVICE_CODE.replace(":access_token_jti", "CAST(:access_token_jti AS varchar)")
        .replace(":refresh_family", "CAST(:refresh_family AS varchar)")
        .replace(":access_token_expires_at", "CAST(:access_token_expires_at AS timestamptz)")
        + """
        RETURNING status, expires_at, redeemed_at,
            access_token_jti, user_id, scope, auth_time, acr, amr, sid,
            CASE WHEN access_token_jti = CAST(:access_token_jti AS varchar)
                THEN refresh_token_family END AS family_id,
            CAST(:family_expires_at AS timestamptz) AS family_expires_at,
            CAST(:refresh_jkt AS varchar) AS refresh_jkt,
            CAST(NULL AS text) AS resource
        """
    ),
    datetimes=(
        "now",
        "expires_at",
        "redeemed_at",
        "access_token_expires_at",
        "auth_time",
        "created_at",
        "sliding_expires_at",
        "family_expires_at",
        *_USER_COLUMNS,
    ),
    json=("amr",),
)
