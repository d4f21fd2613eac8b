from __future__ import annotations

import asyncio
import os

import typer
import uvicorn

from onepass.cli.common import fail
from onepass.crypto import DecryptionError
from onepass.identity.enforcement import EnforcementNotSafe
from onepass.logs import configure_logging
from onepass.ops.metrics import clear_multiprocess_directory
from onepass.runtime import Runtime
from onepass.settings import ConfigError, load_settings
from onepass.startup import prepare


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
) -> None:
    """Migrate, create the first signing keys if needed, and serve."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        settings = settings.with_secret_key()
    except ConfigError as exc:
        fail(str(exc), 2)

    async def setup() -> None:
        runtime = Runtime.build(settings)
        try:
            await prepare(runtime)
        finally:
            await runtime.close()

    try:
        asyncio.run(setup())
    except (DecryptionError, EnforcementNotSafe) as exc:
        fail(str(exc), 2)
    except Exception as exc:
        fail(
            f"cannot prepare the database: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
            1,
        )

    # Workers build their own settings from the environment: hand them the key
    # resolved here (a development key may have just been generated).
    os.environ["ONEPASS_SECRET_KEY"] = settings.secret_key or ""
    # The embedded default (SQLite) delivers webhooks in-process: every worker is told
    # to, and the dispatcher lock beside the database lets exactly one of them run it.
    # On PostgreSQL, `onepass webhooks dispatch` processes do it unless this is set.
    if settings.webhook_embedded_dispatcher is None:
        embedded = settings.sqlite_path() is not None
        os.environ["ONEPASS_WEBHOOK_EMBEDDED_DISPATCHER"] = "1" if embedded else "0"
    # Metrics with several workers (PROMETHEUS_MULTIPROC_DIR): a fresh directory per start.
    clear_multiprocess_directory()
    # X-Forwarded-For/-Proto: believed from ONEPASS_TRUSTED_PROXIES only, the client being
    # the right-most address that is not a trusted proxy (uvicorn's ProxyHeadersMiddleware;
    # web.client_ip reads the result). Without the setting, not even from loopback,
    # which uvicorn would otherwise trust.
    proxies = settings.trusted_proxy_networks
    uvicorn.run(
        "onepass.app:app_from_environment",
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=settings.access_log,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace),
    )
