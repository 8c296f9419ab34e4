"""Chunk downloads in worker threads: blocking HTTP/1.1 keep-alive connections.

A chunk's GET (PROFILE.md's HTTP binding) runs start to end in one worker thread: the request
is sent, the head parsed (:mod:`ppsp.codecs.httphead`), the body received straight into the
thread's buffer, and the chunk verified and written to the store there, while it is still in
the CPU's cache.  On the event loop the same transfer costs an event-loop turn, a parser and a
stream reader per piece, and a hand-over to a storing thread; here the receiving, hashing and
writing are all system calls or C code that release the GIL, so several transfers, the event
loop and the other peers' uploads run side by side.  Figures in docs/BENCHMARKS.md.

The event loop keeps the decisions: it asks for a transfer (:meth:`ThreadedChunkClient.fetch`),
gets progress reports through ``call_soon_threadsafe`` and may abort a transfer at any time (a
timeout, a duplicate in endgame), which shuts its socket down so that the thread returns at once.

Only plain transfers of large chunks come here: the peer (``PeerNode.fetch_and_store_chunk``)
sends chunks smaller than ``THREADED_FETCH_MIN_CHUNK`` and downloads under a rate limit, which
the event loop paces, to the event loop's client, and :meth:`ThreadedChunkClient.accepts` sends
back URLs other than ``http://``; an answer in the chunked coding raises
:class:`UnsupportedResponse`, and the peer then leaves that remote peer to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from ppsp.codecs.httphead import (
    BUSY_STATUSES,
    MAX_HEAD_BYTES,
    head_length,
    parse_response_head,
    retry_after_seconds,
)
from ppsp.errors import ChunkTransferError, IntegrityError, PeerBusy
from ppsp.peer.download.peers import CHUNK_QUEUE_TIMEOUT, CONNECT_TIMEOUT, PROGRESS_TIMEOUT
from ppsp.peer.net.chunkstore import ChunkStore

PROGRESS_INTERVAL = 0.25
"""Seconds between two progress reports to the event loop while a body arrives.

A report wakes the event loop; it only has to come often enough to tell a slow transfer from
a stalled one (the picker's ``stall_timeout`` is 2 s), so a chunk that arrives within this
interval costs none."""

READ_TIMEOUT = PROGRESS_TIMEOUT
"""Bound on any one wait for body bytes from the peer, in seconds (the caller has its own
limits); the wait for an answer's first byte is bounded by
:data:`~ppsp.peer.download.peers.CHUNK_QUEUE_TIMEOUT`, opening a connection by
:data:`~ppsp.peer.download.peers.CONNECT_TIMEOUT`."""

IDLE_PER_ORIGIN = 16
"""Idle keep-alive connections kept per origin; more are closed."""


class UnsupportedResponse(ChunkTransferError):
    """A well-formed answer this client does not read (the chunked coding)."""


class NoAnswer(ChunkTransferError):
    """The peer closed the connection before sending any byte of an answer."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a chunk URL points: host, port and the ``Host`` header naming them."""

    host: str
    port: int
    authority: str


def split_chunk_url(url: str) -> tuple[Origin, str] | None:
    """``(origin, request target)`` of a plain ``http://`` URL; None for anything else.

    None also for a URL whose target or host holds white space or control characters (a remote
    peer's URI template is untrusted: nothing of it may end up as a second request line).
    """
    if not (url.isascii() and url.isprintable()) or " " in url:
        return None  # the event loop's client quotes what is not plain ASCII
    try:
        parts = urlsplit(url)
        port = 80 if parts.port is None else parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host = parts.hostname
    bracketed = f"[{host}]" if ":" in host else host
    authority = bracketed if parts.port is None else f"{bracketed}:{port}"
    return Origin(host, port, authority), target


class _Transfer:
    """One chunk's transfer: the abort flag and the socket to shut down to abort it."""

    __slots__ = ("_lock", "aborted", "sock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.aborted = False
        self.sock: socket.socket | None = None

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            if self.aborted:
                raise ChunkTransferError("transfer aborted")
            self.sock = sock

    def detach(self) -> None:
        with self._lock:
            self.sock = None

    def abort(self) -> None:
        """Stop the transfer: the worker's wait for bytes ends at once."""
        with self._lock:
            self.aborted = True
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)


_Call = tuple[Future[int], Callable[..., int], tuple[Any, ...]]


class _Workers:
    """Worker threads taking calls from one queue, all started together on the first call.

    Unlike ``ThreadPoolExecutor``, which starts a thread per call until it has enough and waits
    for each to run, here the event loop never waits for a thread to start while transfers
    already compete for the GIL.  The threads are daemons: a blocked receive never holds up
    the interpreter's exit (:meth:`ThreadedChunkClient.close` aborts transfers first).
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._started = False

    def submit(self, function: Callable[..., int], *args: Any) -> Future[int]:
        """Run ``function(*args)`` in a worker thread; its future."""
        if not self._started:
            self._started = True
            for number in range(self._count):
                name = f"ppsp-fetch-{number}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
        future: Future[int] = Future()
        self._queue.put((future, function, args))
        return future

    def shutdown(self) -> None:
        """Let every thread end once the calls queued before this one have run."""
        for _ in range(self._count if self._started else 0):
            self._queue.put(None)

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            future, function, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the awaiting caller
                future.set_exception(exc)
            else:
                future.set_result(result)
            del call, future, function, args  # nothing of a transfer outlives it here


class ThreadedChunkClient:
    """Downloads chunks into a :class:`ChunkStore` with blocking sockets in worker threads.

    At most ``threads`` transfers run at once; :meth:`accepts` says whether one more can start
    now, so that a caller never queues behind busy threads (it uses the event loop's client
    instead).  Connections are kept alive per origin and reused; a reused one that turns out to
    be closed by the peer is replaced once, as HTTP clients do.
    """

    def __init__(
        self,
        *,
        threads: int = 16,
        read_timeout: float = READ_TIMEOUT,
        first_byte_timeout: float = CHUNK_QUEUE_TIMEOUT,
        local_address: str | None = None,
    ) -> None:
        self.local_address = local_address
        """The address this host's connections leave from (None: the kernel's choice)."""
        self._threads = threads
        self._read_timeout = read_timeout
        self._first_byte_timeout = first_byte_timeout
        self._workers = _Workers(threads)
        self._lock = threading.Lock()
        self._idle: dict[Origin, list[socket.socket]] = {}
        self._running: set[_Transfer] = set()
        self._local = threading.local()
        self._closed = False

    def accepts(self, url: str) -> bool:
        """Whether a transfer of ``url`` can start in a thread now."""
        return (
            not self._closed
            and len(self._running) < self._threads
            and split_chunk_url(url) is not None
        )

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        store: ChunkStore,
        index: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """GET chunk ``index`` from ``url``, verify it and write it to ``store``; its length.

        Does not mark the chunk held (the caller does, on the event loop).  Raises
        IntegrityError when the body does not match the chunk's hash or length,
        ChunkTransferError (UnsupportedResponse for an answer to read on the event loop) or
        OSError when the transfer fails, TimeoutError when the peer stops sending.  Cancelling
        the call aborts the transfer.  While the body arrives, ``on_bytes`` is called on the
        event loop with the body bytes received so far, every :data:`PROGRESS_INTERVAL`.
        """
        split = split_chunk_url(url)
        if split is None or self._closed:
            raise UnsupportedResponse(f"not a plain http URL: {url!r}")
        origin, target = split
        request = _request_bytes(origin, target, headers)
        loop = asyncio.get_running_loop()
        report = None
        if on_bytes is not None:
            report = _threadsafe(loop, on_bytes)
        transfer = _Transfer()
        with self._lock:
            self._running.add(transfer)
        try:
            work = self._workers.submit(
                self._transfer, transfer, origin, request, store, index, report
            )
            return await asyncio.wrap_future(work)
        finally:
            transfer.abort()  # a no-op once the worker is done with the socket
            with self._lock:
                self._running.discard(transfer)

    def close(self) -> None:
        """Abort every transfer, close idle connections and let the threads end."""
        with self._lock:
            self._closed = True
            running = list(self._running)
            idle = [sock for socks in self._idle.values() for sock in socks]
            self._idle.clear()
        for transfer in running:
            transfer.abort()
        for sock in idle:
            sock.close()
        # Transfers still queued for a thread start, see the client closed and fail.
        self._workers.shutdown()

    # -- worker threads ----------------------------------------------------------------------

    def _transfer(
        self,
        transfer: _Transfer,
        origin: Origin,
        request: bytes,
        store: ChunkStore,
        index: int,
        report: Callable[[int], None] | None,
    ) -> int:
        if self._closed:
            raise ChunkTransferError("the chunk client is closed")
        _, length = store.description.chunk_range(index, store.representation.id)
        buffer = self._buffer(length)
        sock, reused = self._connection(origin)
        body = 0
        try:
            try:
                transfer.attach(sock)
                sock.sendall(request)
                head_size, received = _receive_head(sock, buffer, self._first_byte_timeout)
            except (NoAnswer, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                # A kept-alive connection the peer closed meanwhile: once more on a new one.
                if not reused or transfer.aborted:
                    raise
                sock.close()
                sock, reused = self._new_connection(origin), False
                transfer.attach(sock)
                sock.sendall(request)
                head_size, received = _receive_head(sock, buffer, self._first_byte_timeout)
            head = parse_response_head(bytes(buffer[:head_size]))
            if head.status in BUSY_STATUSES:
                raise PeerBusy(
                    f"busy ({head.status}) for chunk {index}",
                    retry_after_seconds(head.header("retry-after")),
                )
            if head.status != 200:
                raise ChunkTransferError(f"answered {head.status} for chunk {index}")
            if head.chunked or head.content_length is None:
                raise UnsupportedResponse("a body not delimited by Content-Length")
            if head.content_length != length:
                raise IntegrityError(
                    f"chunk {index}: {head.content_length} bytes announced, {length} expected"
                )
            view = memoryview(buffer)
            body = received - head_size
            if body > length:
                raise ChunkTransferError("bytes after the body (a pipelined answer)")
            view[:body] = view[head_size:received]
            next_report = time.monotonic() + PROGRESS_INTERVAL
            while body < length:
                # One call for the rest of the body: the kernel fills the buffer as segments
                # arrive, without a return to Python (and to the GIL) for each of them; it
                # returns early after PROGRESS_INTERVAL, for a progress report.
                count = _receive(sock, view[body:length], socket.MSG_WAITALL, self._read_timeout)
                if not count:
                    raise ChunkTransferError(f"connection closed after {body} of {length} bytes")
                body += count
                if report is not None and time.monotonic() >= next_report:
                    next_report = time.monotonic() + PROGRESS_INTERVAL
                    report(body)
            transfer.detach()
            if transfer.aborted:
                raise ChunkTransferError("transfer aborted")
            store.store_parts(index, (view[:length],))
        except BaseException as exc:
            transfer.detach()
            sock.close()
            if report is not None and body:
                report(body)  # what was received, for the caller's count of discarded bytes
            if isinstance(exc, BlockingIOError):  # the request's send ran out of SO_SNDTIMEO
                raise TimeoutError(f"the peer took no bytes for {self._read_timeout:g} s") from exc
            raise
        if head.keep_alive:
            self._release(origin, sock)
        else:
            sock.close()
        return length

    def _buffer(self, length: int) -> bytearray:
        # One buffer per thread, reused: a fresh bytearray would be zeroed for every chunk.
        buffer: bytearray | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < length + MAX_HEAD_BYTES:
            buffer = bytearray(length + MAX_HEAD_BYTES)
            self._local.buffer = buffer
        return buffer

    def _connection(self, origin: Origin) -> tuple[socket.socket, bool]:
        with self._lock:
            idle = self._idle.get(origin)
            if idle:
                return idle.pop(), True
        return self._new_connection(origin), False

    def _new_connection(self, origin: Origin) -> socket.socket:
        source = None if self.local_address is None else (self.local_address, 0)
        # An ASCII host goes as bytes: a str is encoded with the IDNA codec first, whose
        # import (3 ms) would lie on the first chunk's path.  (The socket module takes bytes
        # hosts; typeshed types them as str only.)
        host = origin.host
        named = cast(str, host.encode("ascii")) if host.isascii() else host
        sock = socket.create_connection(
            (named, origin.port), timeout=CONNECT_TIMEOUT, source_address=source
        )
        # Blocking, with the kernel's own time limits on each wait (SO_RCVTIMEO, SO_SNDTIMEO):
        # a Python-level timeout would poll before every receive, one more system call each.
        sock.settimeout(None)
        wait = _timeval(min(PROGRESS_INTERVAL, self._read_timeout))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(self._read_timeout))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _release(self, origin: Origin, sock: socket.socket) -> None:
        # A connection with bytes waiting after the answer (or closed by the peer) would hand
        # them to the next request as its answer: it is not kept.
        try:
            pending = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            pending = None
        except OSError:
            pending = b""
        if pending is not None:
            sock.close()
            return
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if not self._closed and len(idle) < IDLE_PER_ORIGIN:
                idle.append(sock)
                return
        sock.close()


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


def _request_bytes(origin: Origin, target: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {origin.authority}", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if any(ord(character) < 0x20 or ord(character) == 0x7F for character in name + value):
            raise ValueError(f"header {name!r} holds a control character")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _receive(sock: socket.socket, view: memoryview, flags: int, patience: float) -> int:
    """``recv_into`` that waits up to ``patience`` seconds for a first byte (TimeoutError after).

    The socket's own receive limit (SO_RCVTIMEO) is shorter: each receive returns within it,
    with what arrived, or with nothing and BlockingIOError, which is waited through here.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return sock.recv_into(view, len(view), flags)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no bytes from the peer for {patience:g} s") from None


def _receive_head(sock: socket.socket, buffer: bytearray, patience: float) -> tuple[int, int]:
    """Receive until the head is whole: ``(head length, bytes received)``, body bytes included."""
    view = memoryview(buffer)
    received = 0
    while True:
        count = _receive(sock, view[received:], 0, patience)
        if not count:
            if not received:
                raise NoAnswer("connection closed before an answer")
            raise ChunkTransferError("connection closed inside the answer's head")
        received += count
        size = head_length(buffer, received)
        if size:
            return size, received


def _threadsafe(
    loop: asyncio.AbstractEventLoop, callback: Callable[[int], None]
) -> Callable[[int], None]:
    def report(count: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(callback, count)

    return report
