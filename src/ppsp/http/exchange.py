"""What one exchange of the HTTP server is made of: the request a handler gets, the answers it
gives (whole, streamed, a file region by ``sendfile``), and the router that picks the handler.

The connection that reads requests and writes these answers is :mod:`ppsp.http.server`'s
(``_Connection``); the objects here hold it and call its small writing interface.

Layer: I/O (see :mod:`ppsp.http`): the standard library and the codecs only, never aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO, Final, TypeVar
from urllib.parse import parse_qsl

from ppsp.codecs.httphead import RequestHead
from ppsp.errors import LocalProtocolError, MalformedRequest, RequestBodyTooLarge
from ppsp.http.budget import RequestBodyBusy, body_host
from ppsp.http.headers import Headers

if TYPE_CHECKING:
    from ppsp.http.server import _Connection

__all__ = [
    "FILE_PIECE",
    "MAX_BODY_CHUNKS",
    "MAX_TRAILER_LINES",
    "MIN_SEND_RATE",
    "Handler",
    "Headers",
    "Request",
    "Response",
    "Router",
    "StreamResponse",
    "encode_head",
    "error_response",
    "send_file_now",
]

MIN_SEND_RATE: Final = 32 * 1024
"""Bytes per second below which a file region sent by ``loop.sendfile`` is cut (after the
server's send timeout of slack; ``loop.sendfile`` tells nothing of its progress): a client
reading a byte now and then holds no slot for ever.  A 1 MiB chunk may take 62 s."""

MAX_TRAILER_LINES: Final = 64
"""Most trailer fields after a chunked request body."""

MAX_BODY_CHUNKS: Final = 64
"""Most chunks of a chunked request body (each costs the server a wait and a few objects: a
body sent a byte a chunk cost 89 times the CPU of the same bytes in one); clients send a
request's body in one chunk or a few."""

_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"

FILE_PIECE: Final = 4 << 20
"""Bytes read and written per step when a file region cannot be sent with ``sendfile``."""

_D = TypeVar("_D")

Handler = Callable[["Request"], Awaitable["Response | StreamResponse"]]
"""What answers a request: a whole response, or a stream response it prepared itself."""

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache: list[tuple[int, str]] = [(0, "")]

_HEAD_PREFIXES_SIZE: Final = 64
"""Most heads' beginnings :func:`encode_head` keeps for the current second."""

# The common head up to its Content-Length value, by (status, content type), for the second
# in _prefix_second: all of it but the length is the same for every answer of that second.
_head_prefixes: dict[tuple[int, str], bytes] = {}
_prefix_second: list[int] = [0]


def _http_date(second: int | None = None) -> str:
    """Now (or ``second``, a Unix time) as an IMF-fixdate (RFC 9110 5.6.7), formatted once a
    second."""
    if second is None:
        second = int(time.time())
    cached_second, text = _date_cache[0]
    if second != cached_second:
        t = time.gmtime(second)
        text = (
            f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
        )
        _date_cache[0] = (second, text)
    return text


_REASONS: Final = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}
"""Reason phrases (RFC 9110 section 15) of the statuses a peer answers; others get none."""


def _reason(status: int) -> str:
    return _REASONS.get(status, "")


def encode_head(
    status: int,
    *,
    content_type: str | None,
    content_length: int | None,
    headers: Mapping[str, str] | None,
    keep_alive: bool,
    minor_version: int,
    reason: str | None = None,
) -> bytes:
    """The bytes of a response head.  Header values may not hold CR or LF (LocalProtocolError:
    a header ending the head early would split the response); a ``reason`` phrase (the
    status's usual one when None) has anything but printable ASCII replaced by spaces."""
    if (
        reason is None
        and not headers
        and keep_alive
        and minor_version
        and content_type
        and content_length is not None
    ):
        # The common answer (a tracker's, a peer's): its head but the length is the same for
        # every answer of this second with this status and content type, formatted once.
        second = int(time.time())
        if second != _prefix_second[0]:
            _head_prefixes.clear()
            _prefix_second[0] = second
        key = (status, content_type)
        prefix = _head_prefixes.get(key)
        if prefix is None:
            if "\r" in content_type or "\n" in content_type:
                raise LocalProtocolError("a content type holds CR or LF")
            prefix = (
                f"HTTP/1.1 {status} {_reason(status)}\r\nDate: {_http_date(second)}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: "
            ).encode("latin-1")
            if len(_head_prefixes) < _HEAD_PREFIXES_SIZE:
                _head_prefixes[key] = prefix
        return prefix + b"%d\r\n\r\n" % content_length
    if reason is None:
        reason = _reason(status)
    elif not (reason.isascii() and reason.isprintable()):
        reason = "".join(ch if " " <= ch <= "~" else " " for ch in reason)
    if content_type is not None and ("\r" in content_type or "\n" in content_type):
        raise LocalProtocolError("a content type holds CR or LF")
    if headers and any("\r" in text or "\n" in text for field in headers.items() for text in field):
        raise LocalProtocolError("a response header holds CR or LF")
    parts = [f"HTTP/1.1 {status} {reason}\r\nDate: {_http_date()}\r\n"]
    if content_type is not None:
        parts.append(f"Content-Type: {content_type}\r\n")
    if content_length is not None:
        parts.append(f"Content-Length: {content_length}\r\n")
    if headers:
        parts.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    if not keep_alive:
        parts.append("Connection: close\r\n")
    elif minor_version == 0:
        parts.append("Connection: keep-alive\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")


def send_file_now(
    transport: asyncio.BaseTransport, file: BinaryIO, offset: int, length: int
) -> int:
    """Send what the socket takes at once of ``length`` bytes of ``file`` from ``offset``.

    One non-blocking ``sendfile`` straight onto the transport's socket; the number of bytes
    sent (0 when nothing could be).  Only when the transport has nothing buffered, so that the
    bytes follow everything written before them: asyncio's ``loop.sendfile`` then costs
    several futures and four ``epoll_ctl`` calls per chunk for a chunk that the socket takes
    whole.  Errors are left to the caller's slower path, which reports them.
    """
    if transport.is_closing() or not isinstance(transport, asyncio.WriteTransport):
        return 0
    if transport.get_write_buffer_size():
        return 0
    if transport.get_extra_info("sslcontext") is not None:
        return 0  # the socket under TLS: its bytes must go through the TLS layer
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        return os.sendfile(sock.fileno(), file.fileno(), offset, length)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return 0  # not a socket sendfile can write to, or a broken one: the slow path tells


class Request:
    """One request, as its handler sees it.

    ``remote`` is the connection's source ``(ip, port)`` (never a header); ``segments`` the
    path's percent-decoded segments; ``match_info`` the path's named parts when a
    :class:`Router` dispatched the request.
    """

    __slots__ = (
        "_body",
        "_close_after",
        "_conn",
        "_continued",
        "_query",
        "_stream",
        "_unread",
        "head",
        "headers",
        "match_info",
        "method",
        "path",
        "remote",
        "segments",
    )

    def __init__(
        self, conn: _Connection, head: RequestHead, headers: Headers | None = None
    ) -> None:
        self._conn = conn
        self.head = head
        """The parsed head (:class:`~ppsp.codecs.httphead.RequestHead`)."""
        self.method = head.method
        self.path = head.path
        """The path as sent (still percent-encoded)."""
        self.segments = head.segments
        self.headers = Headers(head.headers) if headers is None else headers
        self.remote = conn.remote
        self.match_info: dict[str, str] = {}
        self._query: dict[str, str] | None = None
        self._body: bytes | None = None
        # A chunked body's length is unknown until read: 1 stands for "something unread".
        self._unread = 1 if head.chunked else head.content_length
        self._continued = False
        self._close_after = False
        self._stream: StreamResponse | None = None

    @property
    def remote_ip(self) -> str:
        """The IP address of the connection's source (the requester's host, never a header)."""
        return self.remote[0]

    @property
    def query(self) -> Mapping[str, str]:
        """The query's parameters, decoded (the first value of a repeated name)."""
        if self._query is None:
            query: dict[str, str] = {}
            for name, value in parse_qsl(self.head.query or "", keep_blank_values=True):
                query.setdefault(name, value)
            self._query = query
        return self._query

    @property
    def keep_alive(self) -> bool:
        """Whether the client asked to keep the connection for another request."""
        return self.head.keep_alive

    @property
    def content_length(self) -> int:
        """The body's length as the head declares it (0 without a body)."""
        return self.head.content_length

    @property
    def body_arrived(self) -> bool:
        """Whether what is left of the body is all received (nothing of it can stall; a
        chunked body counts as arrived once read)."""
        if self.head.chunked:
            return not self._unread
        return len(self._conn._buffer) >= self._unread

    def close_after(self) -> None:
        """Close the connection once this request is answered (its body is not drained)."""
        self._close_after = True

    @property
    def connected(self) -> bool:
        """Whether the client is still there to receive an answer (it has not closed its side
        of the connection)."""
        return not self._conn.closing

    def body_if_arrived(self, limit: int) -> bytes | None:
        """The whole body if it is all received already and within ``limit`` (read once, as
        :meth:`read_body` reads it), else None: then :meth:`read_body` waits, or refuses.

        No coroutine and no waiting: the common case of a small body that came with its head.
        """
        if self._body is not None:
            return self._body
        head = self.head
        length = head.content_length
        if head.chunked or length > limit or (length and head.expect_continue):
            return None
        buffer = self._conn._buffer
        if len(buffer) < length:
            return None
        body = bytes(buffer[:length])
        del buffer[:length]
        self._unread = 0
        self._body = body
        return body

    def _charge(self, size: int, client: str | None) -> None:
        """Take ``size`` bytes of the server's body budget for this request's body, before
        waiting for them, from ``client``'s host (the connection's source when None; a chunked
        body's next chunk: from the body's host); RequestBodyBusy (503, the connection closes
        after it) when spent, or when the body was evicted for lagging its pace."""
        conn = self._conn
        budget = conn.server.body_budget
        if budget is None:
            return
        if conn.evicted:
            self._close_after = True
            raise RequestBodyBusy("request body evicted: it lagged its pace")
        body = conn.body
        now = conn.loop.time()
        if body is None:
            host = body_host(self.remote[0] if client is None else client)
            body = budget.take(
                host,
                size,
                now,
                within=conn.server.body_timeout,
                received=len(conn._buffer),
                holder=conn,
            )
            if body is not None:
                conn.body = body  # one request at a time: the connection's is this one's
                return
        elif budget.take_more(body, size, now):
            return
        self._close_after = True
        raise RequestBodyBusy(f"request bodies being read: {size} more bytes refused")

    def _body_read(self) -> None:
        """The whole body is read: from now on its charge is never evicted."""
        conn = self._conn
        body = conn.body
        budget = conn.server.body_budget
        if body is not None and budget is not None:
            budget.read(body)

    def release_body(self) -> None:
        """Give back what the body took of the server's body budget (the server calls this
        once the handler returned, whatever ended it)."""
        conn = self._conn
        body = conn.body
        conn.evicted = False
        budget = conn.server.body_budget
        if body is not None and budget is not None:
            conn.body = None
            budget.give(body)

    async def read_body(self, limit: int | None = None, client: str | None = None) -> bytes:
        """The whole body (``b""`` without one), read once.

        Raises RequestBodyTooLarge when its ``Content-Length`` is over ``limit`` (the server's
        ``body_limit`` when None; nothing is read then), RequestBodyBusy (503) when the body
        must be waited for and the server's body budget (:mod:`ppsp.http.budget`) cannot take
        it (nothing is read then) or evicts it for lagging its pace, RequestTimeout when it
        does not arrive within the server's ``body_timeout``, ConnectionError when the client
        goes away first.  The body is charged to ``client``'s host (an IP address) when
        given, else to the connection's source: a handler that knows the client behind a
        trusted proxy names it, so that the clients of one proxy do not share one host's
        budget.
        """
        if self._body is not None:
            return self._body
        conn = self._conn
        bound = conn.server.body_limit if limit is None else limit
        if self.head.chunked:
            return await self._read_chunked(bound, client)
        length = self.head.content_length
        if length > bound:
            self._close_after = True
            raise RequestBodyTooLarge(f"a body of {length} bytes, over {bound}")
        if length:
            charged = len(conn._buffer) < length
            if charged:
                self._charge(length, client)  # to be waited for: paid before any of it is
            if self.head.expect_continue and not self._continued:
                self._continued = True
                conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body = await conn.read_exactly(length, conn.server.body_timeout)
            except BaseException:
                self._close_after = True
                raise
            if charged:
                self._body_read()
        else:
            body = b""
        self._unread = 0
        self._body = body
        return body

    async def _read_chunked(self, bound: int, client: str | None) -> bytes:
        """A body in the chunked coding (RFC 9112 7.1), at most ``bound`` bytes of data, each
        chunk charged to ``client`` (see :meth:`read_body`); its trailer fields are read and
        dropped.  MalformedRequest (400) for bad framing."""
        conn = self._conn
        if self.head.expect_continue and not self._continued:
            self._continued = True
            conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        deadline = conn.loop.time() + conn.server.body_timeout
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                line = await conn.read_line(deadline)
                size_text = line.partition(b";")[0].strip(b" \t")
                if not size_text or len(size_text) > 15 or size_text.strip(_HEX_DIGITS):
                    raise MalformedRequest("malformed chunk size")
                size = int(size_text, 16)
                if not size:
                    break
                if len(parts) >= MAX_BODY_CHUNKS:
                    raise MalformedRequest(f"a chunked body in more than {MAX_BODY_CHUNKS} chunks")
                total += size
                if total > bound:
                    raise RequestBodyTooLarge(f"a chunked body over {bound} bytes")
                self._charge(size, client)
                data = await conn.read_until(size + 2, deadline)
                if not data.endswith(b"\r\n"):
                    raise MalformedRequest("a chunk not ended by CRLF")
                parts.append(data[:-2])
            for _ in range(MAX_TRAILER_LINES):
                if not await conn.read_line(deadline):
                    break
            else:
                raise MalformedRequest("too many trailer fields")
        except BaseException:
            self._close_after = True
            raise
        self._body_read()
        body = b"".join(parts)
        self._unread = 0
        self._body = body
        return body


class Response:
    """A whole response: status, body, content type, other header fields.

    ``Content-Length``, ``Date`` and ``Connection`` are the server's; a non-empty body without
    a content type is ``application/octet-stream``.  ``reason`` replaces the status's usual
    reason phrase (printable ASCII on one line; anything else is replaced by spaces).
    """

    __slots__ = ("body", "content_type", "headers", "reason", "status")

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers
        self.reason = reason


def error_response(status: int, headers: Mapping[str, str] | None = None) -> Response:
    """An error answer: ``"404: Not Found"`` as plain text."""
    return Response(
        status,
        f"{status}: {_reason(status)}".encode("ascii"),
        content_type="text/plain; charset=utf-8",
        headers=headers,
    )


class StreamResponse:
    """A response whose body the handler writes itself, after :meth:`prepare` sent its head.

    With ``content_length`` the connection stays open for the next request once that many
    bytes went (fewer, and it is closed: the client sees the body cut); without, the body ends
    with the connection.  Writes raise ConnectionError once the client went away.  The body of
    an answer to ``HEAD`` is not sent.
    """

    __slots__ = (
        "_conn",
        "_finished",
        "_head_only",
        "_prepared",
        "_sent",
        "content_length",
        "content_type",
        "headers",
        "keep_alive",
        "status",
    )

    def __init__(
        self,
        status: int = 200,
        *,
        content_type: str | None = "application/octet-stream",
        content_length: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.content_length = content_length
        self.headers = headers
        self.keep_alive = False
        """Whether the connection serves another request after this answer (known once
        prepared)."""
        self._conn: _Connection | None = None
        self._prepared = False
        self._finished = False
        self._head_only = False
        self._sent = 0

    @property
    def prepared(self) -> bool:
        """Whether the head was sent."""
        return self._prepared

    async def prepare(self, request: Request) -> None:
        """Send the head, as the answer to ``request``."""
        if self._prepared:
            return
        if request._stream is not None:
            raise LocalProtocolError("a request gets one answer")
        conn = request._conn
        self.keep_alive = (
            request.head.keep_alive
            and self.content_length is not None
            and not conn.server.closing
            and not request._close_after
        )
        head = encode_head(
            self.status,
            content_type=self.content_type,
            content_length=self.content_length,
            headers=self.headers,
            keep_alive=self.keep_alive,
            minor_version=request.head.minor_version,
        )
        conn.write(head)
        request._stream = self
        self._conn = conn
        self._head_only = request.method == "HEAD"
        self._prepared = True

    def _writing(self, size: int) -> _Connection:
        if self._conn is None or self._finished:
            raise LocalProtocolError("write before prepare or after write_eof")
        if self.content_length is not None and self._sent + size > self.content_length:
            raise LocalProtocolError("more bytes than the Content-Length sent")
        return self._conn

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``, then wait while the connection's buffer is full."""
        conn = self._writing(len(data))
        if self._head_only or not data:
            return
        conn.write(data)
        self._sent += len(data)
        await conn.drain()

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``file`` from ``offset`` without copying them through Python.

        What the socket takes at once goes with one ``sendfile`` call (:func:`send_file_now`),
        the rest through the loop's ``loop.sendfile``, which waits for the socket to drain; on
        a loop without one (uvloop) the rest is read and written.  The file's position is not
        used.
        """
        conn = self._writing(count)
        if self._head_only or not count:
            return
        conn.check_open()
        transport = conn.transport
        sent = send_file_now(transport, file, offset, count)
        self._sent += sent
        if sent == count:
            return
        offset, count = offset + sent, count - sent
        # A client reading too slowly is cut, as if it went away: its socket is shut down,
        # which ends loop.sendfile with an error.  (Cancelling loop.sendfile, or aborting the
        # transport under it, leaves asyncio 3.11's transport in a broken state.)
        limit = conn.server.send_timeout + count / conn.server.min_send_rate
        cut = conn.loop.call_later(limit, _shut_down, transport)
        try:
            await conn.loop.sendfile(transport, file, offset, count, fallback=False)
        except (NotImplementedError, RuntimeError):
            # No loop.sendfile (uvloop), or not on this transport (RuntimeError's
            # SendfileNotAvailableError); or the transport closed meanwhile.
            cut.cancel()
            conn.check_open()
            await self._write_file(conn, file, offset, count)
        except OSError:
            transport.abort()
            raise ConnectionResetError("the client stopped reading") from None
        else:
            self._sent += count
        finally:
            cut.cancel()

    async def _write_file(self, conn: _Connection, file: BinaryIO, offset: int, count: int) -> None:
        end = offset + count
        while offset < end:
            data = os.pread(file.fileno(), min(FILE_PIECE, end - offset), offset)
            if not data:
                raise OSError(f"the file ends before byte {end}")
            conn.write(data)
            self._sent += len(data)
            offset += len(data)
            await conn.drain()

    async def write_eof(self) -> None:
        """The body is complete.  Sent short of its ``Content-Length``, the connection closes
        after it."""
        if self._finished:
            return
        self._finished = True
        short = self.content_length is not None and self._sent != self.content_length
        if short and not self._head_only:
            self.keep_alive = False


def _shut_down(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Router:
    """A handler that dispatches on method and path.

    Patterns are paths whose segments are literal or ``{name}``, which matches any one
    non-empty segment (decoded) and is found in the request's ``match_info``.  A route for
    ``GET`` answers ``HEAD`` too.  No route for the path: 404; the path's routes take other
    methods: 405 with ``Allow``; a method no route takes and RFC 9110 does not define: 501.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = []
        self._methods: set[str] = set()

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer ``method`` requests for paths matching ``pattern`` with ``handler``."""
        if not pattern.startswith("/"):
            raise ValueError(f"a route pattern starts with /: {pattern!r}")
        segments = tuple(pattern[1:].split("/"))
        handlers = next((found for known, found in self._routes if known == segments), None)
        if handlers is None:
            handlers = {}
            self._routes.append((segments, handlers))
        handlers[method] = handler
        self._methods.add(method)
        if method == "GET":
            handlers.setdefault("HEAD", handler)
            self._methods.add("HEAD")

    async def __call__(self, request: Request) -> Response | StreamResponse:
        """Answer ``request`` with the handler of its route (or 404, 405, 501)."""
        allowed: set[str] = set()
        for segments, handlers in self._routes:
            match = _match(segments, request.segments)
            if match is None:
                continue
            handler = handlers.get(request.method)
            if handler is not None:
                request.match_info = match
                return await handler(request)
            allowed.update(handlers)
        if request.method not in self._methods and request.method not in _STANDARD_METHODS:
            return error_response(501)
        if allowed:
            return error_response(405, {"Allow": ", ".join(sorted(allowed))})
        return error_response(404)


_STANDARD_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""Methods a server knows of (RFC 9110 section 9, RFC 5789): 404/405, never 501."""


def _match(pattern: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    found: dict[str, str] = {}
    for part, segment in zip(pattern, segments, strict=True):
        if part.startswith("{") and part.endswith("}"):
            if not segment:
                return None
            found[part[1:-1]] = segment
        elif part != segment:
            return None
    return found
