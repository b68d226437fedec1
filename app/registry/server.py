"""The aiohttp application and the process that serves it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from .core import Registry
from .errors import ErrorCode, RegistryError
from .routes import add_all_routes
from .routes.common import REGISTRY, Handler, error_response
from .store import Store

__all__ = ["create_app", "serve"]

log = logging.getLogger("app.registry")

# Confluent caps request bodies far above any sane schema; aiohttp's default is 1 MiB.
_MAX_BODY = 16 * 1024 * 1024


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as Confluent's JSON ``{"error_code", "message"}`` with the matching status."""
    try:
        return await handler(request)
    except RegistryError as exc:
        return _registry_error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.status, f"HTTP {exc.status} {exc.reason}")
    except sqlite3.Error as exc:
        log.exception("store error on %s %s", request.method, request.path)
        return _registry_error_response(RegistryError.store_error(str(exc)))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, int(ErrorCode.STORE_ERROR), "Internal Server Error")


def _registry_error_response(error: RegistryError) -> web.Response:
    return error_response(error.http_status, int(error.code), error.message)


def _registry_context(data_dir: Path) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        store = Store(data_dir)
        store.open()
        app[REGISTRY] = Registry(store)
        try:
            yield
        finally:
            store.close()

    return context


def create_app(data_dir: Path) -> web.Application:
    """The registry as an aiohttp app; its store under ``data_dir`` opens on startup."""
    app = web.Application(middlewares=[error_middleware], client_max_size=_MAX_BODY)
    app.cleanup_ctx.append(_registry_context(Path(data_dir)))
    add_all_routes(app.router)
    return app


async def serve(
    host: str,
    port: int,
    data_dir: Path,
    *,
    stop: asyncio.Event | None = None,
    access_log: bool = False,
) -> None:
    """Serve until ``stop`` is set or SIGTERM/SIGINT arrives, then shut down cleanly.

    Logs ``registry listening on http://HOST:PORT`` (the bound port, when ``port`` is 0) once
    requests are accepted.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError) as exc:  # not the main thread / no signals
            log.warning("no %s handler (%s): only the stop event ends the server", signum.name, exc)
    runner = web.AppRunner(create_app(data_dir), access_log=log if access_log else None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = port
        for address in runner.addresses:
            if isinstance(address, tuple):
                bound_port = address[1]
                break
        log.info("registry listening on http://%s:%s", host, bound_port)
        await stop.wait()
        log.info("registry shutting down")
    finally:
        await runner.cleanup()
        for signum in installed:
            loop.remove_signal_handler(signum)
