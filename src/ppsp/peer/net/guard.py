"""The peer endpoint's guard: connections bounded per host and in all, refusals said once.

:func:`serve_endpoint` starts a peer's HTTP server (:func:`ppsp.http.server.serve`) with an
:class:`EndpointGuard` as its connection hooks and a bound in all:

- **Per host.**  The server asks :meth:`EndpointGuard.opened` for each connection before it
  reads anything; the sans-I/O :class:`~ppsp.peer.upload.connections.ConnectionBudget` decides,
  and a connection over its host's bound is cut at once (it costs an accept and a reset).
- **In all.**  The server answers a connection beyond :func:`connection_bound` (the smaller of
  :data:`~ppsp.peer.upload.connections.MAX_CONNECTIONS` and the process's descriptor limit less
  :data:`FD_RESERVE`) 503 with ``Retry-After`` and closes it: accepting never runs the process
  out of descriptors that its downloads, files and tracker connection need.
- **Said once.**  Refusals are logged as one warning line per host and minute (the count of
  the others in the next one), at most :data:`WARNINGS_PER_MINUTE` lines a minute in all; should
  ``accept`` still fail for want of descriptors (other parts of the process hold them), the
  event loop's error is one line a minute, without its traceback (:class:`AcceptFailures`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ppsp.http.server import ConnectionHooks, HTTPServer, serve
from ppsp.peer.upload.connections import MAX_CONNECTIONS, ConnectionBudget
from ppsp.peer.upload.fair import requester_host

if TYPE_CHECKING:
    from ppsp.peer.net.endpoint import PeerEndpoint

__all__ = [
    "FD_RESERVE",
    "WARNINGS_PER_MINUTE",
    "WARNING_INTERVAL",
    "AcceptFailures",
    "EndpointGuard",
    "connection_bound",
    "serve_endpoint",
]

log = logging.getLogger(__name__)

FD_RESERVE = 384
"""File descriptors a peer keeps for everything but its endpoint's connections: its HTTP
client's connections to other peers (256 in use at most, and idle ones), its chunk threads'
(16 at once, and idle ones), the tracker's, its files and its PPSPP sockets."""

WARNING_INTERVAL = 60.0
"""Seconds between two warnings about refused connections of one host (or of accept)."""

WARNINGS_PER_MINUTE = 20
"""Warning lines about refused connections a peer writes in a minute, all hosts together."""

_ACCEPT_FAILURE = "socket.accept() out of system resource"
"""How asyncio's event loop words an ``accept`` that failed for want of descriptors."""


def connection_bound(limit: int = MAX_CONNECTIONS) -> int:
    """Connections the endpoint may hold in all: ``limit``, fewer when the process's soft
    descriptor limit less :data:`FD_RESERVE` is lower (at least 16)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return limit
    if soft == resource.RLIM_INFINITY or soft < 0:
        return limit
    return min(limit, max(16, soft - FD_RESERVE))


class _Warnings:
    """Warnings at most once per subject and :data:`WARNING_INTERVAL`, and
    :data:`WARNINGS_PER_MINUTE` lines a minute in all; the occurrences held back are counted
    and named in the subject's next warning."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # subject -> (last warning, held back)
        self._minute = -WARNING_INTERVAL
        self._written = 0

    def warn(self, subject: str, message: str, *args: object) -> None:
        now = self._clock()
        last, held = self._last.get(subject, (-WARNING_INTERVAL, 0))
        if now - self._minute >= WARNING_INTERVAL:
            self._minute, self._written = now, 0
        if len(self._last) >= 4096 and subject not in self._last:
            # Forget the subjects not warned about in the last minute (all, if none is old).
            self._last = {k: v for k, v in self._last.items() if now - v[0] < WARNING_INTERVAL}
            if len(self._last) >= 4096:
                self._last.clear()
        if now - last < WARNING_INTERVAL or self._written >= WARNINGS_PER_MINUTE:
            self._last[subject] = (last, held + 1)
            return
        self._written += 1
        more = f" ({held} more since the last warning)" if held else ""
        log.warning(message + "%s", *args, more)
        self._last[subject] = (now, 0)


class EndpointGuard(ConnectionHooks):
    """The peer endpoint's connection hooks: a :class:`ConnectionBudget` per host (see the
    module); refusals are counted there and warned about once per host and minute."""

    def __init__(
        self,
        budget: ConnectionBudget | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget if budget is not None else ConnectionBudget()
        self._warnings = _Warnings(clock)

    def host(self, remote: tuple[str, int]) -> str:
        """The host ``remote`` counts for (whose idle connections make room for it)."""
        return requester_host(remote[0])

    def full(self, remote: tuple[str, int]) -> bool:
        """Whether ``remote``'s host holds its bound (its longest-idle connection is closed
        first)."""
        return self.budget.full(remote[0])

    def opened(self, remote: tuple[str, int]) -> object | None:
        """Count a connection from ``remote``: its token (its host), or None to cut it."""
        host = self.budget.open(remote[0])
        if host is None:
            refused = requester_host(remote[0])
            self._warnings.warn(
                refused,
                "refusing connections from %s: %d open, the bound per host",
                refused,
                self.budget.per_host,
            )
        return host

    def closed(self, token: object) -> None:
        """Forget a counted connection."""
        if isinstance(token, str):
            self.budget.close(token)


class AcceptFailures(logging.Filter):
    """A filter of the ``asyncio`` logger: an ``accept`` that failed for want of descriptors is
    one line (no traceback) once per :data:`WARNING_INTERVAL`, not one with its traceback per
    attempt (the event loop retries every 0.1 s)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._last = -WARNING_INTERVAL
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Let every other record through; this one once a minute, as one line."""
        if not isinstance(record.msg, str) or not record.msg.startswith(_ACCEPT_FAILURE):
            return True
        now = self._clock()
        if now - self._last < WARNING_INTERVAL:
            self._held += 1
            return False
        more = f" ({self._held} more since the last warning)" if self._held else ""
        error = record.exc_info[1] if record.exc_info else None
        record.msg = "cannot accept connections: %s; refused until some close%s"
        record.args = (error or "out of file descriptors", more)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._last, self._held = now, 0
        return True


def _filter_accept_failures() -> None:
    """Install :class:`AcceptFailures` on the ``asyncio`` logger (once per process)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptFailures) for f in logger.filters):
        logger.addFilter(AcceptFailures())


async def serve_endpoint(
    endpoint: PeerEndpoint, host: str, port: int, guard: EndpointGuard | None = None
) -> HTTPServer:
    """Serve a peer's ``endpoint`` on ``host`` and ``port`` (0: a free one), its connections
    bounded by ``guard`` per host and by :func:`connection_bound` in all."""
    _filter_accept_failures()
    return await serve(
        endpoint.router(),
        host,
        port,
        reuse_address=True,
        max_connections=connection_bound(),
        hooks=guard if guard is not None else EndpointGuard(),
    )
