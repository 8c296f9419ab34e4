"""A tracker process: serve until a stop signal, on uvloop, with the collector tuned.

:func:`run_tracker` is the foreground command (``ppsp tracker``); :func:`serve_tracker` the
coroutine a worker process (:mod:`ppsp.tracker.net.workers`) runs on its inherited socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable

from ppsp.process.signals import on_signals
from ppsp.process.tuning import tune_garbage_collector
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.app import TrackerApp, running_tracker
from ppsp.tracker.net.reload import reload_trust
from ppsp.tracker.net.settings import ServerSettings

__all__ = ["run_tracker", "runner_for_tracker", "serve_tracker"]

log = logging.getLogger("ppsp.tracker.net.server")
"""The server's log (one name for the HTTP server, whichever module of it writes)."""


async def serve_tracker(
    host: str = "127.0.0.1",
    port: int = 0,
    config: TrackerConfig | None = None,
    storage_url: str | None = None,
    *,
    settings: ServerSettings | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    sock: socket.socket | None = None,
    check_storage: bool = True,
) -> None:
    """Serve a tracker until ``stop`` is set (or SIGINT/SIGTERM arrives), then shut down cleanly;
    on SIGHUP read the TLS files and the token key file again (:mod:`ppsp.tracker.net.reload`).

    ``on_ready`` receives the base URL once the socket listens (with the real port when ``port``
    is 0): announcing it is the caller's (the log has it at debug level only, so that several
    worker processes do not each announce the port).  With ``sock``, the tracker serves on that
    listening socket instead of ``host:port``.  ``check_storage``: see :func:`running_tracker`.
    """
    stop = stop or asyncio.Event()
    config = config or TrackerConfig()
    with on_signals(stop.set):
        async with (
            running_tracker(
                config,
                host=host,
                port=port,
                storage_url=storage_url,
                settings=settings,
                sock=sock,
                check_storage=check_storage,
            ) as running,
            contextlib.AsyncExitStack() as stack,
        ):
            stack.enter_context(on_signals(_reloading(running.app), (signal.SIGHUP,)))
            # A worker process starts with SIGHUP blocked (ppsp.tracker.net.workers): one that
            # came meanwhile is handled now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
            log.debug(
                "tracker process %d (PPSP-TP/%s) serving on %s",
                os.getpid(),
                config.max_version.value,
                running.url,
            )
            # Everything alive now is frozen out of the collector's sight, and young
            # collections run every 50,000 allocations (a request's objects die young).
            tune_garbage_collector()
            if on_ready is not None:
                on_ready(running.url)
            await stop.wait()
            log.debug("tracker process %d shutting down", os.getpid())


def _reloading(app: TrackerApp) -> Callable[[], None]:
    """What SIGHUP does to a running tracker: its TLS files and token key file read again."""
    return lambda: reload_trust(app)


def run_tracker(
    host: str,
    port: int,
    config: TrackerConfig,
    storage_url: str | None = None,
    *,
    settings: ServerSettings | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run a tracker in the foreground until SIGINT or SIGTERM (uvloop when it is installed).

    ``settings`` carries the limits, TLS files, auth key and trusted proxies
    (:class:`ServerSettings`).  Raises :class:`~ppsp.errors.ServiceUnavailable` when the
    storage cannot be used, ValueError for a malformed storage URL,
    :class:`~ppsp.errors.KeyFileError` (a ValueError) for a TLS or auth key file that cannot be
    used, and OSError when the socket cannot be bound, all before ``on_ready`` is called.
    """
    with runner_for_tracker() as runner:
        runner.run(
            serve_tracker(host, port, config, storage_url, settings=settings, on_ready=on_ready)
        )


def runner_for_tracker() -> asyncio.Runner:
    """An asyncio runner on uvloop when it is installed: the tracker's many small requests."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
