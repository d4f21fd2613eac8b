"""The application factory.

``create_app(settings)`` returns an ASGI application: FastAPI for every route but the
few every RP calls on every login, which are bare ASGI handlers: the token endpoint
(``oauth.token_endpoint``), userinfo (``oauth.userinfo_endpoint``), discovery and the
JWKS (``oauth.well_known``).
The process's services are built in its lifespan (``onepass.services``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from onepass import __version__, instruments
from onepass.accounts.csrf import CSRF, CSRF_TOKENS
from onepass.accounts.passwords import PasswordHasher
from onepass.accounts.second_factor import SECOND_FACTOR, SecondFactor
from onepass.accounts.signin import SIGN_IN, SignIn
from onepass.accounts.throttle import Limits, LoginThrottle
from onepass.admin import api as admin_api
from onepass.admin import console as admin_console
from onepass.admin.api import reference as admin_reference
from onepass.admin.errors import AdminError
from onepass.clients.assertions import AssertionVerifier, InlineKeys
from onepass.clients.auth import CLIENT_AUTHENTICATOR, ClientAuthenticator
from onepass.clients.registry import CLIENTS, ClientCache
from onepass.clients.resources import RESOURCES, ResourceCache
from onepass.clock import Clock
from onepass.crypto import DecryptionError
from onepass.db.errors import CANDIDATES as DATABASE_ERRORS
from onepass.db.errors import is_unavailable
from onepass.edge import Edge, Protocol, protocol_of, refusal, unavailable
from onepass.identity.canonical import RESOLVER, CanonicalResolver
from onepass.instruments import route_template
from onepass.keys.keyring import KEYRING, KeyRing
from onepass.logs import configure_logging
from onepass.oauth import authorize_routes, device_routes, endpoints, logout
from onepass.oauth import routes as oauth_routes
from onepass.oauth.asgi import Receive, Scope, Send
from onepass.oauth.authorize_routes import ENROLMENT
from onepass.oauth.bearer import VERIFIER, AccessTokenVerifier
from onepass.oauth.client_keys import FetchedKeys
from onepass.oauth.dpop import DPOP, DPoP
from onepass.oauth.grants.authorization_code import AuthorizationCodeGrant
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.grants.client_credentials import ClientCredentialsGrant
from onepass.oauth.grants.device_code import DeviceCodeGrant
from onepass.oauth.grants.refresh_token import RefreshTokenGrant
from onepass.oauth.grants.token_exchange import TokenExchangeGrant
from onepass.oauth.interaction import SEALER, Sealer
from onepass.oauth.request_object import REQUEST_OBJECTS, RequestObjects
from onepass.oauth.routes import DISCOVERY
from onepass.oauth.ssf import routes as ssf_routes
from onepass.oauth.token_endpoint import TokenEndpoint
from onepass.oauth.userinfo import UserInfo
from onepass.oauth.userinfo_endpoint import UserInfoEndpoint
from onepass.oauth.well_known import PATHS as well_known_paths
from onepass.oauth.well_known import WellKnown
from onepass.oauth_errors import OAuthError
from onepass.ops import routes as ops_routes
from onepass.ops.home import home_page, wants_html
from onepass.ops.releases import run_heartbeat
from onepass.ops.status import STATUS_PAGE, StatusPage
from onepass.pages import Brand, use_brand
from onepass.process import DRAINING, settle_gc
from onepass.release import current as current_release
from onepass.runtime import Runtime
from onepass.selfservice import account_routes, enrolment_routes, registration_routes
from onepass.selfservice import routes as selfservice_routes
from onepass.selfservice.account import ACCOUNT, Account
from onepass.selfservice.recovery import RECOVERY, Recovery
from onepass.selfservice.signup import SIGNUP, Signup
from onepass.services import Services
from onepass.settings import ConfigError, Settings, load_settings
from onepass.web import BadParameter, BodyTooLarge
from onepass.webhooks import routes as webhook_routes
from onepass.webhooks.embedded import run_embedded

log = structlog.get_logger("onepass.app")

STATIC = Path(__file__).parent / "static"


class StartupError(Exception):
    pass


# A bare ASGI handler in front of FastAPI: answers one request, returns the status sent.
Handler = Callable[[Scope, Receive, Send], Awaitable[int]]


def _services(runtime: Runtime, keyring: KeyRing) -> tuple[Services, dict[str, Handler]]:
    """Every service of the process, under its typed name (``onepass.services``), and
    the bare ASGI handlers ``OnePass`` calls directly, by path (``/token``, ``/userinfo``,
    discovery and the JWKS)."""
    settings = runtime.settings
    services = Services(runtime)
    clients = ClientCache(runtime.database, settings.client_cache_ttl)
    resolver = CanonicalResolver(runtime.cache, settings.canonical_cache_ttl)
    resources = ResourceCache(runtime.database, settings.client_cache_ttl)
    ctx = TokenContext(
        settings=settings,
        keyring=keyring,
        clock=runtime.clock,
        database=runtime.database,
        hasher=runtime.hasher,
        direct=runtime.direct,
        resolver=resolver,
        resources=resources,
        cache=runtime.cache,
    )
    # Client authentication for /token, /par, /revoke, /introspect and
    # /webhooks/signing-keys: secrets, or private_key_jwt assertions (keys inline or
    # fetched from the client's jwks_uri behind the webhook SSRF guard).
    client_keys = InlineKeys(
        FetchedKeys(
            production=settings.is_production,
            allow_private=settings.webhook_allow_private_targets,
        )
    )
    services.provide(REQUEST_OBJECTS, RequestObjects(client_keys, runtime.clock, settings.issuer))
    authenticator = ClientAuthenticator(
        clients,
        runtime.hasher,
        runtime.clock,
        AssertionVerifier(runtime.database, runtime.clock, settings.issuer, client_keys),
    )
    secret_key = settings.secret_key or ""
    # DPoP proofs (RFC 9449): a jti is spent for every worker in Redis when there is
    # one, else in this process's memory.
    dpop = DPoP(
        runtime.cache if settings.redis_url else None,
        runtime.clock,
        secret_key=secret_key,
        window=settings.dpop_proof_window,
        require_nonce=settings.dpop_require_nonce,
    )
    verifier = AccessTokenVerifier(keyring, settings, runtime.clock, clients)
    token_endpoint = TokenEndpoint(
        ctx,
        authenticator,
        [
            ClientCredentialsGrant(),
            AuthorizationCodeGrant(),
            RefreshTokenGrant(),
            TokenExchangeGrant(verifier),  # RFC 8693
            # RFC 8628: the device_code grant.
            DeviceCodeGrant(),
        ],
        dpop=dpop,
        max_body=settings.max_form_bytes,
        metrics=instruments.TOKENS,
    )
    throttle = LoginThrottle(
        runtime.cache,
        Limits(
            per_account=settings.login_max_failures_per_account,
            per_ip=settings.login_max_failures_per_ip,
            window=settings.login_failure_window,
        ),
        secret_key,
    )
    passwords = PasswordHasher(settings)
    services.provide(KEYRING, keyring)
    services.provide(CLIENTS, clients)
    services.provide(RESOURCES, resources)
    services.provide(RESOLVER, resolver)
    services.provide(CLIENT_AUTHENTICATOR, authenticator)
    services.provide(DPOP, dpop)
    discovery = orjson.dumps(oauth_routes.discovery_document(settings))
    services.provide(DISCOVERY, discovery)
    services.provide(SEALER, Sealer(secret_key, settings.interaction_ttl))
    services.provide(CSRF_TOKENS, CSRF(secret_key))
    # RFC 8628 §5.1: wrong user codes at /device, per browser and (three times as many,
    # for people behind one address) per IP address.
    services.provide(
        device_routes.DEVICE_CODE_THROTTLE,
        LoginThrottle(
            runtime.cache,
            Limits(
                per_account=settings.device_user_code_max_failures,
                per_ip=3 * settings.device_user_code_max_failures,
                window=settings.device_user_code_failure_window,
            ),
            secret_key,
            namespace="device-code",
        ),
    )
    services.provide(
        SIGN_IN,
        SignIn(runtime.database, runtime.clock, runtime.hasher, passwords, throttle, runtime.box),
    )
    services.provide(VERIFIER, verifier)
    services.provide(STATUS_PAGE, StatusPage(runtime, keyring))
    services.provide(RECOVERY, Recovery(runtime, passwords))
    services.provide(SIGNUP, Signup(runtime, passwords))
    services.provide(ACCOUNT, Account(runtime, services.get(SIGN_IN)))
    services.provide(ENROLMENT, enrolment_routes.enrolment)
    # Second-factor codes: counted per account as passwords are, in their own counts
    # (a right password does not give them back).
    code_throttle = LoginThrottle(
        runtime.cache,
        Limits(
            per_account=settings.login_max_failures_per_account,
            per_ip=settings.login_max_failures_per_ip,
            window=settings.login_failure_window,
        ),
        secret_key,
        namespace="second-factor",
    )
    services.provide(
        SECOND_FACTOR,
        SecondFactor(
            runtime.database,
            runtime.clock,
            runtime.box,
            runtime.hasher,
            code_throttle,
            settings.login_session_ttl,
        ),
    )
    userinfo = UserInfoEndpoint(
        UserInfo(verifier, runtime.direct, settings.enforce_canonical_resolution, dpop),
        dpop,
        issuer=settings.issuer,
        max_body=settings.max_form_bytes,
    )
    well_known = WellKnown(
        keyring, discovery, max_age=settings.jwks_max_age, limit=settings.max_form_bytes
    )
    handlers: dict[str, Handler] = {"/token": token_endpoint, "/userinfo": userinfo}
    handlers.update(dict.fromkeys(well_known_paths, well_known))
    return services, handlers


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def oauth_error(_request: Request, exc: OAuthError) -> Response:
        return Response(
            exc.json_bytes(),
            status_code=exc.status,
            media_type="application/json",
            headers=exc.response_headers(),
        )

    @app.exception_handler(AdminError)
    async def admin_error(_request: Request, exc: AdminError) -> JSONResponse:
        return JSONResponse(
            exc.body(), status_code=exc.status, headers={"cache-control": "no-store", **exc.headers}
        )

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> Response:
        return refusal(protocol_of(request.url.path), 413, str(exc.detail))

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> Response:
        return refusal(protocol_of(request.url.path), 400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _browsing(request):
            # A person at `/` or a mistyped address: what this is, and where to go.
            return home_page(request, missing=request.url.path != "/")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        return JSONResponse(
            {"error": "invalid_request", "message": "invalid input", "problems": problems},
            status_code=400,
        )

    async def database_error(request: Request, exc: Exception) -> Response:
        if not is_unavailable(exc):
            raise exc  # a bug: the 500 below, with its traceback in the log
        # The database is away (crashed, restarting, unreachable): the client may try
        # again, and /up and triage say why. Not a bug, so no traceback.
        log.error("request.database_unavailable", path=request.url.path, error=type(exc).__name__)
        return unavailable(protocol_of(request.url.path))

    for candidate in DATABASE_ERRORS:
        app.add_exception_handler(candidate, database_error)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("request.unexpected_error", error=type(exc).__name__, exc_info=exc)
        return JSONResponse({"error": "server_error", "message": "internal error"}, status_code=500)


def _browsing(request: Request) -> bool:
    """A browser's page request, not an API client's (``ops.home``)."""
    path = request.url.path
    return (
        request.method in ("GET", "HEAD")
        and wants_html(request.headers.get("accept"))
        and protocol_of(path) is not Protocol.OAUTH
        and not path.startswith("/api/")
    )


async def _load_secrets_until_done(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(2.0)
        try:
            await runtime.load_installation_secrets()
        except Exception as exc:
            log.error("secrets.load_failed", error=type(exc).__name__)
            continue
        log.info("secrets.loaded")
        return


class OnePass:
    """The ASGI entry point: the bare handlers first, FastAPI for the rest. Its
    lifespan builds the process's services (``services``, see ``onepass.services``)."""

    # Set by the lifespan: the bare handlers by path (/token, /userinfo, discovery and
    # the JWKS), read on every request.
    services: Services
    handlers: dict[str, Handler]

    def __init__(self, settings: Settings, clock: Clock | None, settle: bool) -> None:
        self.settings = settings
        self.clock = clock
        self.settle = settle
        self.api = FastAPI(
            title="1pass",
            version=__version__,
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
        )
        # Bodies bounded, control characters refused, for every route but /token (edge.py).
        self.edge = Edge(self.api, settings)
        # The end-user pages' brand (ONEPASS_BRAND_*), for every page this app renders.
        self.brand = Brand.of(settings)
        self.http_metrics = instruments.HTTP

    @property
    def state(self) -> Any:
        """The FastAPI application's state: ``services`` (``onepass.services``), and the
        names the admin package still reads (``runtime``, ``resolver``, ``csrf``)."""
        return self.api.state

    @contextlib.asynccontextmanager
    async def _lifespan(self, api: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.build(self.settings, self.clock)
        keyring = KeyRing(
            runtime.database,
            runtime.box,
            runtime.clock,
            refresh_interval=runtime.settings.key_refresh_interval,
        )
        secrets_loader: asyncio.Task[None] | None = None
        try:
            await runtime.load_installation_secrets()
        except DecryptionError as exc:
            await runtime.close()
            raise StartupError(
                f"{exc}; ONEPASS_SECRET_KEY (or one of ONEPASS_SECRET_KEY_FALLBACKS) must be "
                "the key the installation's secrets were sealed with"
            ) from None
        except Exception as exc:
            # The database may be down at start: keep trying, or hashes would be computed
            # under the wrong key once it answers.
            log.error("secrets.initial_load_failed", error=type(exc).__name__)
            secrets_loader = asyncio.create_task(_load_secrets_until_done(runtime))
        try:
            await keyring.refresh()
        except DecryptionError as exc:
            await runtime.close()
            raise StartupError(
                f"{exc}; ONEPASS_SECRET_KEY must be the key the keys were created with"
            ) from None
        except Exception as exc:
            # The database may be down at start: serve 503 from /up and keep trying.
            log.error("keys.initial_load_failed", error=type(exc).__name__, detail=str(exc)[:200])
        services, self.handlers = _services(runtime, keyring)
        self.services = services
        api.state.services = services
        refresher = asyncio.create_task(keyring.run(), name="keyring-refresh")
        # Metrics counted in plain Python reach prometheus-client every second (instruments).
        metrics_flusher = asyncio.create_task(instruments.run_flusher(), name="metrics-flush")
        # `onepass serve` on SQLite: one worker runs the webhook dispatcher (webhooks.embedded).
        webhooks_stop = asyncio.Event()
        webhooks_task = (
            asyncio.create_task(run_embedded(runtime, webhooks_stop), name="webhooks-dispatcher")
            if runtime.settings.webhook_embedded_dispatcher
            else None
        )
        # `onepass serve`: this worker's release in process_heartbeats (onepass triage).
        beat_stop = asyncio.Event()
        beating = (
            asyncio.create_task(
                run_heartbeat(
                    runtime.database,
                    runtime.clock,
                    current_release(),
                    "serve",
                    beat_stop,
                    runtime.box.fingerprints,
                ),
                name="release-heartbeat",
            )
            if self.settle
            else None
        )
        if self.settle:
            settle_gc()
            # SIGTERM: /readyz says 503 for ONEPASS_SHUTDOWN_DELAY before uvicorn drains.
            DRAINING.install(asyncio.get_running_loop(), runtime.settings.shutdown_delay)
        try:
            yield
        finally:
            webhooks_stop.set()
            beat_stop.set()
            if beating is not None:
                await beating
            if webhooks_task is not None:
                await webhooks_task  # finishes the deliveries in flight, releases the rest
            refresher.cancel()
            metrics_flusher.cancel()
            if secrets_loader is not None:
                secrets_loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await secrets_loader
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            with contextlib.suppress(asyncio.CancelledError):
                await metrics_flusher
            await runtime.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)  # lifespan
            return
        # Metrics (instruments): every request's route template, status and duration,
        # counted in plain Python (HttpMetrics), the token endpoint's included.
        started = perf_counter()
        status = 500  # an application that sends nothing failed
        path = scope["path"]
        handler = self.handlers.get(path)
        if handler is not None:
            # The handler returns the status it sent: no wrapper on its hot path.
            try:
                status = await handler(scope, receive, send)
            finally:
                self.http_metrics.observe(path, status, perf_counter() - started)
            return

        async def send_noting_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with use_brand(self.brand):
                await self.edge(scope, receive, send_noting_status)
        finally:
            self.http_metrics.observe(route_template(scope), status, perf_counter() - started)


def create_app(
    settings: Settings, clock: Clock | None = None, *, server_process: bool = False
) -> OnePass:
    """The application; ``server_process``: this process serves it until it ends
    (``onepass serve``), so the garbage collector is tuned for that (``process.py``)."""
    app = OnePass(settings, clock, server_process)
    api = app.api
    _error_handlers(api)
    api.include_router(ops_routes.router)
    api.include_router(oauth_routes.router)
    api.include_router(authorize_routes.router)
    api.include_router(endpoints.router)
    api.include_router(device_routes.router)
    api.include_router(logout.router)
    api.include_router(selfservice_routes.router)
    api.include_router(account_routes.router)
    api.include_router(registration_routes.router)
    api.include_router(enrolment_routes.router)
    api.include_router(webhook_routes.router)
    api.include_router(ssf_routes.router)
    api.include_router(admin_api.router)
    api.include_router(admin_reference.router)
    api.include_router(admin_console.router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def app_from_environment() -> OnePass:
    """uvicorn factory for ``onepass serve`` workers: settings from the environment."""
    try:
        settings = load_settings()
        settings.check()
    except ConfigError as exc:
        raise SystemExit(f"onepass: {exc}") from None
    configure_logging(settings.log_level)
    return create_app(settings, server_process=True)
