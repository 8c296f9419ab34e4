"""The tracker's application and its serving: handler, background tasks, socket.

:func:`create_app` puts the request handler (:mod:`ppsp.tracker.net.handler`) in a
:class:`TrackerApp` with its background tasks: a task expires peers whose timers ran out, sleeping
until the core's :meth:`Tracker.next_deadline` (re-read after every wake-up, the way aioquic
re-arms its single timer), never longer than ``expiry_poll`` seconds so that deadlines created
by new requests are noticed promptly; the pruning (and, on Redis, the sharing) of per-host
request rates; and, for several processes, the writing of this process's counters to the file
``/metrics`` sums.  The dashboard (``GET /``, ``/dashboard/``, ``/api/swarms``:
:mod:`ppsp.tracker.net.dashboard`) is routed by the handler, and the expiry task takes its
history's samples.

:func:`serve_app` serves an application on the project's own HTTP/1.1 server
(:mod:`ppsp.http.server`): the connection guard (:class:`~ppsp.tracker.net.guard.ConnectionGuard`)
counts and bounds connections, the server applies the head, idle and body timeouts of the
limits, and TLS (:mod:`ppsp.tracker.net.tls`) when given a context.  :func:`running_tracker`
checks the storage before the socket listens (a tracker whose storage cannot be used does not
start) and serves through :func:`serve_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ppsp.http.server import HTTPServer, serve
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.net.dashboard import DASHBOARD_APP_KEY, Dashboard
from ppsp.tracker.net.guard import SharedRates
from ppsp.tracker.net.handler import TRACKER_APP_KEY, AppKey, TrackerHandler
from ppsp.tracker.net.settings import ServerSettings, config_limits
from ppsp.tracker.net.upkeep import Clock, Expirer, clock_for, make_storage
from ppsp.tracker.storage import MemoryStorage

__all__ = [
    "STOP_GRACE",
    "RunningTracker",
    "TrackerApp",
    "create_app",
    "running_tracker",
    "serve_app",
]

log = logging.getLogger("ppsp.tracker.net.server")
"""The server's log (one name for the HTTP server, whichever module of it writes)."""

STOP_GRACE = 5.0
"""Seconds a stopping tracker lets the requests it is answering finish (idle connections close
at once)."""

_T = TypeVar("_T")


class TrackerApp:
    """A tracker's handler with its dashboard and background tasks, ready to be served.

    ``app[TRACKER_APP_KEY]`` is the handler state, ``app[DASHBOARD_APP_KEY]`` the dashboard
    (when it has one).  :meth:`start` starts the background tasks, :meth:`stop` ends them
    (:func:`serve_app` does both).
    """

    def __init__(self, handler: TrackerHandler) -> None:
        self.handler = handler
        self._parts: dict[AppKey[Any], object] = {TRACKER_APP_KEY: handler}
        self._jobs: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self._on_start: list[Callable[[], None]] = []
        self._on_stop: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.server: HTTPServer | None = None
        """The HTTP server serving the application (set by :func:`serve_app` while it does)."""

    def __getitem__(self, key: AppKey[_T]) -> _T:
        return self._parts[key]  # type: ignore[return-value]

    def __setitem__(self, key: AppKey[_T], value: _T) -> None:
        self._parts[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._parts

    def background(self, name: str, job: Callable[[], Awaitable[Any]]) -> None:
        """Run ``job`` as a task named ``name`` while the application is started."""
        self._jobs.append((name, job))

    async def start(self) -> None:
        """Start the background tasks."""
        for call in self._on_start:
            call()
        for name, job in self._jobs:
            self._tasks.append(asyncio.create_task(job(), name=name))  # type: ignore[arg-type]

    async def stop(self) -> None:
        """Cancel the background tasks and wait for them to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for call in self._on_stop:
            call()


def create_app(
    tracker: Tracker,
    *,
    clock: Clock = time.monotonic,
    settings: ServerSettings | None = None,
    run_expiry: bool = True,
    shared_rates: str | None = None,
) -> TrackerApp:
    """Build the application that serves ``tracker``.

    ``clock`` gives the ``now`` passed to the core; ``run_expiry`` starts the background task that
    expires peers at their deadlines (tests that drive :class:`Expirer` themselves turn it off).
    ``shared_rates``, a Redis or Redis Cluster URL, shares the per-host request rates with the
    other trackers on that store (:class:`~ppsp.tracker.net.guard.SharedRates`).  The
    connection bounds and timeouts apply where the application is served (:func:`serve_app`).
    """
    settings = settings or ServerSettings()
    state = TrackerHandler(tracker, clock, settings)
    app = TrackerApp(state)
    dashboard: Dashboard | None = None
    if settings.dashboard:
        dashboard = Dashboard(state, addresses=settings.dashboard_addresses)
        app[DASHBOARD_APP_KEY] = dashboard
        state.dashboard = dashboard

    if run_expiry:
        expirer = Expirer(
            tracker,
            clock,
            poll=settings.expiry_poll,
            on_expired=state.metrics.count_expired,
            health=state.health,
            sampler=None if dashboard is None else dashboard.sampler,
        )
        app.background("ppsp-tracker-expiry", expirer.run)

    rates = state.rates
    if rates is not None:

        async def prune() -> None:
            while True:
                await asyncio.sleep(10.0)
                rates.prune(time.monotonic())

        app.background("ppsp-tracker-rates", prune)
        if shared_rates is not None:
            sharing = SharedRates(rates, shared_rates)

            async def share() -> None:
                try:
                    await sharing.run()
                finally:
                    await sharing.close()

            app.background("ppsp-tracker-shared-rates", share)

    shared = state.metrics.shared
    if shared is not None:
        flush = settings.metrics_flush

        async def metrics_writer() -> None:
            while True:
                await asyncio.sleep(flush)
                shared.write_if_changed()

        app._on_start.append(shared.write)
        app.background("ppsp-tracker-metrics", metrics_writer)
        app._on_stop.append(shared.write)  # the last requests of a worker that stops count too
    return app


@contextlib.asynccontextmanager
async def serve_app(
    app: TrackerApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    ssl_context: ssl.SSLContext | None = None,
    grace: float = STOP_GRACE,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (or the listening ``sock``) for the duration of the block;
    its base URL.

    The application's background tasks run meanwhile.  On exit the listening socket is closed,
    idle connections at once, and the requests being answered get ``grace`` seconds.
    """
    state = app.handler
    limits = state.limits
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    if ssl_context is not None:
        _quiet_tls_failures(loop)
    await app.start()
    try:
        server = await serve(
            state,
            None if sock is not None else host,
            0 if sock is not None else port,
            sock=sock,
            ssl=ssl_context,
            backlog=1024,
            body_limit=state.settings.max_body,
            head_timeout=limits.header_timeout,
            idle_timeout=limits.idle_timeout,
            body_timeout=limits.body_timeout,
            hooks=state.guard,
            chunked_requests=True,  # PPSP-TP bodies may come chunked (bounded the same)
            body_budget=state.body_budget,  # shown on /metrics and /status
        )
        app.server = server
        try:
            bound_host, bound_port = server.addresses[0]
            scheme = "https" if ssl_context is not None else "http"
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield f"{scheme}://{shown}:{bound_port}"
        finally:
            app.server = None
            await server.close(grace)
    finally:
        await app.stop()
        if ssl_context is not None:
            loop.set_exception_handler(previous_handler)


@dataclass(frozen=True, slots=True)
class RunningTracker:
    """A tracker listening on a socket: its base URL and the service behind it."""

    url: str
    tracker: Tracker
    app: TrackerApp


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
    shared = None if isinstance(storage, MemoryStorage) else storage_url  # Redis, a cluster
    app = create_app(tracker, clock=clock_for(storage_url), settings=settings, shared_rates=shared)
    try:
        async with serve_app(
            app, host=host, port=port, sock=sock, ssl_context=settings.ssl_context
        ) as url:
            yield RunningTracker(url=url, tracker=tracker, app=app)
    finally:
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
