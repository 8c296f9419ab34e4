"""Several tracker processes on one listening socket, sharing one Redis or Redis Cluster.

The parent binds the socket, forks ``workers`` processes before any event loop exists (each
runs :func:`~ppsp.tracker.net.server.serve_tracker` on the inherited socket, and the kernel hands
each new connection to one of them), then supervises them:

* SIGINT or SIGTERM to the parent is passed on to every worker as SIGTERM; each worker finishes
  its connections and closes its storage, and the parent returns once all have exited (a
  worker still running ``stop_grace`` seconds later is killed, so that a stop always ends);
* a worker that exits while the parent is not stopping (a crash, a kill) is started again
  after ``restart_delay`` seconds, on the same socket, so the port never stops listening
  (connections wait in the socket's backlog meanwhile);
* SIGHUP to the parent is passed on to every worker, which reads its TLS files and token key
  file again (:mod:`ppsp.tracker.net.reload`); a worker started again reads them as they are
  then;
* a parent killed outright takes its workers with it (Linux: they ask for SIGTERM when their
  parent dies), so that no worker serves unsupervised.

All state lives in the storage, so it must be shared: one Redis (several trackers on one Redis
is what the Redis backend is built for, see :mod:`ppsp.tracker.net.redis_storage`) or a Redis
Cluster (:mod:`ppsp.tracker.net.redis_cluster`; each worker keeps its own connection to every
primary).  The per-host request rates are shared through the same store
(:class:`~ppsp.tracker.net.guard.SharedRates`).  The parent checks the storage before it binds
the socket, so a tracker whose Redis cannot be used never starts (workers started again later do
not check: they answer 503 until Redis is back).  Each worker runs its own expiry task; the
storage's scripts make a peer's expiry happen once.

``/metrics`` is the same whichever worker answers: each worker writes its counters to its own
file in a directory the parent creates and removes (the files of replaced workers stay, so the
sums never go down), and the answering worker sums them (see
:class:`~ppsp.tracker.net.server.ServerSettings`); the gauges of peers and swarms are the storage's
shared counts.  ``/status`` describes the storage as the answering worker sees it.  Trackers on
several machines share a Redis the same way, each with its own socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ppsp.process.lifetime import stop_with_parent
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.redis_cluster_link import SCHEMES as CLUSTER_SCHEMES
from ppsp.tracker.net.reload import read_again
from ppsp.tracker.net.server import (
    ServerSettings,
    runner_for_tracker,
    serve_tracker,
    verify_storage,
)

__all__ = ["SHARED_SCHEMES", "listening_socket", "run_tracker_workers", "socket_url"]

log = logging.getLogger(__name__)

SHARED_SCHEMES = ("redis://", "rediss://", "unix://", *CLUSTER_SCHEMES)
"""The schemes of the storage URLs several workers can share: one Redis, or a Redis Cluster."""

BACKLOG = 1024
"""Connections the listening socket queues for the workers to accept."""

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PASSED_ON = {*_STOP_SIGNALS, signal.SIGHUP}
"""The signals the parent passes on to the workers (SIGHUP: read the TLS and key files again)."""

STOP_GRACE_S = 10.0
"""How long stopping workers may take to finish their connections before they are killed."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (a free port when 0), to be shared by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def socket_url(sock: socket.socket, *, tls: bool = False) -> str:
    """The base URL of a listening socket (the real port when it was bound to 0).

    ``tls``: the workers serve HTTPS on it.
    """
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def run_tracker_workers(
    host: str,
    port: int,
    config: TrackerConfig,
    storage_url: str,
    *,
    workers: int,
    settings: ServerSettings | None = None,
    on_ready: Callable[[str], None] | None = None,
    restart_delay: float = 1.0,
    stop_grace: float = STOP_GRACE_S,
) -> None:
    """Serve a tracker from ``workers`` processes until SIGINT or SIGTERM (see the module).

    ``settings`` are every worker's (:class:`~ppsp.tracker.net.server.ServerSettings`: limits, TLS,
    auth key, trusted proxies); the connection bounds are shared out among the workers and
    the request rates shared through Redis (:mod:`ppsp.tracker.net.guard`).

    Raises ValueError for fewer than two workers or a storage that is not shared (only a
    ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://`` or ``rediss+cluster://``
    URL is) or malformed,
    :class:`~ppsp.errors.KeyFileError` (a ValueError) for a TLS or auth key file that cannot
    be used,
    :class:`~ppsp.errors.ServiceUnavailable` when the storage cannot be used, and OSError when
    the socket cannot be bound; all of them before ``on_ready`` is called and before any
    worker starts.  Must be called before any event loop or thread is started in this process
    (the storage check runs an event loop of its own and closes it before the workers fork).
    """
    if workers < 2:
        raise ValueError("several workers need workers >= 2")
    if not storage_url.startswith(SHARED_SCHEMES):
        raise ValueError(
            "several workers share their state only through Redis: use a redis:// or "
            "redis+cluster:// --storage"
        )
    # Key files are read once, here, so that a bad one is one error before anything starts,
    # and every worker serves with the same TLS context and public key.
    settings = dataclasses.replace((settings or ServerSettings()).loaded(), processes=workers)
    asyncio.run(verify_storage(storage_url))
    sock = listening_socket(host, port)
    try:
        metrics_dir = Path(tempfile.mkdtemp(prefix="ppsp-tracker-metrics-"))
    except BaseException:
        sock.close()
        raise
    try:
        _supervise(
            sock,
            config,
            storage_url,
            workers=workers,
            settings=settings,
            metrics_dir=metrics_dir,
            on_ready=on_ready,
            restart_delay=restart_delay,
            stop_grace=stop_grace,
        )
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(
    sock: socket.socket,
    config: TrackerConfig,
    storage_url: str,
    *,
    workers: int,
    settings: ServerSettings,
    metrics_dir: Path,
    on_ready: Callable[[str], None] | None,
    restart_delay: float,
    stop_grace: float = STOP_GRACE_S,
) -> None:
    """Start the workers, start again those that exit, stop them all on SIGINT or SIGTERM.

    A worker that has not finished ``stop_grace`` seconds after the stop is killed (SIGKILL).
    """
    parent = os.getpid()
    children: dict[int, int] = {}  # pid -> worker number
    stopping = False

    def start(number: int, *, again: bool = False) -> None:
        # Stop signals wait until the new worker is known (to the parent, which passes them on)
        # and has let go of the parent's handler (in the worker).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _PASSED_ON)
        try:
            if stopping:  # a stop signal came between the caller's check and the block
                return
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's coverage is the end-to-end tests'
                own = dataclasses.replace(
                    settings, shared_metrics=metrics_dir / f"{os.getpid()}.json"
                )
                _worker(number, parent, sock, config, storage_url, own, blocked, again)
            children[pid] = number
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            # The stop is bounded: workers still running after STOP_GRACE_S are killed
            # (SIGALRM interrupts the wait below without a loop that polls).
            signal.setitimer(signal.ITIMER_REAL, stop_grace)
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def pass_on(signum: int, frame: FrameType | None) -> None:
        # Each worker reads the TLS files and the token key file itself (ppsp.tracker.net.reload).
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def kill_the_rest(signum: int, frame: FrameType | None) -> None:
        for pid, number in list(children.items()):
            log.warning(
                "tracker worker %d (pid %d) still running %.0f s after the stop: killing it",
                number,
                pid,
                stop_grace,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, kill_the_rest)
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, pass_on)
    try:
        for number in range(workers):
            start(number)
        url = socket_url(sock, tls=settings.tls)
        log.debug("%d tracker workers serving on %s", workers, url)
        if on_ready is not None:
            on_ready(url)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            number = children.pop(pid)
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning(
                "tracker worker %d (pid %d) exited with %d: starting it again", number, pid, code
            )
            time.sleep(restart_delay)
            if not stopping:
                start(number, again=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker(
    number: int,
    parent: int,
    sock: socket.socket,
    config: TrackerConfig,
    storage_url: str,
    settings: ServerSettings,
    signal_mask: set[int | signal.Signals],
    again: bool,
) -> None:  # pragma: no cover - runs in a forked process
    """A forked worker: serve on ``sock`` until SIGTERM, then leave the process.

    It starts with the stop signals blocked; ``signal_mask`` is the mask to restore once the
    parent's handlers are gone.  A worker started ``again`` (after one exited) reads the TLS
    files and the token key file as they are now; a first one uses what the parent read.
    """
    code = 1
    try:
        for signum in (*_STOP_SIGNALS, signal.SIGALRM):
            signal.signal(signum, signal.SIG_DFL)  # serve_tracker installs its own
        # SIGHUP stays blocked (kept pending, not lost) until serve_tracker has its handler
        # and unblocks it.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, {*signal_mask, signal.SIGHUP})
        if again:
            settings = read_again(settings, quiet=True)
        if not stop_with_parent(parent):
            return
        with runner_for_tracker() as runner:
            # The parent checked the storage: a worker started again while Redis is away
            # serves 503s until it is back, rather than failing over and over.
            runner.run(
                serve_tracker(
                    sock=sock,
                    config=config,
                    storage_url=storage_url,
                    settings=settings,
                    check_storage=False,
                )
            )
        code = 0
    except BaseException:
        log.exception("tracker worker %d failed", number)
    finally:
        logging.shutdown()
        os._exit(code)
