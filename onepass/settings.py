"""Settings, read once from the environment (prefix ``ONEPASS_``).

One ``Settings`` object is built at start-up and passed to ``create_app`` and to
every CLI command; nothing else reads the environment.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = structlog.get_logger("onepass.settings")

SECRET_KEY_MIN_LENGTH = 32

# The JWS algorithms 1pass's key ring can keep keys for (``onepass.keys.jwt.SUPPORTED_ALGS``
# is this list): RS256 (RSASSA-PKCS1-v1_5, OpenID Connect's mandatory one), PS256
# (RSASSA-PSS), ES256 (ECDSA P-256) and EdDSA (Ed25519).
SigningAlg = Literal["RS256", "PS256", "ES256", "EdDSA"]
SIGNING_ALGS: tuple[str, ...] = get_args(SigningAlg)
DEFAULT_SIGNING_ALGS = "RS256,ES256"


class ConfigError(Exception):
    """The configuration cannot work; the message names the variable to fix."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


@dataclass(frozen=True)
class SmtpServer:
    """``ONEPASS_SMTP_URL`` read: where mail goes and how the connection is secured."""

    host: str
    port: int
    implicit_tls: bool  # smtps://
    starttls: bool  # smtp://: required unless ?starttls=off
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("must start with smtp:// (STARTTLS) or smtps:// (implicit TLS)")
        if not parts.hostname:
            raise ValueError("must name a host, e.g. smtp://mail.example.com:587")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has a port that is not a number from 1 to 65535") from None
        query = parse_qs(parts.query)
        starttls = query.get("starttls", ["on"])[-1]
        if starttls not in ("on", "off") or set(query) - {"starttls"}:
            raise ValueError("takes only ?starttls=off (for a relay on a trusted network)")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 587),
            implicit_tls=implicit,
            starttls=not implicit and starttls == "on",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEPASS_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite:///./onepass.db"
    redis_url: str | None = None
    issuer: str = "http://127.0.0.1:8000"
    secret_key: str | None = Field(default=None, repr=False)
    # Earlier keys that still decrypt (never encrypt), comma-separated: the steps of a
    # rotation of ONEPASS_SECRET_KEY (`onepass secrets rotate`, docs/deploying.md).
    secret_key_fallbacks: str | None = Field(default=None, repr=False)

    # The algorithms the key ring keeps signing keys for (an active and a next key each,
    # created at start): what ID tokens may be signed with (a client's
    # id_token_signed_response_alg) and what discovery advertises. RS256 is always one
    # (OpenID Connect's mandatory algorithm), and so is the access token's.
    signing_algs: str = DEFAULT_SIGNING_ALGS
    access_token_alg: SigningAlg = "ES256"
    access_token_ttl: int = Field(default=3600, ge=60, le=86400)
    # Audience of access tokens that name no resource (RFC 9068 requires one);
    # defaults to the issuer.
    access_token_audience: str | None = None
    id_token_ttl: int = Field(default=3600, ge=60, le=86400)

    # How often each process re-reads signing keys and how long a cached client
    # is trusted: a rotation, a secret change or a deletion made by any process
    # takes effect everywhere within these many seconds.
    key_refresh_interval: float = Field(default=2.0, gt=0, le=60)
    client_cache_ttl: float = Field(default=3.0, ge=0, le=60)
    jwks_max_age: int = Field(default=300, ge=0, le=86400)

    # Largest request bodies read (onepass.edge): a form (OAuth endpoints, login and
    # console pages), a JSON body (admin API). Larger ones get 413 before they are held.
    max_form_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_json_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Reverse proxies (comma-separated CIDRs) whose X-Forwarded-For and -Proto are
    # believed: the client is the right-most address that is not one of them. None by
    # default: the header is ignored, whoever sends it (loopback included).
    trusted_proxies: str = ""

    # End-user login.
    authorization_code_ttl: int = Field(default=60, ge=10, le=600)
    # Pushed authorization requests (RFC 9126): how long a request_uri lives, and
    # whether every client must push (each client may be made to, on its own).
    par_ttl: int = Field(default=60, ge=10, le=600)
    require_pushed_authorization_requests: bool = False
    # DPoP (RFC 9449): how far a proof's iat may be from now, either way, in seconds (its
    # jti is remembered for twice that); whether the token endpoint and userinfo require
    # a nonce of the server's (DPoP-Nonce, §8 and §9), valid for one to two windows.
    dpop_proof_window: int = Field(default=60, ge=5, le=600)
    dpop_require_nonce: bool = False
    # Device Authorization Grant (RFC 8628): how long a device code and its user code
    # live; how many wrong user codes /device takes from one IP address, or one browser,
    # within the window before it refuses for the rest of the window.
    device_code_ttl: int = Field(default=600, ge=60, le=3600)
    device_user_code_max_failures: int = Field(default=10, ge=1)
    device_user_code_failure_window: int = Field(default=900, ge=10)
    login_session_ttl: int = Field(default=14 * 86400, ge=300)
    # A page's login or consent form stays valid this long.
    interaction_ttl: int = Field(default=600, ge=60, le=3600)
    refresh_token_ttl: int = Field(default=14 * 86400, ge=300)  # sliding
    refresh_token_absolute_ttl: int = Field(default=90 * 86400, ge=300)
    # argon2id parameters (RFC 9106 second recommendation); raising them rehashes
    # each password at its next successful login.
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_cost: int = Field(default=64 * 1024, ge=8 * 1024, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)
    # Failed logins allowed per account and per client IP within the window.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    login_failure_window: int = Field(default=900, ge=10)

    # Admin API (onepass.admin): the longest lifetime an admin token may be given, how
    # long a step-up nonce (action_request_nonce) stays usable, and the wrong TOTP codes
    # allowed per administrator within the login failure window.
    admin_token_max_ttl: int = Field(default=30 * 86400, ge=60)
    admin_step_up_ttl: int = Field(default=300, ge=10, le=3600)
    admin_totp_max_failures: int = Field(default=5, ge=1)
    admin_console_session_ttl: int = Field(default=1800, ge=60, le=86400)  # /admin sign-in

    # Mail (onepass.mail): the SMTP server (smtp://[user:pass@]host[:587] with STARTTLS
    # required, smtps://host[:465] for implicit TLS; `?starttls=off` only for a relay on
    # a trusted network), its credentials when not in the URL, the sender, one attempt's
    # timeout and the retry schedule (a 4xx or a lost connection is retried, a 5xx
    # is dead at once). Unset: in development mails are written to the log and kept for
    # `onepass mail list`; in production they are dead ("no SMTP server"), for triage.
    smtp_url: str | None = Field(default=None, repr=False)
    smtp_username: str | None = Field(default=None, repr=False)
    smtp_password: str | None = Field(default=None, repr=False)
    mail_from: str = "1pass <no-reply@localhost>"
    smtp_timeout: float = Field(default=30.0, gt=0, le=300)
    mail_retry_schedule: str = "1m,5m,30m,2h,6h,12h"
    mail_poll_interval: float = Field(default=2.0, gt=0, le=60)

    # Self-service. Who may create an account: `closed` (operators only), `open`
    # (anyone, once they prove their address), `invite` (`onepass users invite`);
    # open sign-ups may be limited to some email domains (comma-separated).
    signup: Literal["closed", "open", "invite"] = "closed"
    signup_email_domains: str = ""
    # How long a link works: a password reset, a sign-up to confirm, an invitation.
    password_reset_ttl: int = Field(default=1800, ge=300, le=86400)
    signup_link_ttl: int = Field(default=86400, ge=300, le=30 * 86400)
    invite_ttl: int = Field(default=7 * 86400, ge=300, le=90 * 86400)
    # Requests per address (over it: the same answer, no mail) and per client IP (over
    # it: 429) within the window, for password resets and for sign-ups.
    password_reset_max_per_address: int = Field(default=3, ge=1)
    password_reset_max_per_ip: int = Field(default=20, ge=1)
    signup_max_per_address: int = Field(default=3, ge=1)
    signup_max_per_ip: int = Field(default=10, ge=1)
    self_service_window: int = Field(default=3600, ge=60)
    # Dynamic Client Registration (RFC 7591): /register without an initial access token
    # (anyone may register a client), and how many such registrations one client IP
    # may make per self_service_window. Off: an initial access token is required.
    open_registration: bool = False
    open_registration_max_per_ip: int = Field(default=10, ge=1)
    # NIST SP 800-63B §3.1.1.2: at least this many characters; no composition rules.
    password_min_length: int = Field(default=8, ge=8, le=64)

    # Branding of the end-user pages (never of the admin console): the name in the
    # page header and titles, a logo (a same-origin path such as /static/logo.svg
    # served by the proxy, or a data:image/png|svg+xml|webp;base64 URI of at most
    # 64 KB), the accent colour (#rrggbb, served as /brand.css) and the support,
    # privacy and terms links shown under the sign-in and consent forms.
    brand_name: str = "1pass"
    brand_logo_url: str | None = Field(default=None, repr=False)
    brand_accent: str | None = None
    support_url: str | None = None
    privacy_url: str | None = None
    terms_url: str | None = None

    access_log: bool = False
    log_level: str = "info"

    # Graceful shutdown (onepass.process.Draining): after SIGTERM, /readyz answers 503 for
    # shutdown_delay seconds while requests are still served (give a load balancer's
    # readiness probe time to notice); then the server stops accepting and gives the
    # requests in flight shutdown_grace seconds.
    shutdown_delay: float = Field(default=0.0, ge=0, le=120)
    shutdown_grace: float = Field(default=10.0, ge=1, le=600)

    # How long a canonical-user resolution is cached (Redis; the in-process cache keeps
    # it a few seconds only, since it cannot be invalidated from other processes).
    canonical_cache_ttl: float = Field(default=3600, ge=1)
    # Start in production with ENFORCE_CANONICAL_RESOLUTION on even though some RP has
    # not received every identity link (the guard of `onepass identity enforce-check`).
    force_canonical_enforcement: bool = False

    webhook_allow_private_targets: bool = False
    # Webhook delivery (onepass.webhooks): the HTTP timeout of one attempt, the retry
    # schedule (delays before the 2nd, 3rd, … attempt), its jitter and the largest
    # Retry-After honoured, how long a claimed entry stays leased to its dispatcher,
    # the polling fallback to LISTEN/NOTIFY, the concurrency caps, the largest payload
    # accepted at enqueue and how much of a response body is read and kept.
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h,10h,10h"
    webhook_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    webhook_retry_after_max: float = Field(default=86400.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0, le=86400)
    webhook_poll_interval: float = Field(default=1.0, gt=0, le=60)
    webhook_concurrency: int = Field(default=64, ge=1, le=4096)
    webhook_app_concurrency: int = Field(default=16, ge=1, le=4096)
    webhook_max_payload_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    webhook_max_response_bytes: int = Field(default=4096, ge=0, le=1024 * 1024)
    # Run a dispatcher inside `onepass serve` (one per database file on SQLite, however
    # many workers). Unset: `onepass serve` decides (on for SQLite, off for PostgreSQL,
    # where `onepass webhooks dispatch` processes run beside the API).
    webhook_embedded_dispatcher: bool | None = None

    # Operations (onepass.ops). `onepass triage`: each HTTP probe's timeout, how many
    # times each probe runs, the p95 latency over which it is sev2, the window of
    # delivery attempts read and the failed share that makes "failing across the board"
    # (sev2), how late the oldest due webhook may be, and how long overdue entries may
    # wait with no delivery attempt at all before the dispatchers count as down.
    triage_timeout: float = Field(default=5.0, gt=0, le=60)
    triage_probe_rounds: int = Field(default=3, ge=1, le=20)
    triage_latency_p95: float = Field(default=2.0, gt=0)
    triage_webhook_window: float = Field(default=900.0, ge=10)
    triage_webhook_failure_ratio: float = Field(default=0.5, gt=0, le=1)
    triage_backlog_max_age: float = Field(default=600.0, gt=0)
    triage_dispatcher_stall: float = Field(default=120.0, gt=0)
    # `onepass incidents escalate` POSTs a JSON notice of each escalation step here
    # (a chat or paging webhook); unset: the step is recorded and logged only.
    escalation_webhook_url: str | None = Field(default=None, repr=False)
    escalation_webhook_timeout: float = Field(default=5.0, gt=0, le=60)
    # GET /metrics: when set, a scrape must send `Authorization: Bearer <token>`. In
    # production /metrics is off (404) until it is set.
    metrics_token: str | None = Field(default=None, repr=False)
    # How long GET /status and /status.json reuse one reading of health and incidents.
    status_cache_ttl: float = Field(default=5.0, ge=0, le=300)

    enforce_canonical_resolution: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "ENFORCE_CANONICAL_RESOLUTION", "ONEPASS_ENFORCE_CANONICAL_RESOLUTION"
        ),
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, e.g. https://id.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment (OpenID Connect Discovery §3)")
        return value.rstrip("/")

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        SmtpServer.parse(value)  # raises ValueError saying what is wrong
        return value

    @field_validator("escalation_webhook_url", "metrics_token")
    @classmethod
    def _empty_is_unset(cls, value: str | None, info: object) -> str | None:
        if value is None or not value.strip():
            return None
        if getattr(info, "field_name", "") == "escalation_webhook_url":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    "must be an absolute http(s) URL, e.g. https://hooks.example.com/…"
                )
        return value

    @field_validator("brand_name")
    @classmethod
    def _brand_name(cls, value: str) -> str:
        name = value.strip()
        if not name or len(name) > BRAND_NAME_MAX:
            raise ValueError(f"must be 1 to {BRAND_NAME_MAX} characters")
        if _CONTROL.search(name):
            raise ValueError("must not contain control characters")
        return name

    @field_validator("brand_logo_url")
    @classmethod
    def _brand_logo(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith("data:"):
            return _check_data_logo(value)
        if not value.startswith("/") or value.startswith("//") or value.startswith("/\\"):
            raise ValueError(
                "must be a path on this server (e.g. /static/logo.svg, not //host or a URL) "
                "or a data:image/png|svg+xml|webp;base64,… URI"
            )
        if _CONTROL.search(value) or re.search(r"[\s\\\"'<>]", value):
            raise ValueError("must not contain spaces, quotes, backslashes or control characters")
        return value

    @field_validator("brand_accent")
    @classmethod
    def _brand_accent(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value.strip()):
            raise ValueError("must be a colour as #rrggbb, e.g. #2f5bd3")
        return value.strip().lower()

    @field_validator("support_url", "privacy_url", "terms_url")
    @classmethod
    def _page_link(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _check_link(value.strip())

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        networks = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(
                    f"{item[:60]!r} is not an IP network; give CIDRs, e.g. 10.0.0.0/8,::1/128"
                ) from None
        return ",".join(networks)

    @field_validator("signing_algs")
    @classmethod
    def _signing_algs(cls, value: str) -> str:
        known = {alg.lower(): alg for alg in SIGNING_ALGS}
        algs = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            alg = known.get(item.lower())
            if alg is None:
                raise ValueError(
                    f"{item[:60]!r} is not an algorithm 1pass signs with; give some of "
                    f"{', '.join(SIGNING_ALGS)}, comma-separated"
                )
            algs.append(alg)
        # One order whatever the order given: discovery and the JWKS stay the same bytes.
        return ",".join(alg for alg in SIGNING_ALGS if alg in algs)

    @field_validator("signup_email_domains")
    @classmethod
    def _domains(cls, value: str) -> str:
        domains = [d.strip().lower().lstrip("@") for d in value.split(",") if d.strip()]
        for domain in domains:
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
                raise ValueError(
                    f"{domain[:60]!r} is not a domain; give e.g. example.com,example.org"
                )
        return ",".join(domains)

    @field_validator("webhook_retry_schedule", "mail_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        from onepass.durations import parse_schedule

        parse_schedule(value)  # raises ValueError naming the bad step
        return value

    @property
    def signing_algorithms(self) -> tuple[str, ...]:
        """``ONEPASS_SIGNING_ALGS`` read: the algorithms the key ring keeps keys for."""
        return tuple(self.signing_algs.split(",")) if self.signing_algs else ()

    @property
    def signup_domains(self) -> list[str]:
        return self.signup_email_domains.split(",") if self.signup_email_domains else []

    @property
    def smtp_server(self) -> SmtpServer | None:
        if self.smtp_url is None:
            return None
        server = SmtpServer.parse(self.smtp_url)
        if server.username is None and self.smtp_username:
            server = replace(server, username=self.smtp_username, password=self.smtp_password)
        return server

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def audience(self) -> str:
        return self.access_token_audience or self.issuer

    @property
    def secure_cookies(self) -> bool:
        return self.is_production or self.issuer.startswith("https://")

    @property
    def trusted_proxy_networks(self) -> list[str]:
        return self.trusted_proxies.split(",") if self.trusted_proxies else []

    @property
    def max_token_ttl(self) -> int:
        return max(self.access_token_ttl, self.id_token_ttl)

    def check(self) -> None:
        """Raise ``ConfigError`` for a setting that cannot work in this environment."""
        if self.is_production:
            if not self.secret_key:
                raise ConfigError(
                    "ONEPASS_SECRET_KEY is required when ONEPASS_ENV=production "
                    f"(at least {SECRET_KEY_MIN_LENGTH} characters, e.g. from "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            if not self.issuer.startswith("https://"):
                raise ConfigError("ONEPASS_ISSUER must be an https URL when ONEPASS_ENV=production")
        algs = self.signing_algorithms
        if "RS256" not in algs:
            raise ConfigError(
                f"ONEPASS_SIGNING_ALGS ({self.signing_algs or 'empty'}) must include RS256, "
                "the algorithm every OpenID Connect RP can verify (OpenID Connect Core §15.1)"
            )
        if self.access_token_alg not in algs:
            raise ConfigError(
                f"ONEPASS_ACCESS_TOKEN_ALG={self.access_token_alg} has no signing key: add it "
                f"to ONEPASS_SIGNING_ALGS (now {self.signing_algs})"
            )
        if self.webhook_lease_seconds < self.webhook_timeout + 1:
            raise ConfigError(
                "ONEPASS_WEBHOOK_LEASE_SECONDS must exceed ONEPASS_WEBHOOK_TIMEOUT by at least "
                "a second, or a slow delivery could be claimed again while still in flight"
            )
        if self.secret_key is not None and len(self.secret_key) < SECRET_KEY_MIN_LENGTH:
            raise ConfigError(
                f"ONEPASS_SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters long"
            )

    def sqlite_path(self) -> Path | None:
        if not self.database_url.startswith("sqlite:"):
            return None
        rest = self.database_url.split(":", 1)[1].removeprefix("///")
        if rest in ("", ":memory:"):
            return None
        return Path(rest)

    @property
    def secret_key_fallback_list(self) -> list[str]:
        return [k.strip() for k in (self.secret_key_fallbacks or "").split(",") if k.strip()]

    def with_secret_key(self) -> Settings:
        """Return settings whose ``secret_key`` is set.

        In development a missing key is generated once and kept beside the SQLite
        database (or in the working directory for another database), with a warning.
        In production a missing key is a start-up error (``check``).
        """
        self.check()
        if self.secret_key:
            return self
        db_path = self.sqlite_path()
        key_file = (
            db_path.with_name(db_path.name + ".secret-key")
            if db_path is not None
            else Path(".onepass-secret-key")
        )
        key, created = _read_or_create_key_file(key_file)
        if created:
            log.warning(
                "secret_key.generated_for_development",
                file=str(key_file),
                hint="set ONEPASS_SECRET_KEY; production refuses to start without it",
            )
        return self.model_copy(update={"secret_key": key})


BRAND_NAME_MAX = 60
BRAND_LOGO_MAX_BYTES = 64 * 1024
LOGO_TYPES = ("image/png", "image/svg+xml", "image/webp")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_data_logo(value: str) -> str:
    """A logo inlined in the page: an image type <img> shows and nothing else (a data:
    text/html or a bare data: URI is refused), base64 that decodes, at most 64 KB."""
    if len(value) > BRAND_LOGO_MAX_BYTES:
        raise ValueError(f"a data: logo must be at most {BRAND_LOGO_MAX_BYTES // 1024} KB")
    match = re.fullmatch(r"data:([a-z+/]+);base64,([A-Za-z0-9+/]+={0,2})", value)
    if match is None or match.group(1) not in LOGO_TYPES:
        raise ValueError(
            "a data: logo must be data:image/png;base64,…, data:image/svg+xml;base64,… "
            "or data:image/webp;base64,…"
        )
    try:
        base64.b64decode(match.group(2), validate=True)
    except ValueError:
        raise ValueError("a data: logo's base64 does not decode") from None
    return value


def _check_link(value: str) -> str:
    """A link shown to people: an absolute https URL (http only to this machine, for
    development)."""
    parts = urlsplit(value)
    try:
        host = parts.hostname
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        host = None
    if _CONTROL.search(value) or " " in value or not host or parts.scheme not in ("http", "https"):
        raise ValueError("must be an absolute https URL, e.g. https://example.com/help")
    if parts.scheme == "http" and host not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("must use https (http only for localhost or 127.0.0.1)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user name or password")
    return value


def _read_or_create_key_file(path: Path) -> tuple[str, bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < SECRET_KEY_MIN_LENGTH:
            raise ConfigError(
                f"the development secret key file {path} is damaged; delete it"
            ) from None
        return key, False
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (CLI flags)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigError(_describe_validation_error(exc)) from None


def _describe_validation_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for error in errors():
        field = ".".join(str(part) for part in error.get("loc", ()))
        name = (
            "ENFORCE_CANONICAL_RESOLUTION" if "canonical" in field else f"ONEPASS_{field.upper()}"
        )
        lines.append(f"{name}: {error.get('msg')}")
    return "invalid configuration: " + "; ".join(lines)
