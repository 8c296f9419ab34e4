"""A lean HTTP/1.1 client on asyncio: keep-alive connections, bounded answers, timeouts.

What peers ask of HTTP (chunks, descriptions, peer protocol exchanges) and what the tracker
client asks (a POST per request), and nothing more:

- :class:`HttpClient` keeps a pool of keep-alive connections per ``(scheme, host, port)``,
  bounded in all and per host (256 and 16 in use, as the peers' aiohttp connector was), closes
  a connection left idle for :data:`KEEPALIVE_TIMEOUT`, may bind every connection to one local
  address, and makes an ``ssl`` context only when an ``https://`` URL is first asked (or uses
  the caller's): an ``http://`` exchange costs no TLS at all.
- :meth:`HttpClient.request` is used as ``async with client.request(...) as response``; the
  :class:`Response` has the status, the headers (any case), :meth:`Response.read` (the whole
  body, bounded: :class:`~ppsp.errors.BodyTooLarge` beyond) and :attr:`Response.content`, the
  body as a stream of the pieces received.  Bodies are framed by ``Content-Length``, by the
  chunked coding (:mod:`ppsp.codecs.httpchunked`) or by the connection's end (HTTP/1.0); heads
  are parsed by :mod:`ppsp.codecs.httphead`, strictly and bounded.
- A connection goes back to the pool only when its answer was read whole, nothing follows it
  and both sides keep it alive; a request on a reused connection that the server had closed
  meanwhile is sent once more on a new one when its method is idempotent (RFC 9112 9.3.1).
- :class:`Timeout` bounds the whole exchange, opening a connection and each wait for bytes.
- Every failure is one of the project's errors (:class:`~ppsp.errors.HttpClientError` and its
  kinds: connect, name, TLS, certificate, timeout, disconnected, incomplete body, malformed
  answer), each an OSError, the timeouts a TimeoutError too.

Layer: I/O.  Imports the standard library, ``ppsp.codecs`` and ``ppsp.errors`` only; ``ssl``
is imported when an ``https://`` URL is first asked.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final

from ppsp.codecs.httpchunked import ChunkedDecoder
from ppsp.codecs.httphead import ResponseHead, head_length, parse_response_head
from ppsp.errors import (
    BodyTooLarge,
    HttpCertificateError,
    HttpClientError,
    HttpConnectError,
    HttpDisconnected,
    HttpNameError,
    HttpTimeout,
    HttpTLSError,
    IncompleteBody,
    MalformedResponse,
)
from ppsp.http.client_connection import (
    DEFAULT_READ_BUFFER,
    NO_TIMEOUT,
    ClientConnection,
    Target,
    Timeout,
    expire_waiter,
    request_head,
    split_url,
    wait_for_answer,
)
from ppsp.http.headers import Headers

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_READ_BUFFER",
    "KEEPALIVE_TIMEOUT",
    "Headers",
    "HttpClient",
    "Resolver",
    "Response",
    "ResponseBody",
    "Timeout",
]

KEEPALIVE_TIMEOUT: Final = 15.0
"""Seconds an idle kept-alive connection stays in the pool before it is closed."""


IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods whose request may be sent again when a reused connection turns out closed."""


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves a host name and port to the IP addresses to try, most preferred first (raises
``socket.gaierror`` when there is none)."""


class _Host:
    """The pool's part for one ``(scheme, host, port)``: idle connections and those in use."""

    __slots__ = ("idle", "in_use")

    def __init__(self) -> None:
        self.idle: list[ClientConnection] = []
        self.in_use = 0


class HttpClient:
    """HTTP/1.1 requests over a pool of keep-alive connections (see the module docstring).

    ``limit`` bounds the connections in use (or being opened) in all, ``limit_per_host`` those
    to one ``(scheme, host, port)``; a request beyond waits for one to be released.
    ``local_address`` is the IP address connections leave from (None: the kernel's choice).
    ``ssl_context`` verifies ``https://`` servers (None: the system's trust store, made at the
    first ``https://`` URL).  ``read_buffer`` is how many received bytes a connection holds
    unread before it stops reading (:data:`DEFAULT_READ_BUFFER`); ``resolver`` turns host
    names into addresses (None: the system's resolver, in a thread).
    """

    def __init__(
        self,
        *,
        limit: int = 256,
        limit_per_host: int = 16,
        local_address: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        read_buffer: int = DEFAULT_READ_BUFFER,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        resolver: Resolver | None = None,
    ) -> None:
        if limit < 1 or limit_per_host < 1 or read_buffer < 1:
            raise ValueError("limits and the read buffer must be positive")
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.local_address = local_address
        self.read_buffer = read_buffer
        self.keepalive_timeout = keepalive_timeout
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._hosts: dict[tuple[str, str, int], _Host] = {}
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._connections: set[ClientConnection] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        timeout: Timeout = NO_TIMEOUT,
    ) -> _RequestContext:
        """Send a request; used as ``async with client.request(...) as response``.

        The request is sent and the answer's head read when the block is entered; the body is
        read inside it (:meth:`Response.read`, :attr:`Response.content`).  Leaving the block
        before the body's end closes the connection.  Raises an
        :class:`~ppsp.errors.HttpClientError` (InvalidURL for a URL it cannot ask) and
        :class:`~ppsp.errors.LocalProtocolError` for a header it may not send.
        """
        return _RequestContext(self, method, url, headers or {}, body, timeout)

    def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: Timeout = NO_TIMEOUT
    ) -> _RequestContext:
        """A GET of ``url`` (see :meth:`request`)."""
        return self.request("GET", url, headers=headers, timeout=timeout)

    def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = NO_TIMEOUT,
    ) -> _RequestContext:
        """A POST of ``body`` to ``url`` (see :meth:`request`)."""
        return self.request("POST", url, headers=headers, body=body, timeout=timeout)

    async def close(self) -> None:
        """Close every connection; requests afterwards fail."""
        self._closed = True
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()
        for host in self._hosts.values():
            host.idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- an exchange -----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeout,
    ) -> Response:
        target = split_url(url)
        request = request_head(method, target, headers, body) + body
        loop = asyncio.get_running_loop()
        deadline = None if timeout.total is None else loop.time() + timeout.total
        may_resend = method in IDEMPOTENT_METHODS
        while True:
            connection, reused = await self._acquire(target, deadline, timeout)
            try:
                head = await self._exchange(connection, request, method, deadline, timeout)
            except HttpDisconnected as exc:
                self._release(connection, reusable=False)
                if exc.no_answer and reused and may_resend:
                    may_resend = False  # once, on a new connection
                    continue
                raise
            except BaseException:
                self._release(connection, reusable=False)
                raise
            return Response(self, connection, head, method, deadline, timeout)

    async def _exchange(
        self,
        connection: ClientConnection,
        request: bytes,
        method: str,
        deadline: float | None,
        timeout: Timeout,
    ) -> ResponseHead:
        """Send ``request`` and read the answer's head (interim 1xx answers skipped)."""
        if not await connection.write(request, deadline):
            raise HttpTimeout(f"the request was not sent within {timeout.total:g} s")
        buffer = b""  # the head's bytes received so far, when it came in pieces
        while True:
            data = connection.take()
            if data is None:
                if connection.eof:
                    if buffer:
                        raise HttpDisconnected(
                            "the server closed the connection inside the answer's head",
                            os_error=connection.lost_error,
                        )
                    raise HttpDisconnected(
                        "the server closed the connection without answering",
                        os_error=connection.lost_error,
                        no_answer=True,
                    )
                await wait_for_answer(connection, deadline, timeout)
                continue
            # The head is most often whole in the first bytes received: no copy of them then.
            buffer = buffer + data if buffer else data
            size = head_length(buffer)
            if not size:
                continue
            head = parse_response_head(buffer[:size])
            connection.give_back(buffer[size:])
            buffer = b""
            if 100 <= head.status < 200:
                if head.status == 101:
                    raise MalformedResponse("a protocol switch that was not asked for")
                continue  # an interim answer (100 Continue): the final one follows
            return head

    # -- the pool --------------------------------------------------------------------------

    async def _acquire(
        self, target: Target, deadline: float | None, timeout: Timeout
    ) -> tuple[ClientConnection, bool]:
        """A connection to ``target``'s server counted as in use: an idle one, else a new one
        once the limits allow; ``(connection, reused)``."""
        loop = asyncio.get_running_loop()
        key = target.key
        while True:
            if self._closed:
                raise HttpClientError("the HTTP client is closed")
            host = self._hosts.get(key)
            if host is None:
                host = self._hosts[key] = _Host()
            if self._in_use < self.limit and host.in_use < self.limit_per_host:
                # Within the limits: an idle connection first (a kept-alive one is reused
                # only within them too, or the limits would bound new connections alone).
                while host.idle:
                    connection = host.idle.pop()
                    if connection.idle_timer is not None:
                        connection.idle_timer.cancel()
                        connection.idle_timer = None
                    if connection.reusable:
                        host.in_use += 1
                        self._in_use += 1
                        return connection, True
                    self._forget(connection)
                    connection.close()
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = None if deadline is None else loop.call_at(deadline, expire_waiter, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if deadline is not None and loop.time() >= deadline:
                raise HttpTimeout(
                    f"no connection to {target.authority} free within {timeout.total:g} s"
                )
        host.in_use += 1
        self._in_use += 1
        try:
            connection = await self._open(target, deadline, timeout)
        except BaseException:
            host.in_use -= 1
            self._in_use -= 1
            self._wake_waiters()
            raise
        return connection, False

    def _release(self, connection: ClientConnection, *, reusable: bool) -> None:
        """Count ``connection`` out of use: back to the idle pool when ``reusable``, else closed."""
        host = self._hosts.get(connection.key)
        if host is not None:
            host.in_use -= 1
        self._in_use -= 1
        if (
            reusable
            and not self._closed
            and host is not None
            and connection.reusable
            and len(host.idle) < self.limit_per_host
        ):
            host.idle.append(connection)
            connection.idle_timer = connection.loop.call_later(
                self.keepalive_timeout, self._expire_idle, connection
            )
        else:
            self._forget(connection)
            connection.close()
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        # Every waiter looks again: they may wait for different hosts, and there are few.
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _expire_idle(self, connection: ClientConnection) -> None:
        connection.idle_timer = None
        self._drop_idle(connection)
        connection.close()

    def _drop_idle(self, connection: ClientConnection) -> None:
        host = self._hosts.get(connection.key)
        if host is not None and connection in host.idle:
            host.idle.remove(connection)
        self._forget(connection)

    def _forget(self, connection: ClientConnection) -> None:
        self._connections.discard(connection)

    async def _open(
        self, target: Target, deadline: float | None, timeout: Timeout
    ) -> ClientConnection:
        """A new connection to ``target``'s server (resolution, TCP, TLS), within the connect
        timeout and the exchange's deadline."""
        loop = asyncio.get_running_loop()
        until = deadline
        if timeout.connect is not None:
            connect_by = loop.time() + timeout.connect
            until = connect_by if until is None else min(until, connect_by)
        context = self._context() if target.scheme == "https" else None
        try:
            async with asyncio.timeout_at(until):
                addresses = await self._addresses(target)
                connection = await self._connect(target, addresses, context)
        except TimeoutError as exc:
            if isinstance(exc, HttpClientError):
                raise
            if timeout.connect is not None and until != deadline:
                raise HttpTimeout(
                    f"no connection to {target.authority} within {timeout.connect:g} s"
                ) from None
            raise HttpTimeout(f"the exchange took over {timeout.total:g} s") from None
        connection.key = target.key
        connection.on_lost = self._drop_idle
        self._connections.add(connection)
        return connection

    async def _addresses(self, target: Target) -> Sequence[str]:
        try:
            ipaddress.ip_address(target.host)
        except ValueError:
            pass
        else:
            return (target.host,)
        try:
            if self._resolver is not None:
                found = await self._resolver(target.host, target.port)
            else:
                found = await _system_resolve(target.host, target.port)
        except socket.gaierror as exc:
            raise HttpNameError(f"{target.host}: {exc.strerror or exc}", os_error=exc) from None
        if not found:
            error = socket.gaierror(socket.EAI_NONAME, "no address")
            raise HttpNameError(f"{target.host}: no address", os_error=error)
        return found

    async def _connect(
        self, target: Target, addresses: Sequence[str], context: ssl.SSLContext | None
    ) -> ClientConnection:
        """A connection to the first of ``addresses`` that takes one."""
        loop = asyncio.get_running_loop()
        local = None if self.local_address is None else (self.local_address, 0)
        first: OSError | None = None
        for address in addresses:
            connection = ClientConnection(loop, self.read_buffer)
            try:
                await loop.create_connection(
                    _factory(connection),
                    address,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context is not None else None,
                    local_addr=local,
                    # The caller's connect timeout bounds the handshake, not asyncio's 60 s.
                    ssl_handshake_timeout=None if context is None else 3600.0,
                )
            except OSError as exc:
                if context is not None:
                    _raise_if_tls(exc, target)
                first = first or exc
                continue
            return connection  # asyncio sets TCP_NODELAY on it
        assert first is not None
        raise HttpConnectError(
            f"cannot connect to {target.authority}: {first.strerror or first}", os_error=first
        )

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            import ssl  # only once an https:// URL is asked

            self._ssl_context = ssl.create_default_context()
        return self._ssl_context


def _factory(connection: ClientConnection) -> Callable[[], ClientConnection]:
    def protocol() -> ClientConnection:
        return connection

    return protocol


def _raise_if_tls(exc: OSError, target: Target) -> None:
    """Raise ``exc`` as the TLS failure it is (a handshake or certificate problem)."""
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError | ssl.CertificateError):
        raise HttpCertificateError(
            f"{target.authority}: certificate verify failed: {exc}", os_error=exc
        ) from None
    if isinstance(exc, ssl.SSLError):
        raise HttpTLSError(
            f"{target.authority}: TLS handshake failed: {exc}", os_error=exc
        ) from None


async def _system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[str] = []
    for _family, _type, _proto, _name, address in infos:
        ip = str(address[0])
        if ip not in found:
            found.append(ip)
    return found


class _RequestContext:
    """``async with client.request(...) as response``: the exchange, closed at the end."""

    __slots__ = ("_args", "_client", "_response")

    def __init__(
        self,
        client: HttpClient,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeout,
    ) -> None:
        self._client = client
        self._args = (method, url, headers, body, timeout)
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._client._send(*self._args)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.release()


class Response:
    """An answer: status, reason, headers; the body through :meth:`read` or :attr:`content`.

    The body is read once, in order.  Once its last byte is read the connection goes back to
    the pool (when it may carry another request); :meth:`release` (the end of the ``async
    with`` block) closes it if the body was not read to its end.
    """

    __slots__ = (
        "_chunked",
        "_client",
        "_connection",
        "_deadline",
        "_done",
        "_keep_alive",
        "_pending",
        "_received",
        "_remaining",
        "_timeout",
        "content",
        "content_length",
        "headers",
        "reason",
        "status",
        "version",
    )

    def __init__(
        self,
        client: HttpClient,
        connection: ClientConnection,
        head: ResponseHead,
        method: str,
        deadline: float | None,
        timeout: Timeout,
    ) -> None:
        self.status = head.status
        """The status code."""
        self.reason = head.reason
        """The reason phrase (may be empty)."""
        self.version = (1, head.minor_version)
        """The HTTP version of the answer."""
        self.headers = Headers(head.headers)
        """The header fields, looked up in any case."""
        self.content_length = head.content_length
        """The body's length as the head announced it (None: not announced)."""
        self.content = ResponseBody(self)
        """The body as a stream of the pieces received."""
        self._client = client
        self._connection: ClientConnection | None = connection
        self._deadline = deadline
        self._timeout = timeout
        self._keep_alive = head.keep_alive
        self._chunked = ChunkedDecoder() if head.chunked else None
        self._pending: collections.deque[bytes] = collections.deque()
        self._received = 0
        no_body = method == "HEAD" or head.status in (204, 304)
        # None: delimited by the connection's end (an answer that keeps it alive must say
        # how long its body is).
        self._remaining: int | None = 0 if no_body else head.content_length
        if self._remaining is None and self._chunked is None:
            self._keep_alive = False
        if no_body:
            self._chunked = None
        self._done = False
        if no_body or self._remaining == 0:
            self._finish()

    async def read(self, limit: int) -> bytes:
        """The whole body; :class:`~ppsp.errors.BodyTooLarge` when it is longer than ``limit``
        bytes (refused before any byte is read when the head announces it)."""
        if self.content_length is not None and self.content_length > limit:
            self.release()
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        pieces: list[bytes] = []
        size = 0
        while piece := await self._next_piece(None):
            size += len(piece)
            if size > limit:
                self.release()
                raise BodyTooLarge(f"body exceeds {limit} bytes")
            pieces.append(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's pieces as received (the same as iterating :attr:`content`)."""
        return self.content.__aiter__()

    def release(self) -> None:
        """Give the connection back: to the pool when the body was read to its end and the
        connection may carry another request, else closed."""
        connection = self._connection
        if connection is None:
            return
        self._connection = None
        self._done = True
        reusable = self._keep_alive and self._remaining == 0 and self._chunked is None
        self._client._release(connection, reusable=reusable)

    def _finish(self) -> None:
        self._remaining = 0
        self._done = True
        self.release()

    async def _next_piece(self, most: int | None) -> bytes:
        """The next piece of the body (at most ``most`` bytes); b"" at its end."""
        if self._pending:
            return self._split(self._pending.popleft(), most)
        while not self._done:
            connection = self._connection
            assert connection is not None
            loop = connection.loop
            if self._deadline is not None and loop.time() >= self._deadline:
                self.release()
                raise HttpTimeout(f"the exchange took over {self._timeout.total:g} s")
            data = connection.take()
            if data is None:
                if connection.eof:
                    self._end_of_stream(connection)
                    continue
                try:
                    await wait_for_answer(connection, self._deadline, self._timeout)
                except BaseException:
                    self.release()
                    raise
                continue
            piece = self._frame(connection, data)
            if piece:
                self._received += len(piece)
                return self._split(piece, most)
        return b""

    def _frame(self, connection: ClientConnection, data: bytes) -> bytes:
        """The body's bytes in ``data`` (the rest given back, or queued when decoded)."""
        decoder = self._chunked
        if decoder is not None:
            try:
                pieces = decoder.feed(data)
            except MalformedResponse:
                self.release()
                raise
            if decoder.done:
                if decoder.extra_bytes:
                    self._keep_alive = False  # bytes after the answer: never reused
                self._chunked = None
                self._pending.extend(pieces[1:])
                first = pieces[0] if pieces else b""
                self._finish()
                return first
            self._pending.extend(pieces[1:])
            return pieces[0] if pieces else b""
        remaining = self._remaining
        if remaining is None:  # close-delimited
            return data
        if len(data) >= remaining:
            piece = data if len(data) == remaining else data[:remaining]
            if len(data) > remaining:
                self._keep_alive = False  # more than announced: never reused
            self._finish()
            return piece
        self._remaining = remaining - len(data)
        return data

    def _end_of_stream(self, connection: ClientConnection) -> None:
        if self._remaining is None and self._chunked is None:
            if connection.lost_error is not None:
                self.release()
                raise IncompleteBody(
                    f"the connection broke after {self._received} bytes of the body",
                    os_error=connection.lost_error,
                )
            self._finish()  # a close-delimited body ends here
            return
        self.release()
        if self._chunked is not None:
            raise IncompleteBody(
                f"the connection closed after {self._received} bytes of a chunked body",
                os_error=connection.lost_error,
            )
        raise IncompleteBody(
            f"the connection closed after {self._received} of "
            f"{self.content_length} bytes of the body",
            os_error=connection.lost_error,
        )

    def _split(self, piece: bytes, most: int | None) -> bytes:
        if most is None or len(piece) <= most:
            return piece
        self._pending.appendleft(piece[most:])
        return piece[:most]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r}>"


class ResponseBody:
    """An answer's body as a stream: the pieces as received (:meth:`readany`, iteration) or
    at most ``n`` bytes at a time (:meth:`read`); b"" at its end.  The same calls as
    aiohttp's ``StreamReader``, so that :mod:`ppsp.peer.net.http_common` reads either."""

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    async def readany(self) -> bytes:
        """The next piece of the body, as received; b"" at its end."""
        return await self._response._next_piece(None)

    async def read(self, n: int = -1) -> bytes:
        """At most ``n`` bytes of the body (the next piece when ``n`` is negative)."""
        if n == 0:
            return b""
        return await self._response._next_piece(None if n < 0 else n)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        while piece := await self._response._next_piece(None):
            yield piece
