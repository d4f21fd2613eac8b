"""The statements of the grants' and userinfo's hot paths (``onepass.db.direct``).

Each consumes or reads what it needs in one statement: the refresh token is rotated,
and the code redeemed, by the ``UPDATE … RETURNING`` that also checks it (client,
expiry, not used, not revoked), with the user it was issued to read by subqueries of
the same statement. When one of them returns no row, the grant goes the slow way
(``oauth.codes.refuse_code``, ``oauth.grants.refresh_token.refuse``: the ORM) to tell the
client why and to revoke what a replay must revoke.
"""

from __future__ import annotations

from onepass.db.direct import statement

ROTATE_REFRESH_TOKEN = statement(
    """
    UPDATE refresh_tokens SET rotated_at = :now
    WHERE token_hash = :token_hash AND oauth_application_id = :client
      AND rotated_at IS NULL AND revoked_at IS NULL
      AND expires_at > :now AND family_expires_at > :now
    RETURNING family_id, user_id, scope, sid, auth_time, acr, amr, family_expires_at,
        (SELECT sub FROM users WHERE users.id = refresh_tokens.user_id) AS user_sub,
        (SELECT disabled_at FROM users WHERE users.id = refresh_tokens.user_id) AS user_disabled_at,
        (SELECT target_user_id FROM identity_links
            WHERE identity_links.source_user_id = refresh_tokens.user_id) AS canonical_user_id
    """,
    datetimes=("now", "auth_time", "family_expires_at", "user_disabled_at"),
    json=("amr",),
)

INSERT_REFRESH_TOKEN = statement(
    """
    INSERT INTO refresh_tokens (token_hash, family_id, oauth_application_id, user_id, scope,
        sid, auth_time, acr, amr, created_at, expires_at, family_expires_at,
        access_token_jti, access_token_expires_at)
    VALUES (:token_hash, :family_id, :oauth_application_id, :user_id, :scope,
        :sid, :auth_time, :acr, :amr, :created_at, :expires_at, :family_expires_at,
        :access_token_jti, :access_token_expires_at)
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
# family is recorded only when the code's scope will give one (``offline_access``).
REDEEM_CODE = statement(
    """
    UPDATE authorization_codes SET redeemed_at = :now,
        access_token_jti = :access_token_jti,
        access_token_expires_at = :access_token_expires_at,
        refresh_token_family = CASE WHEN ' ' || scope || ' ' LIKE '% offline_access %'
            THEN :refresh_family END
    WHERE code_hash = :code_hash AND oauth_application_id = :client
      AND redeemed_at IS NULL AND expires_at > :now
    RETURNING user_id, redirect_uri, scope, nonce, code_challenge, auth_time, acr, amr, sid,
        (SELECT sub FROM users WHERE users.id = authorization_codes.user_id) AS user_sub,
        (SELECT disabled_at FROM users WHERE users.id = authorization_codes.user_id) AS user_disabled_at,
        (SELECT target_user_id FROM identity_links
            WHERE identity_links.source_user_id = authorization_codes.user_id) AS canonical_user_id
    """,
    datetimes=("now", "access_token_expires_at", "auth_time", "user_disabled_at"),
    json=("amr",),
)

USER_BY_ID = statement(
    "SELECT id, sub, disabled_at FROM users WHERE id = :id", datetimes=("disabled_at",)
)

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
