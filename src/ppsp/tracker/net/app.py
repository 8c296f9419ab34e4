"""The tracker's aiohttp application and its serving: handler, background tasks, socket.

:func:`create_app` puts the request handler (:mod:`ppsp.tracker.net.handler`) in an aiohttp
application with its background tasks: a task expires peers whose timers ran out, sleeping
until the core's :meth:`Tracker.next_deadline` (re-read after every wake-up, the way aioquic
re-arms its single timer), never longer than ``expiry_poll`` seconds so that deadlines created
by new requests are noticed promptly; the connection guard's watchdog; the pruning (and, on
Redis, the sharing) of per-host request rates; and, for several processes, the writing of this
process's counters to the file ``/metrics`` sums.  The dashboard (``GET /``, ``/dashboard/``,
``/api/swarms``: :mod:`ppsp.tracker.net.dashboard`) has its routes before the catch-all ones, and
the expiry task takes its history's samples.

:func:`running_tracker` checks the storage before the socket listens (a tracker whose storage
cannot be used does not start) and serves through a
:class:`~ppsp.tracker.net.guard.GuardedSite`: connection bounds, head and idle timeouts, and
TLS (:mod:`ppsp.tracker.net.tls`) when the settings carry a certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.net.dashboard import DASHBOARD_APP_KEY, Dashboard
from ppsp.tracker.net.guard import GuardedSite, SharedRates
from ppsp.tracker.net.handler import TRACKER_APP_KEY, TrackerHandler
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.tracker.net.settings import ServerSettings, config_limits
from ppsp.tracker.net.upkeep import Clock, Expirer, clock_for, make_storage

__all__ = ["RunningTracker", "create_app", "running_tracker"]

log = logging.getLogger("ppsp.tracker.net.server")
"""The server's log (one name for the HTTP server, whichever module of it writes)."""


def create_app(
    tracker: Tracker,
    *,
    clock: Clock = time.monotonic,
    settings: ServerSettings | None = None,
    run_expiry: bool = True,
    shared_rates: str | None = None,
) -> web.Application:
    """Build the aiohttp application that serves ``tracker``.

    ``clock`` gives the ``now`` passed to the core; ``run_expiry`` starts the background task that
    expires peers at their deadlines (tests that drive :class:`Expirer` themselves turn it off).
    ``shared_rates``, a Redis URL, shares the per-host request rates with the other trackers on
    that Redis (:class:`~ppsp.tracker.net.guard.SharedRates`).  The connection bounds and timeouts
    apply where the application is served through a :class:`~ppsp.tracker.net.guard.GuardedSite`
    with the application's guard (:func:`running_tracker` does so).
    """
    settings = settings or ServerSettings()
    state = TrackerHandler(tracker, clock, settings)
    # client_max_size is a second line of defence: handlers read the body with their own bound.
    app = web.Application(client_max_size=settings.max_body)
    app[TRACKER_APP_KEY] = state
    dashboard: Dashboard | None = None
    if settings.dashboard:
        dashboard = Dashboard(state, addresses=settings.dashboard_addresses)
        app[DASHBOARD_APP_KEY] = dashboard
        dashboard.add_routes(app.router)
    app.router.add_get("/status", state.status)
    app.router.add_get("/metrics", state.metrics_page)
    app.router.add_post("/{path:.*}", state.ppsp)
    app.router.add_route("*", "/{path:.*}", state.elsewhere)

    def background(name: str, job: Callable[[], Any]) -> None:
        async def context(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(job(), name=name)
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(context)

    if run_expiry:
        expirer = Expirer(
            tracker,
            clock,
            poll=settings.expiry_poll,
            on_expired=state.metrics.count_expired,
            health=state.health,
            sampler=None if dashboard is None else dashboard.sampler,
        )
        background("ppsp-tracker-expiry", expirer.run)

    background("ppsp-tracker-guard", state.guard.watch)
    rates = state.rates
    if rates is not None:

        async def prune() -> None:
            while True:
                await asyncio.sleep(10.0)
                rates.prune(time.monotonic())

        background("ppsp-tracker-rates", prune)
        if shared_rates is not None:
            sharing = SharedRates(rates, shared_rates)

            async def share() -> None:
                try:
                    await sharing.run()
                finally:
                    await sharing.close()

            background("ppsp-tracker-shared-rates", share)

    shared = state.metrics.shared
    if shared is not None:
        flush = settings.metrics_flush

        async def metrics_writer() -> None:
            while True:
                await asyncio.sleep(flush)
                shared.write_if_changed()

        async def metrics_task(app: web.Application) -> AsyncIterator[None]:
            shared.write()
            task = asyncio.create_task(metrics_writer(), name="ppsp-tracker-metrics")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            shared.write()  # the last requests of a worker that stops count too

        app.cleanup_ctx.append(metrics_task)
    return app


@dataclass(frozen=True, slots=True)
class RunningTracker:
    """A tracker listening on a socket: its base URL and the service behind it."""

    url: str
    tracker: Tracker
    app: web.Application


@contextlib.asynccontextmanager
async def running_tracker(
    config: TrackerConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    storage_url: str | None = None,
    settings: ServerSettings | None = None,
    sock: socket.socket | None = None,
    check_storage: bool = True,
) -> AsyncIterator[RunningTracker]:
    """Serve a tracker on ``host:port`` (a free port when 0) for the duration of the block.

    With ``sock``, a listening socket (shared by several workers, see
    :mod:`ppsp.tracker.net.workers`), the tracker serves on it instead.  On exit the listening
    socket is closed, connections are finished, the expiry task stops and the storage is closed.

    The storage is checked first (``check_storage``; a worker whose parent checked it skips
    this): one that cannot be used raises :class:`~ppsp.errors.ServiceUnavailable` before
    anything listens.  A malformed storage URL raises ValueError.
    """
    settings = (settings or ServerSettings()).loaded()
    config = _effective_config(config, settings)
    settings = dataclasses.replace(settings, limits=config_limits(config))
    storage = make_storage(storage_url)
    if check_storage:
        try:
            await storage.check()
        except BaseException:
            await storage.close()
            raise
    tracker = Tracker(storage, config)
    shared = storage_url if isinstance(storage, RedisStorage) else None
    app = create_app(tracker, clock=clock_for(storage_url), settings=settings, shared_rates=shared)
    # Keep-alive connections idle longer than the bound are closed by aiohttp itself too.
    handler_args: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": config.limits.idle_timeout,
    }
    runner = web.AppRunner(app, handle_signals=False, **handler_args)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    try:
        await runner.setup()
        if settings.ssl_context is not None:
            _quiet_tls_failures(loop)
        site = GuardedSite(
            runner,
            app[TRACKER_APP_KEY].guard,
            host=host,
            port=port,
            sock=sock,
            ssl_context=settings.ssl_context,
            backlog=1024,
            **handler_args,
        )
        await site.start()
        yield RunningTracker(url=site.name, tracker=tracker, app=app)
    finally:
        await runner.cleanup()
        if settings.ssl_context is not None:
            loop.set_exception_handler(previous_handler)
        close = getattr(storage, "close", None)
        if close is not None:
            await close()


def _effective_config(config: TrackerConfig, settings: ServerSettings) -> TrackerConfig:
    """The core's config under these settings: their limits (when given), and credentials
    required when there is an auth key."""
    changes: dict[str, Any] = {}
    if settings.limits is not None and settings.limits != config_limits(config):
        changes["limits"] = settings.limits
    if settings.auth_key is not None and not getattr(config, "require_credentials", True):
        changes["require_credentials"] = True
    return dataclasses.replace(config, **changes) if changes else config


def _quiet_tls_failures(loop: asyncio.AbstractEventLoop) -> None:
    """Keep failed TLS handshakes (clear text on the port, scanners, untrusting clients) out of
    the log as tracebacks: one debug line each.  Anything else goes to the loop's handler."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            log.debug("TLS connection failed: %s", exc)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
