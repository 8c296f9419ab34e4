"""A lean HTTP/1.1 server on asyncio: the peer's endpoint and the tracker serve through it.

:func:`serve` listens and returns an :class:`HTTPServer` (its bound :attr:`~HTTPServer.addresses`,
:meth:`~HTTPServer.close` with a grace period).  Each connection is an :class:`asyncio.Protocol`
with its own buffer and one task that reads a request head, calls the handler and writes its
answer (head and body in one write), one request at a time (pipelined bytes wait in the
buffer); its deadlines share one timer, moved as they move rather than made for each wait.
Heads are framed and parsed by the sans-I/O codec
(:func:`~ppsp.codecs.httphead.request_head_length`,
:func:`~ppsp.codecs.httphead.parse_request_head`); a head it refuses is answered with the status
its error carries (400, 413, 414, 431, 501, 505) and the connection is closed.

A handler takes a :class:`Request` (method, path and its decoded segments, query, headers of
any case, the client's ``(ip, port)``, :meth:`~Request.read_body` with a bound) and returns a
whole :class:`Response`, or a :class:`StreamResponse` it prepared and wrote itself (pieces with
flow control, a file region with ``sendfile``).  :class:`Router` is a handler that dispatches
on method and path (404 for an unknown path, 405 for a method the path does not take, 501 for
a method nothing takes).  A handler that raises answers 500 with one line in the log; a
:class:`~ppsp.errors.PPSPError` that carries an HTTP status answers that status; a client that
went away makes writes raise :class:`ConnectionError`, which ends the connection quietly.

Hostile clients are normal clients: the head is bounded (:mod:`ppsp.wire.fields`), each body by
its handler (:data:`DEFAULT_BODY_LIMIT` otherwise); a head must arrive within
``head_timeout`` seconds of its first byte (of the connection, for a first request), however
slowly its bytes trickle in, a body within ``body_timeout``, and an idle kept-alive connection
is closed after ``idle_timeout``.  The number of connections may be bounded, and the bytes of
bodies being read per host and in all are (:mod:`ppsp.http.budget`: 503 with ``Retry-After``).

For the tracker: :func:`serve` takes a listening socket (``sock``, shared by worker
processes) and a TLS context (``ssl``); :class:`ConnectionHooks` are told of each connection
(opened, before anything is read, and may refuse it; closed; timed out), so that a guard can
bound connections per host; bodies in the chunked coding may be read (``chunked_requests``).
The parse of a short request head is remembered (clients repeat their heads), a bounded
number of them.

Layer: I/O (see :mod:`ppsp.http`): the standard library and the codecs only, never aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Sequence
from typing import Any, cast

from ppsp.codecs.httphead import RequestHead, request_head_length
from ppsp.errors import (
    HTTPRequestError,
    LocalProtocolError,
    MalformedRequest,
    PPSPError,
    RequestTimeout,
)
from ppsp.http.admission import Admitting, Evictable
from ppsp.http.bounds import (
    BODY_TIMEOUT,
    CLOSE_GRACE,
    DEFAULT_BODY_LIMIT,
    DISCARD_LIMIT,
    HEAD_TIMEOUT,
    IDLE_TIMEOUT,
    LINGER,
    MAX_CHUNK_LINE,
    READ_HIGH_WATER,
    SEND_TIMEOUT,
)
from ppsp.http.budget import BodyBudget, ChargedBody, RequestBodyBusy
from ppsp.http.exchange import (
    MIN_SEND_RATE,
    Handler,
    Headers,
    Request,
    Response,
    Router,
    StreamResponse,
    encode_head,
    error_response,
    send_file_now,
)
from ppsp.http.heads import HeadReader
from ppsp.http.hooks import ConnectionHooks
from ppsp.http.idle import IdleConnections
from ppsp.http.tls_accept import TLSAcceptor, listening_sockets

__all__ = [
    "BODY_TIMEOUT",
    "DEFAULT_BODY_LIMIT",
    "HEAD_TIMEOUT",
    "IDLE_TIMEOUT",
    "MIN_SEND_RATE",
    "SEND_TIMEOUT",
    "BodyBudget",
    "ConnectionHooks",
    "HTTPServer",
    "Handler",
    "Headers",
    "Request",
    "Response",
    "Router",
    "StreamResponse",
    "error_response",
    "send_file_now",
    "serve",
]

log = logging.getLogger(__name__)


def _status_of(exc: PPSPError) -> int | None:
    """The HTTP status an error carries (None for one that carries none)."""
    status = getattr(exc, "status", None)  # HTTPRequestError, PeerProtocolError
    if not isinstance(status, int):
        status = getattr(exc, "http_status", None)  # TrackerProtocolError
    return status if isinstance(status, int) and 400 <= status <= 599 else None


class _Connection(asyncio.Protocol):
    """One client connection: its buffer, its flow control and the task that serves it."""

    def __init__(
        self, server: HTTPServer, loop: asyncio.AbstractEventLoop, token: object | None = None
    ) -> None:
        self.server = server
        self.loop = loop
        self.transport = cast(asyncio.Transport, None)
        self.remote: tuple[str, int] = ("", 0)
        self.busy = False
        """A request is being answered (a closing server waits for it)."""
        self._buffer = bytearray()
        self._want = 0
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self.task: asyncio.Task[None] | None = None
        self._token = token
        """The hooks' token; given at creation to a TLS connection admitted before its
        handshake (:mod:`ppsp.http.tls_accept`)."""
        # One timer per connection, moved rather than re-made for each wait (see _wait).
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.body: ChargedBody | None = None
        """The body of the request being answered, as the server's body budget charged it
        (None: not charged)."""
        self.evicted = False
        """The budget evicted that body (it lagged its pace): its reads end in 503."""
        self.host: str | None = None
        """The host the hooks count this connection for (None without hooks): between
        requests, one of its idle connections (:mod:`ppsp.http.idle`)."""

    # -- protocol callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start serving the connection (or refuse it: server closing, or full)."""
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote = (str(peer[0]), int(peer[1]))
        server = self.server
        admitted = self._token is not None
        if admitted:
            server.handshaking -= 1  # counted since its admission, now among the connections
        if server.closing:
            self.transport.abort()
            return
        hooks = server.hooks
        if hooks is not None:
            if not admitted:
                token = server.opened(self.remote)
                if token is None:
                    self.transport.abort()
                    return
                self._token = token
            self.host = hooks.host(self.remote)
        limit = server.max_connections
        if not admitted and limit is not None and len(server.connections) >= limit:
            self.transport.write(_FULL)
            self.transport.close()
            return
        server.connections.add(self)
        self.task = self.loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        """Buffer the bytes; pause reading while too many wait to be consumed."""
        buffer = self._buffer
        buffer += data
        body = self.body
        if body is not None:
            budget = self.server.body_budget
            if budget is not None:
                budget.received(body, len(data))  # the budget's measure of its pace
        if not self._reading_paused and len(buffer) > READ_HIGH_WATER and len(buffer) > self._want:
            self._reading_paused = True
            self.transport.pause_reading()
        waiter = self._waiter  # _wake, inlined: this runs for every request
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        """The client closed its side: it is gone (the transport closes)."""
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake whatever waits: reads end, writes raise ConnectionError."""
        self._eof = True
        self._lost = True
        self.server.connections.discard(self)
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        token = self._token
        if token is not None:
            self._token = None
            hooks = self.server.hooks
            if hooks is not None:
                hooks.closed(token)
        self._wake()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        """The transport's buffer is full: writers wait in :meth:`drain`."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The transport's buffer drained: writers go on."""
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def evict_body(self) -> None:
        """The body budget evicted this connection's body (its bytes are given back): the
        read waiting for it ends in RequestBodyBusy, so that the handler answers 503 and the
        connection closes (:class:`~ppsp.http.budget.BodyHolder`)."""
        self.body = None
        self.evicted = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(RequestBodyBusy("request body evicted: it lagged its pace"))

    def evict(self) -> None:
        """Close this connection, idle between requests, for a new one of its host at the
        host's bound (:mod:`ppsp.http.idle`): its token is given back to the hooks at once."""
        server = self.server
        if self.host is not None:
            server.idle.active(self.host, self)
        token, self._token = self._token, None
        hooks = server.hooks
        if token is not None and hooks is not None:
            hooks.timed_out(token, "evicted")
            hooks.closed(token)
        self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading ---------------------------------------------------------------------------------

    def _wait(self, deadline: float) -> asyncio.Future[None]:
        """What to await for more bytes (or the end), until ``deadline`` (TimeoutError).

        A future, not a coroutine: awaited once per request, a coroutine's frame would cost
        more than the future itself.
        """
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._deadline = deadline
        # The connection's one timer is left armed between waits, and a later deadline only
        # moves the mark it is checked against: a kept-alive connection's idle deadline moves
        # with every request, and creating and cancelling a timer handle for each (a libuv
        # timer on uvloop) cost more than the rest of the wait.  An earlier deadline than the
        # armed one re-arms it.
        timer = self._timer
        if timer is None or deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._timer_fired)
            self._timer_at = deadline
        # Once done, the waiter stays in _waiter until the next wait replaces it: whoever looks
        # at it (_wake, _timer_fired) checks that it is not done.
        return waiter

    def _timer_fired(self) -> None:
        """The connection's timer ran out: end the wait whose deadline it was armed for, or
        move the timer to the deadline of the wait under way (none waiting: left unarmed)."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._lost:
            return
        if self._deadline <= self._timer_at:
            waiter.set_exception(TimeoutError())
        else:
            self._timer = self.loop.call_at(self._deadline, self._timer_fired)
            self._timer_at = self._deadline

    def _take_head(self) -> tuple[RequestHead, Headers] | None:
        """The next request's head and its fields when the buffer holds the whole head (taken
        from it), else None.  Raises HTTPRequestError for a head to refuse."""
        buffer = self._buffer
        # Empty lines before a request line are ignored (RFC 9112 2.2); the first byte is
        # looked at first, as startswith costs more than the rest of this loop.
        while buffer and buffer[0] == 13 and buffer.startswith(b"\r\n"):
            del buffer[:2]
        if not buffer:
            return None
        length = request_head_length(buffer)
        if not length:
            return None
        head = bytes(buffer[:length])
        del buffer[:length]
        return self.server.parse_head(head)

    async def read_line(self, deadline: float) -> bytes:
        """The next line of a chunked body (without its CRLF), by ``deadline`` (RequestTimeout);
        MalformedRequest for a line over :data:`MAX_CHUNK_LINE` bytes."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 2]
                return line
            if len(buffer) >= MAX_CHUNK_LINE + 2:
                raise MalformedRequest("a chunk line too long")
            if self._eof:
                raise ConnectionResetError("the client went away before the whole body")
            if self.evicted:
                raise RequestBodyBusy("request body evicted: it lagged its pace")
            try:
                await self._wait(deadline)
            except TimeoutError:
                raise RequestTimeout("the request body did not arrive in time") from None

    async def read_until(self, size: int, deadline: float) -> bytes:
        """The next ``size`` bytes by ``deadline`` (RequestTimeout); ConnectionError when the
        client goes away first."""
        return await self._read_exactly_by(size, deadline)

    async def read_exactly(self, size: int, timeout: float) -> bytes:
        """The next ``size`` bytes, within ``timeout`` seconds (RequestTimeout); ConnectionError
        when the client goes away first."""
        buffer = self._buffer
        if len(buffer) >= size:  # all there already: the common case, no deadline needed
            data = bytes(buffer[:size])
            del buffer[:size]
            return data
        return await self._read_exactly_by(size, self.loop.time() + timeout)

    async def _read_exactly_by(self, size: int, deadline: float) -> bytes:
        buffer = self._buffer
        self._want = size
        try:
            while len(buffer) < size:
                if self._eof:
                    raise ConnectionResetError("the client went away before the whole body")
                if self.evicted:
                    raise RequestBodyBusy("request body evicted: it lagged its pace")
                try:
                    await self._wait(deadline)
                except TimeoutError:
                    raise RequestTimeout("the request body did not arrive in time") from None
        finally:
            self._want = 0
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    async def _discard(self, request: Request) -> bool:
        """Read and drop what its handler left of a request's body; False: close instead."""
        size = request._unread
        if not size:
            return True
        if request._close_after or size > DISCARD_LIMIT or request.head.chunked:
            return False
        if request.head.expect_continue and not request._continued:
            return False  # the client may or may not send a body nobody asked for
        try:
            await self.read_exactly(size, self.server.body_timeout)
        except (RequestTimeout, ConnectionError):
            return False
        return True

    # -- writing ---------------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Whether the client went away (or the connection is being closed)."""
        return self._lost or self.transport.is_closing()

    def check_open(self) -> None:
        """Raise ConnectionResetError when nothing more can be sent."""
        if self.closing:
            raise ConnectionResetError("the client went away")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` on the transport (ConnectionResetError once the client is gone)."""
        self.check_open()
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is full (ConnectionResetError: the client went
        away)."""
        self.check_open()
        if not self._writing_paused:
            return
        waiter = self.loop.create_future()
        self._drain_waiter = waiter
        try:
            await asyncio.wait_for(waiter, self.server.send_timeout)
        except TimeoutError:
            self.transport.abort()  # the client reads nothing: cut, as if it went away
            raise ConnectionResetError("the client stopped reading") from None
        finally:
            self._drain_waiter = None
        self.check_open()

    # -- serving ---------------------------------------------------------------------------------

    async def _serve(self) -> None:
        """Answer requests one after the other until the connection ends."""
        server = self.server
        buffer = self._buffer
        first = True
        try:
            while not server.closing:
                # The next request's head (waited for here, not in a coroutine of its own: this
                # runs for every request).  A connection's first head must end within the head
                # timeout; a kept-alive connection may stay idle for the idle timeout, then its
                # head must end within the head timeout of its first bytes.
                started = first
                deadline = self.loop.time() + (
                    server.head_timeout if first else server.idle_timeout
                )
                # Between requests, the connection is one of its host's idle ones.
                idle = self.host if not started and not buffer else None
                if idle is not None:
                    server.idle.waiting(idle, self)
                try:
                    while (parsed := self._take_head()) is None:
                        if buffer and not started:
                            started = True
                            deadline = self.loop.time() + server.head_timeout
                            if idle is not None:
                                server.idle.active(idle, self)
                                idle = None
                        if self._eof:
                            return
                        try:
                            await self._wait(deadline)
                        except TimeoutError:
                            hooks = server.hooks
                            if hooks is not None and self._token is not None:
                                hooks.timed_out(self._token, "head" if started else "idle")
                            if buffer:
                                raise RequestTimeout(
                                    "the request head did not arrive in time"
                                ) from None
                            return
                except HTTPRequestError as exc:
                    self._refuse(exc)
                    await self._linger()
                    return
                if idle is not None:
                    server.idle.active(idle, self)
                first = False
                self.busy = True
                request = Request(self, *parsed)
                keep = await self._answer(request)
                self.busy = False
                if not keep:
                    if request._unread:
                        await self._linger()
                    return
                if buffer:
                    # Pipelined requests already here: the others' turn first, or one
                    # connection's pipeline would be answered in one turn of the loop while
                    # every other client waits.
                    await asyncio.sleep(0)
        except ConnectionError:
            pass
        except Exception as exc:  # a fault of the server itself: said once, not raised
            log.error("connection from %s failed: %s: %s", self.remote[0], type(exc).__name__, exc)
            log.debug("the connection's traceback", exc_info=True)
        finally:
            self.busy = False
            if self.host is not None:
                server.idle.active(self.host, self)
            timer = self._timer
            if timer is not None:
                self._timer = None
                timer.cancel()
            if not self.transport.is_closing():
                self.transport.close()

    def _refuse(self, exc: HTTPRequestError) -> None:
        """Answer a request that cannot be read with its error's status, then close."""
        log.debug("refused a request from %s: %s", self.remote[0], exc)
        if self.closing:
            return
        body = f"{exc.status}: {exc.reason}".encode("latin-1", "replace")
        head = encode_head(
            exc.status,
            content_type="text/plain; charset=utf-8",
            content_length=len(body),
            headers=None,
            keep_alive=False,
            minor_version=1,
        )
        self.transport.write(head + body)

    async def _linger(self) -> None:
        """Shut the sending side, then drop what the client still sends, for :data:`LINGER`
        seconds at most (its answer is not lost to a reset)."""
        if self.closing:
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        deadline = self.loop.time() + LINGER
        while not self._eof:
            self._buffer.clear()
            try:
                await self._wait(deadline)
            except TimeoutError:
                return

    async def _answer(self, request: Request) -> bool:
        """Answer one request; whether the connection may carry the next one."""
        try:
            result = await self.server.handler(request)
        except ConnectionError as exc:
            if self.closing:
                return False  # the client went away: nobody to answer, nothing to say
            result = self._failed(request, exc)  # the handler's own connection failed
        except HTTPRequestError as exc:
            request._close_after = True
            busy = isinstance(exc, RequestBodyBusy)
            retry = {"Retry-After": str(RequestBodyBusy.retry_after)} if busy else None
            result = error_response(exc.status, retry)
        except Exception as exc:
            result = self._failed(request, exc)
        finally:
            if self.body is not None or self.evicted:
                request.release_body()  # the handler is done with its body, whatever ended it
        try:
            stream = request._stream
            if stream is not None:
                if result is not stream and not stream._finished:
                    return False  # a streamed answer begun and abandoned: its end is unknown
                await stream.write_eof()
                keep = stream.keep_alive
            elif isinstance(result, StreamResponse):
                await result.prepare(request)
                await result.write_eof()
                keep = result.keep_alive
            else:
                keep = self._send(request, result)
                if self._writing_paused:
                    await self.drain()
            # The checks of drain and _discard made here first: no coroutine for the common
            # answer (written whole, its body read).
            if keep and request._unread:
                return await self._discard(request)
            return keep
        except ConnectionError:
            return False

    def _failed(self, request: Request, exc: Exception) -> Response:
        """The answer to a handler's exception: the HTTP status a PPSPError carries, else 500
        and one line in the log (the traceback only at debug level)."""
        status = _status_of(exc) if isinstance(exc, PPSPError) else None
        if status is not None:
            return error_response(status)
        log.error(
            "%s %s from %s failed: %s: %s",
            request.method,
            request.path,
            self.remote[0],
            type(exc).__name__,
            exc,
        )
        log.debug("the handler's traceback", exc_info=True)
        return error_response(500)

    def _send(self, request: Request, response: Response) -> bool:
        """Write a whole response (the caller drains); whether the connection stays open."""
        keep_alive = (
            request.head.keep_alive and not request._close_after and not self.server.closing
        )
        body = response.body
        content_type = response.content_type
        if content_type is None and body:
            content_type = "application/octet-stream"
        status = response.status
        bodiless = status in (204, 304) or 100 <= status < 200
        try:
            head = encode_head(
                status,
                content_type=content_type,
                content_length=None if bodiless else len(body),
                headers=response.headers,
                keep_alive=keep_alive,
                minor_version=request.head.minor_version,
                reason=response.reason,
            )
        except LocalProtocolError as exc:
            log.error("%s %s: %s", request.method, request.path, exc)
            return self._send(request, error_response(500))
        if self._lost or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        if bodiless or request.method == "HEAD" or not body:
            self.transport.write(head)
        elif len(body) <= 65536:
            self.transport.write(head + body)  # one write, one send: head and body joined
        else:
            self.write(head)
            self.write(body)
        return keep_alive


_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
)
"""The answer of a server at its connection bound."""


class HTTPServer(Admitting):
    """A listening server (made by :func:`serve`): its addresses, its connections, closing;
    which connections it lets in is :class:`~ppsp.http.admission.Admitting`'s."""

    def __init__(
        self,
        handler: Handler,
        *,
        body_limit: int,
        head_timeout: float,
        idle_timeout: float,
        body_timeout: float,
        max_connections: int | None,
        send_timeout: float = SEND_TIMEOUT,
        min_send_rate: float = MIN_SEND_RATE,
        hooks: ConnectionHooks | None = None,
        chunked_requests: bool = False,
        tls: ssl_module.SSLContext | None = None,
        body_budget: BodyBudget | None = None,
    ) -> None:
        self.handler = handler
        self.body_budget = body_budget
        """The bytes of request bodies being read, per host and in all (None: unbounded)."""
        self.hooks = hooks
        self.tls = tls
        """The TLS context of every connection (its handshake once admitted), or None."""
        self.handshaking = 0
        """TLS connections admitted whose handshake is not done (they count in the bound)."""
        self._acceptor: TLSAcceptor | None = None
        self.chunked_requests = chunked_requests
        self.send_timeout = send_timeout
        self.min_send_rate = min_send_rate
        self.body_limit = body_limit
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.connections: set[_Connection] = set()
        """The open connections."""
        self.idle: IdleConnections[Evictable] = IdleConnections()
        """The connections waiting for their next request, by host (with hooks only)."""
        self._heads = HeadReader(chunked=chunked_requests)
        self.closing = False
        self._server: asyncio.Server | None = None

    def parse_head(self, head: bytes) -> tuple[RequestHead, Headers]:
        """A request head parsed (HTTPRequestError for one to refuse), with its fields; the
        parse of a head seen before is found again (:class:`~ppsp.http.heads.HeadReader`)."""
        return self._heads.parse(head)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound ``(ip, port)`` of each listening socket."""
        if self._acceptor is not None:
            sockets: Sequence[Any] = self._acceptor.listeners
        elif self._server is not None:
            sockets = self._server.sockets
        else:
            return []
        found = []
        for sock in sockets:
            name = sock.getsockname()
            found.append((str(name[0]), int(name[1])))
        return found

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Stop accepting, close idle connections, let running requests finish for ``grace``
        seconds, then cut them."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._acceptor is not None:
            await self._acceptor.close()
        for conn in list(self.connections):
            if not conn.busy:
                conn.transport.close()
        tasks = [conn.task for conn in self.connections if conn.task is not None]
        tasks = [task for task in tasks if not task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for conn in list(self.connections):
                if conn.task in pending:
                    conn.transport.abort()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


async def serve(
    handler: Handler,
    host: str | Sequence[str] | None,
    port: int,
    *,
    reuse_address: bool = True,
    backlog: int = 128,
    body_limit: int = DEFAULT_BODY_LIMIT,
    head_timeout: float = HEAD_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    max_connections: int | None = None,
    send_timeout: float = SEND_TIMEOUT,
    min_send_rate: float = MIN_SEND_RATE,
    sock: socket.socket | None = None,
    ssl: ssl_module.SSLContext | None = None,
    hooks: ConnectionHooks | None = None,
    chunked_requests: bool = False,
    body_budget: BodyBudget | None = None,
) -> HTTPServer:
    """Listen on ``host`` (one address, several, or None: every interface) and ``port`` (0: a
    free one) and answer requests with ``handler``.

    ``body_limit`` bounds a body whose handler names no bound; the timeouts are in seconds
    (see the module docstring); with ``max_connections``, a connection beyond it is answered
    503 and closed.  With ``sock``, a listening socket (e.g. shared by several processes),
    the server accepts on it instead of binding ``host`` and ``port``.  With ``ssl``, every
    connection is TLS, its handshake bounded by ``head_timeout`` and started once the
    connection is admitted (counted in its host's bound and the server's).  ``hooks`` are
    told of each connection (:class:`ConnectionHooks`).  With ``chunked_requests``, request
    bodies in the chunked coding are read (within the same bounds); without, they are
    answered 501.  ``body_budget`` bounds the bytes of bodies being read per host and in all
    (a :class:`BodyBudget` of the default bounds when None).
    """
    server = HTTPServer(
        handler,
        body_limit=body_limit,
        head_timeout=head_timeout,
        idle_timeout=idle_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        send_timeout=send_timeout,
        min_send_rate=min_send_rate,
        hooks=hooks,
        chunked_requests=chunked_requests,
        tls=ssl,
        body_budget=BodyBudget() if body_budget is None else body_budget,
    )
    loop = asyncio.get_running_loop()

    def protocol() -> _Connection:
        return _Connection(server, loop)

    if ssl is not None:
        # Each connection admitted before its handshake (ppsp.http.tls_accept).
        listeners = [sock] if sock is not None else listening_sockets(host, port, backlog)
        server._acceptor = TLSAcceptor(
            listeners, ssl, server, lambda token: _Connection(server, loop, token), head_timeout
        )
        server._acceptor.start()
    elif sock is not None:
        server._server = await loop.create_server(protocol, sock=sock, backlog=backlog)
    else:
        server._server = await loop.create_server(
            protocol, host, port, reuse_address=reuse_address, backlog=backlog
        )
    return server
