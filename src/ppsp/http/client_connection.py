"""The client's side of one HTTP/1.1 connection: the target a URL names, the request head
written for it, and the asyncio protocol that reads answers into a bounded buffer, with the
waits and deadlines the client's exchanges use (:mod:`ppsp.http.client` pools these).

Layer: I/O (see :mod:`ppsp.http`): the standard library and the codecs only, never aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, urlsplit

from ppsp.errors import (
    HttpTimeout,
    InvalidURL,
    LocalProtocolError,
)

if TYPE_CHECKING:
    pass

DEFAULT_READ_BUFFER: Final = 1 << 20
"""Bytes received and not yet read after which a connection stops reading from its socket
(the kernel's buffers then push back on the sender); reading resumes below half of it."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout:
    """Bounds on one HTTP exchange, in seconds (None: no bound).

    ``total``: from the call of :meth:`HttpClient.request` to the body's last byte (waiting
    for a free connection included); ``connect``: opening a connection (name resolution, TCP
    and TLS handshakes); ``read``: each wait for bytes from the server once the request is
    sent, the wait for the answer's first byte included.
    """

    total: float | None = None
    connect: float | None = None
    read: float | None = None


NO_TIMEOUT: Final = Timeout()


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: the pool key, the address to connect to, the request line's
    target and the ``Host`` field."""

    scheme: str
    host: str
    port: int
    target: str
    authority: str

    @property
    def key(self) -> tuple[str, str, int]:
        """The pool this target's connections belong to: scheme, host, port."""
        return (self.scheme, self.host, self.port)


def split_url(url: str) -> Target:
    """The parts of ``url`` a request needs; InvalidURL for anything that is not a plain
    ``http://`` or ``https://`` URL with a host (URLs from other peers are untrusted)."""
    try:
        parts = urlsplit(url)
        explicit = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise InvalidURL(f"invalid URL {url[:200]!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(f"not an http:// or https:// URL: {url[:200]!r}")
    if not host:
        raise InvalidURL(f"no host in URL {url[:200]!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidURL(f"credentials in URL {url[:200]!r}")
    if explicit == 0:
        raise InvalidURL(f"port 0 in URL {url[:200]!r}")
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if not literal:
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise InvalidURL(f"invalid host name in URL {url[:200]!r}") from None
        if _REG_NAME.fullmatch(host) is None:
            raise InvalidURL(f"invalid host name in URL {url[:200]!r}")
    elif "%" in host:  # an IPv6 zone: not something a peer or a tracker is reached by
        raise InvalidURL(f"invalid host in URL {url[:200]!r}")
    port = _DEFAULT_PORTS[scheme] if explicit is None else explicit
    target = quote(parts.path, safe=_PATH_SAFE) or "/"
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    bracketed = f"[{host}]" if ":" in host else host
    authority = bracketed if port == _DEFAULT_PORTS[scheme] else f"{bracketed}:{port}"
    return Target(scheme, host, port, target, authority)


def request_head(method: str, target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request head sent for ``method`` on ``target`` with ``headers`` and ``body``."""
    if _FIELD_NAME.fullmatch(method) is None:
        raise LocalProtocolError(f"invalid method {method!r}")
    lines = [f"{method} {target.target} HTTP/1.1", f"Host: {target.authority}"]
    names = set()
    for name, value in headers.items():
        if _FIELD_NAME.fullmatch(name) is None:
            raise LocalProtocolError(f"invalid header name {name!r}")
        if any(ord(character) < 0x20 and character != "\t" for character in value) or (
            "\x7f" in value
        ):
            raise LocalProtocolError(f"header {name!r} holds a control character")
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "host" in names or "content-length" in names or "transfer-encoding" in names:
        raise LocalProtocolError("Host and the body's framing are the client's to write")
    if "accept-encoding" not in names:
        lines.append("Accept-Encoding: identity")
    if body or method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ClientConnection(asyncio.Protocol):
    """One connection to a server: received bytes queued as they came, paused past a bound."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_buffer: int) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.key: tuple[str, str, int] = ("", "", 0)
        self._received: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._high = read_buffer
        self._low = read_buffer // 2
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self.eof = False
        self.lost = False
        self.lost_error: BaseException | None = None
        self.on_lost: Callable[[ClientConnection], None] | None = None
        self.idle_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The connection is open: keep its transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Bytes of an answer arrived: buffer them (bounded) and wake the reader."""
        self._received.append(data)
        self._buffered += len(data)
        if self._buffered > self._high and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        """The server finished sending: wake the reader."""
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended: wake whatever waits on it."""
        self.eof = True
        self.lost = True
        self.lost_error = exc
        self._wake()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.on_lost is not None:
            self.on_lost(self)

    def pause_writing(self) -> None:
        """The transport's buffer is full: writers wait."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """The transport's buffer drained: writers go on."""
        self._writing_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by the client ----------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry a new request (open, nothing unread)."""
        transport = self.transport
        return (
            not self.eof
            and not self._received
            and transport is not None
            and not transport.is_closing()
        )

    def take(self) -> bytes | None:
        """The oldest bytes received and not yet taken, or None."""
        if not self._received:
            return None
        data = self._received.popleft()
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= self._low and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def give_back(self, data: bytes) -> None:
        """Put bytes taken but not used back in front of the queue."""
        if data:
            self._received.appendleft(data)
            self._buffered += len(data)

    async def wait(self, until: float | None) -> bool:
        """Wait for bytes or the end of the stream until the loop time ``until``; False when
        that time came first."""
        if self._received or self.eof:
            return True
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiter = waiter
        timer = None if until is None else self.loop.call_at(until, expire_waiter, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return bool(self._received) or self.eof

    async def write(self, data: bytes, until: float | None) -> bool:
        """Send ``data``, waiting while the transport's buffer is full; False on a timeout."""
        transport = self.transport
        assert transport is not None
        transport.write(data)
        while self._writing_paused and not self.lost:
            waiter: asyncio.Future[None] = self.loop.create_future()
            self._drain_waiter = waiter
            timer = None if until is None else self.loop.call_at(until, expire_waiter, waiter)
            try:
                await waiter
            finally:
                self._drain_waiter = None
                if timer is not None:
                    timer.cancel()
            if self._writing_paused and until is not None and self.loop.time() >= until:
                return False
        return True

    def close(self) -> None:
        """Close the connection at once (nothing more is read or sent)."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def expire_waiter(waiter: asyncio.Future[None]) -> None:
    """A deadline passed: the waiter fails with TimeoutError (unless already done)."""
    if not waiter.done():
        waiter.set_result(None)


async def wait_for_answer(
    connection: ClientConnection, deadline: float | None, timeout: Timeout
) -> None:
    """Wait for bytes within the read timeout and the deadline; HttpTimeout otherwise."""
    loop = connection.loop
    until = deadline
    if timeout.read is not None:
        read_by = loop.time() + timeout.read
        until = read_by if until is None else min(until, read_by)
    if await connection.wait(until):
        return
    if deadline is not None and until == deadline:
        raise HttpTimeout(f"the exchange took over {timeout.total:g} s")
    raise HttpTimeout(f"no bytes from the server for {timeout.read:g} s")
