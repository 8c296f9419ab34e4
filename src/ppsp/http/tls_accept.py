"""Accepting TLS connections, each admitted before its handshake begins.

A listening socket that does TLS itself (``loop.create_server(ssl=...)``) shows a connection
to its protocol only once the handshake is done: until then, nothing counts it, so one host
could hold thousands of connections in their handshakes, each a descriptor and memory, past
its per-host bound and the server's.  (Starting TLS on an admitted plain connection instead,
``loop.start_tls``, does not work on uvloop's server side: the client's hello still reaches
the plain protocol.)  So the server accepts TLS connections itself: :class:`TLSAcceptor` takes
each connection from the listening sockets, asks the server's hooks and its connection bound
(handshakes in progress count in both), then hands the socket to the loop with the TLS
context and the head timeout as the handshake's bound.  A handshake that fails or runs late
releases what it held.

Layer: I/O (see :mod:`ppsp.http`): the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

__all__ = ["ACCEPT_WARNING_INTERVAL", "Admission", "TLSAcceptor", "listening_sockets"]

log = logging.getLogger(__name__)

ACCEPT_WARNING_INTERVAL = 60.0
"""Seconds between two warnings of failing accepts (out of descriptors: retried every 0.1 s)."""


class Admission(Protocol):
    """What the acceptor asks of the server for each connection."""

    def admit(self, remote: tuple[str, int]) -> object | None:
        """A connection from ``remote`` is accepted: its token (it now counts against the
        bounds), or None to refuse it."""

    def release(self, token: object) -> None:
        """The connection of ``token`` ended before its handshake did."""


def listening_sockets(
    host: str | Sequence[str] | None, port: int, backlog: int
) -> list[socket.socket]:
    """Listening sockets on ``host`` (one address, several, or None: every IPv4 interface)
    and ``port`` (0: a free one; each address its own when several)."""
    hosts: Sequence[str] = (
        ["0.0.0.0"] if host is None else [host] if isinstance(host, str) else host
    )
    found = []
    try:
        for name in hosts:
            family = socket.AF_INET6 if ":" in name else socket.AF_INET
            found.append(socket.create_server((name, port), family=family, backlog=backlog))
    except BaseException:
        for sock in found:
            sock.close()
        raise
    return found


class TLSAcceptor:
    """Accepts on ``listeners``; each admitted connection gets a protocol from ``protocol``
    (called with the connection's token) once its TLS handshake, bounded by
    ``handshake_timeout`` seconds, is done."""

    def __init__(
        self,
        listeners: list[socket.socket],
        context: ssl_module.SSLContext,
        admission: Admission,
        protocol: Callable[[object], asyncio.Protocol],
        handshake_timeout: float,
    ) -> None:
        self.listeners = listeners
        self.context = context
        """The TLS context of the connections accepted from now on (one may be set later)."""
        self._admission = admission
        self._protocol = protocol
        self._timeout = handshake_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_at = float("-inf")

    def start(self) -> None:
        """Accept on every listening socket until :meth:`close`."""
        loop = asyncio.get_running_loop()
        for listener in self.listeners:
            listener.setblocking(False)
            self._spawn(loop, self._accept(loop, listener))

    def _spawn(self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
        while True:
            try:
                conn, remote = await loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors, a connection reset in the queue
                now = loop.time()
                if now >= self._warned_at + ACCEPT_WARNING_INTERVAL:
                    # Once a minute: the loop retries every 0.1 s while descriptors lack.
                    log.warning("accepting a TLS connection failed: %s", exc)
                    self._warned_at = now
                await asyncio.sleep(0.1)
                continue
            token = self._admission.admit((str(remote[0]), int(remote[1])))
            if token is None:
                conn.close()
                continue
            self._spawn(loop, self._handshake(loop, conn, token))

    async def _handshake(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, token: object
    ) -> None:
        try:
            await loop.connect_accepted_socket(
                lambda: self._protocol(token),
                conn,
                ssl=self.context,
                ssl_handshake_timeout=self._timeout,
            )
        except (OSError, asyncio.CancelledError) as exc:  # TLS errors, late, client gone
            log.debug("TLS handshake failed: %s", exc)
            conn.close()
            self._admission.release(token)
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def close(self) -> None:
        """Stop accepting, close the listening sockets, cut handshakes in progress."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for listener in self.listeners:
            listener.close()
