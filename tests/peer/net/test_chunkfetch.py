"""The threaded chunk client (:mod:`ppsp.peer.net.chunkfetch`) against real sockets on 127.0.0.1.

Healthy answers come from a real aiohttp server; hostile ones from a raw ``asyncio`` server
that writes exactly the bytes a test chooses (cut bodies, malformed heads, stalls, connections
closed while idle).  A fetched chunk must land verified at its offset in the store's file; a
failed one leaves nothing written.  Which chunks are held is recorded by the caller (the
session's download policy), never by the client or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from ppsp.errors import ChunkTransferError, IntegrityError, MalformedResponse, PeerBusy
from ppsp.http.client import HttpClient
from ppsp.peer.content.description import ContentDescription
from ppsp.peer.net.chunkfetch import (
    NoAnswer,
    Origin,
    ThreadedChunkClient,
    UnsupportedResponse,
    split_chunk_url,
)
from ppsp.peer.net.chunkstore import ChunkStore, describe_file
from ppsp.peer.net.http_common import PEER_ID_HEADER
from ppsp.peer.net.http_transport import THREADED_FETCH_MIN_CHUNK, HttpChunkTransport
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.session import RemotePeer, SwarmSession
from ppsp.peer.net.transport import ChunkTransport
from ppsp.wire.peer import HTTP, TransportOffer
from ppsp.wire.tracker import PeerInfo, PeerMode

CHUNK = 64 * 1024
SIZE = 3 * CHUNK + 5000  # four chunks, the last one short
LAST = 3
BOUND = 2.0
"""Generous bound, in seconds, on anything that should happen at once."""

T = TypeVar("T")


# -- content and store ------------------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    data: bytes
    description: ContentDescription

    def chunk(self, index: int) -> bytes:
        offset, length = self.description.chunk_range(index)
        return self.data[offset : offset + length]


def _make_content(tmp_path: Path, size: int, chunk_size: int, name: str) -> Content:
    data = random.Random(size).randbytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return Content(data, describe_file(path, chunk_size=chunk_size))


@pytest.fixture
def content(tmp_path: Path) -> Content:
    return _make_content(tmp_path, SIZE, CHUNK, "source.bin")


@pytest.fixture
def store(content: Content, tmp_path: Path) -> Iterator[ChunkStore]:
    with ChunkStore.create(content.description, tmp_path / "out") as created:
        yield created


def _on_disk(store: ChunkStore, index: int) -> bytes:
    offset, length = store.description.chunk_range(index)
    with store.path.open("rb") as file:
        file.seek(offset)
        return file.read(length)


def _nothing_written(store: ChunkStore) -> bool:
    return not any(store.path.read_bytes())


# -- clients ------------------------------------------------------------------------------------


@pytest.fixture
def make_client() -> Iterator[Callable[..., ThreadedChunkClient]]:
    """Build clients; each is closed at the end of the test."""
    clients: list[ThreadedChunkClient] = []

    def make(**options: Any) -> ThreadedChunkClient:
        client = ThreadedChunkClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., ThreadedChunkClient]) -> ThreadedChunkClient:
    return make_client(read_timeout=10.0)


async def bounded(awaitable: Awaitable[T], within: float = BOUND) -> T:
    """Await ``awaitable`` in a task; fail the test if it has not finished ``within`` seconds.

    (Not ``asyncio.wait_for``: its TimeoutError could not be told from the client's own.)
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        task.cancel()
        pytest.fail(f"not finished within {within} s")
    return task.result()


async def eventually(predicate: Callable[[], bool], within: float = BOUND) -> None:
    """Return once ``predicate()`` holds; fail the test if it does not within ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.005)


# -- a real aiohttp server ----------------------------------------------------------------------


@dataclass
class HttpServer:
    port: int
    ports: list[int] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def url(self, index: int, prefix: str = "chunk") -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}/{index}"


@pytest.fixture
async def http_server(content: Content) -> AsyncIterator[HttpServer]:
    """Serves ``content``'s chunks at ``/{anything}/{index}``; records each request."""
    server: HttpServer | None = None

    async def handle(request: web.Request) -> web.Response:
        assert server is not None and request.transport is not None
        server.ports.append(request.transport.get_extra_info("peername")[1])
        server.headers.append(dict(request.headers))
        index = int(request.match_info["index"])
        if not 0 <= index <= LAST:
            raise web.HTTPNotFound()
        return web.Response(body=content.chunk(index), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{prefix}/{index}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server = HttpServer(port=runner.addresses[0][1])
    try:
        yield server
    finally:
        await runner.cleanup()


# -- a raw server that writes exactly the bytes chosen ------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


@dataclass
class RawServer:
    port: int
    accepted: int = 0
    finished: int = 0
    """Connections whose handler returned (and which were then closed)."""
    sent: int = 0
    """Partial answers written by a stalling handler."""
    client_eofs: int = 0
    """Connections on which the client was seen to close or shut down its end."""
    requests: list[bytes] = field(default_factory=list)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/chunk/{index}"


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    """Start raw servers running a handler per connection; all closed at the end of the test."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def start(handler: Handler) -> RawServer:
        state: RawServer | None = None

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert state is not None
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            writers.append(writer)
            state.accepted += 1
            try:
                await handler(reader, writer, state)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                state.finished += 1

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        state = RawServer(port=server.sockets[0].getsockname()[1])
        return state

    try:
        yield start
    finally:
        for server in servers:
            server.close()
        for writer in writers:
            writer.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader, state: RawServer) -> int | None:
    """The chunk index a request asks for (last path segment); None at the client's EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        state.client_eofs += 1
        return None
    state.requests.append(head)
    target = head.split(b"\r\n", 1)[0].split(b" ")[1]
    return int(target.split(b"?", 1)[0].rsplit(b"/", 1)[1])


async def _wait_for_eof(reader: asyncio.StreamReader, state: RawServer) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass
    state.client_eofs += 1


def answering(respond: Callable[[int], bytes], *, close_after: bool = False) -> Handler:
    """Answer each request with ``respond(index)``; close after the first if ``close_after``."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer
    ) -> None:
        while (index := await _read_request(reader, state)) is not None:
            writer.write(respond(index))
            await writer.drain()
            if close_after:
                return

    return handler


def stalling(first: Callable[[int], bytes]) -> Handler:
    """Answer the first request with ``first(index)``, then send nothing until the client ends."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer
    ) -> None:
        index = await _read_request(reader, state)
        if index is None:
            return
        writer.write(first(index))
        await writer.drain()
        state.sent += 1
        await _wait_for_eof(reader, state)

    return handler


def head(length: int | None, *extra: str, status: str = "200 OK", version: str = "1.1") -> bytes:
    lines = [f"HTTP/{version} {status}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def ok(content: Content) -> Callable[[int], bytes]:
    def respond(index: int) -> bytes:
        body = content.chunk(index)
        return head(len(body), "Content-Type: application/octet-stream") + body

    return respond


# -- successful transfers -----------------------------------------------------------------------


async def test_each_chunk_lands_at_its_offset(
    content: Content, store: ChunkStore, client: ThreadedChunkClient, http_server: HttpServer
) -> None:
    for index in (LAST, 0, 2, 1):  # the short last chunk first
        length = await bounded(
            client.fetch(http_server.url(index), headers={}, store=store, index=index)
        )
        assert length == len(content.chunk(index))
        assert _on_disk(store, index) == content.chunk(index)
    assert len(content.chunk(LAST)) == 5000
    assert store.path.read_bytes() == content.data
    for index in range(LAST + 1):
        assert store.read(index) == content.chunk(index)


async def test_sequential_fetches_from_one_origin_share_one_connection(
    content: Content, store: ChunkStore, client: ThreadedChunkClient, http_server: HttpServer
) -> None:
    for index in (0, 1, 2, LAST, 0):
        await bounded(client.fetch(http_server.url(index), headers={}, store=store, index=index))
    assert len(http_server.ports) == 5
    assert len(set(http_server.ports)) == 1
    assert store.path.read_bytes() == content.data


async def test_a_connection_closed_by_the_server_while_idle_is_replaced(
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    # HTTP/1.1 without "Connection: close": the client keeps each connection, the server
    # closes it once it has answered.
    server = await raw_server(answering(ok(content), close_after=True))
    for index in (0, LAST, 1):
        assert await bounded(
            client.fetch(server.url(index), headers={}, store=store, index=index)
        ) == len(content.chunk(index))
        assert _on_disk(store, index) == content.chunk(index)
        # The server is done with the connection before the next request goes out on it.
        await eventually(lambda: server.finished == len(server.requests))
    # Each fetch after the first tried the kept connection (which answered nothing) and
    # then a fresh one: one request per connection reached the server.
    assert server.accepted == 3
    assert len(server.requests) == 3


async def test_a_fresh_connection_that_answers_nothing_is_not_retried(
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    async def hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer
    ) -> None:
        await _read_request(reader, state)

    server = await raw_server(hang_up)
    with pytest.raises(NoAnswer):
        await bounded(client.fetch(server.url(0), headers={}, store=store, index=0))
    assert server.accepted == 1
    assert _nothing_written(store)


async def test_a_connection_the_server_closes_is_not_kept(
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    # "Connection: close", and HTTP/1.0 without keep-alive: the client closes its end.
    answers = iter(
        (
            head(CHUNK, "Connection: close") + content.chunk(0),
            head(CHUNK, version="1.0") + content.chunk(1),
        )
    )
    server = await raw_server(answering(lambda index: next(answers)))
    await bounded(client.fetch(server.url(0), headers={}, store=store, index=0))
    await eventually(lambda: server.client_eofs == 1)
    await bounded(client.fetch(server.url(1), headers={}, store=store, index=1))
    await eventually(lambda: server.client_eofs == 2)
    assert server.accepted == 2
    assert _on_disk(store, 0) == content.chunk(0)
    assert _on_disk(store, 1) == content.chunk(1)


# -- hostile and unusable answers ---------------------------------------------------------------


def _flipped(body: bytes) -> bytes:
    return body[:100] + bytes([body[100] ^ 0x01]) + body[101:]


HOSTILE: dict[str, tuple[Callable[[bytes], bytes], type[Exception]]] = {
    "status 404": (lambda body: head(0, status="404 Not Found"), ChunkTransferError),
    "status 503 (busy)": (
        lambda body: head(0, "Retry-After: 3", status="503 Service Unavailable"),
        PeerBusy,
    ),
    "status 429 (busy)": (lambda body: head(0, status="429 Too Many Requests"), PeerBusy),
    "status 206": (
        lambda body: head(len(body), status="206 Partial Content") + body,
        ChunkTransferError,
    ),
    "status 500 with body": (
        lambda body: head(5, status="500 Internal Server Error") + b"oops!",
        ChunkTransferError,
    ),
    "Content-Length one short": (lambda body: head(len(body) - 1) + body[:-1], IntegrityError),
    "Content-Length one long": (lambda body: head(len(body) + 1) + body + b"x", IntegrityError),
    "Content-Length 0": (lambda body: head(0), IntegrityError),
    "flipped byte": (lambda body: head(len(body)) + _flipped(body), IntegrityError),
    "chunked coding": (
        lambda body: (
            head(None, "Transfer-Encoding: chunked")
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        ),
        UnsupportedResponse,
    ),
    "gzip then chunked": (
        lambda body: head(None, "Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n",
        UnsupportedResponse,
    ),
    "body until close": (lambda body: head(None) + body, UnsupportedResponse),
    "HTTP/1.0 body until close": (
        lambda body: head(None, version="1.0") + body,
        UnsupportedResponse,
    ),
    "cut short": (lambda body: head(len(body)) + body[:1000], ChunkTransferError),
    "head cut short": (lambda body: b"HTTP/1.1 200 OK\r\nContent-Le", ChunkTransferError),
    "space before colon": (
        lambda body: b"HTTP/1.1 200 OK\r\nContent-Length : %d\r\n\r\n" % len(body) + body,
        MalformedResponse,
    ),
    "no status line": (lambda body: b"hello\r\n\r\n" + body, MalformedResponse),
    "HTTP/2 status line": (lambda body: head(len(body), version="2") + body, MalformedResponse),
    "conflicting lengths": (
        lambda body: head(len(body), f"Content-Length: {len(body) - 1}") + body,
        MalformedResponse,
    ),
    "chunked beside Content-Length": (
        lambda body: head(len(body), "Transfer-Encoding: chunked") + body,
        MalformedResponse,
    ),
    "folded header line": (
        lambda body: head(len(body), "X-A: 1", " folded") + body,
        MalformedResponse,
    ),
    "head over 16 KiB": (
        lambda body: head(len(body), "X-Pad: " + "a" * 17_000) + body,
        MalformedResponse,
    ),
    "endless head": (lambda body: b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 4000, MalformedResponse),
}
"""Answers to a request for chunk 0, each written whole, and what the client must raise."""


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_an_unusable_answer_raises_and_stores_nothing(
    case: str,
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    http_server: HttpServer,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    build, expected = HOSTILE[case]
    body = content.chunk(0)
    server = await raw_server(answering(lambda index: build(body), close_after=True))
    with pytest.raises(expected) as info:
        await bounded(client.fetch(server.url(0), headers={}, store=store, index=0))
    # The exact class: a plain failure must not pass for "read it on the event loop"
    # (UnsupportedResponse), which makes a node stop using threads for that peer.
    assert info.type is expected, info.value
    if case == "status 503 (busy)":
        assert isinstance(info.value, PeerBusy) and info.value.retry_after == 3.0
    assert _nothing_written(store)
    assert _on_disk(store, 0) == bytes(CHUNK)  # nothing written
    # No second try on a fresh connection, and the client stays usable.
    assert client.accepts(http_server.url(0))
    await bounded(client.fetch(http_server.url(0), headers={}, store=store, index=0))
    assert _on_disk(store, 0) == body
    assert server.accepted == 1


async def test_bytes_beyond_the_body_in_the_first_packet_are_refused(
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    # The short last chunk, its head and the extra bytes fit one loopback segment, written at
    # once: the client's first receive gets them all.
    body = content.chunk(LAST)
    pipelined = head(len(body)) + body + head(3) + b"abc"
    server = await raw_server(stalling(lambda index: pipelined))
    with pytest.raises(ChunkTransferError) as info:
        await bounded(client.fetch(server.url(LAST), headers={}, store=store, index=LAST))
    assert info.type is ChunkTransferError
    assert _nothing_written(store)
    assert _on_disk(store, LAST) == bytes(len(body))
    await eventually(lambda: server.client_eofs == 1)  # the connection is not kept


async def test_a_stalled_transfer_times_out_and_its_connection_is_closed(
    content: Content,
    store: ChunkStore,
    make_client: Callable[..., ThreadedChunkClient],
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client = make_client(read_timeout=0.3)
    server = await raw_server(stalling(lambda index: head(CHUNK) + content.chunk(0)[:20_000]))
    with pytest.raises(TimeoutError):
        await bounded(client.fetch(server.url(0), headers={}, store=store, index=0), 10)
    await eventually(lambda: server.client_eofs == 1)
    assert _nothing_written(store)
    assert _on_disk(store, 0) == bytes(CHUNK)


async def test_a_stall_before_any_answer_times_out(
    store: ChunkStore,
    make_client: Callable[..., ThreadedChunkClient],
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client = make_client(read_timeout=0.3, first_byte_timeout=0.3)
    server = await raw_server(stalling(lambda index: b""))
    with pytest.raises(TimeoutError):
        await bounded(client.fetch(server.url(0), headers={}, store=store, index=0), 10)
    assert server.accepted == 1


# -- cancelling and closing ---------------------------------------------------------------------


async def stalled_fetch(
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
    content: Content,
    store: ChunkStore,
) -> tuple[RawServer, asyncio.Future[int]]:
    """A fetch of chunk 0 from a server that sends its head and 20,000 bytes, then nothing."""
    stalled = await raw_server(stalling(lambda index: head(CHUNK) + content.chunk(0)[:20_000]))
    task = asyncio.ensure_future(client.fetch(stalled.url(0), headers={}, store=store, index=0))
    await eventually(lambda: stalled.sent == 1)
    return stalled, task


async def test_cancelling_a_fetch_aborts_the_transfer_at_once(
    content: Content,
    store: ChunkStore,
    make_client: Callable[..., ThreadedChunkClient],
    http_server: HttpServer,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client = make_client(threads=1, read_timeout=30.0)
    stalled, task = await stalled_fetch(client, raw_server, content, store)
    assert not client.accepts(http_server.url(1))  # its one thread is busy
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=BOUND)
    assert task in done
    assert task.cancelled()
    # The socket was shut down: the server sees the end long before the 30 s read timeout.
    await eventually(lambda: stalled.client_eofs == 1)
    assert client.accepts(http_server.url(1))
    # The one worker thread is free again: a new fetch does not wait 30 s behind it.
    length = await bounded(client.fetch(http_server.url(1), headers={}, store=store, index=1))
    assert length == CHUNK
    assert _on_disk(store, 1) == content.chunk(1)
    assert _on_disk(store, 0) == bytes(CHUNK)  # the cancelled transfer wrote nothing


async def test_close_aborts_a_running_transfer_and_refuses_more(
    content: Content,
    store: ChunkStore,
    make_client: Callable[..., ThreadedChunkClient],
    http_server: HttpServer,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client = make_client(read_timeout=30.0)
    stalled, task = await stalled_fetch(client, raw_server, content, store)
    client.close()
    with pytest.raises(ChunkTransferError):
        await bounded(task)
    await eventually(lambda: stalled.client_eofs == 1)
    assert not client.accepts(http_server.url(1))
    with pytest.raises(ChunkTransferError):
        await bounded(client.fetch(http_server.url(1), headers={}, store=store, index=1))
    assert http_server.ports == []
    assert _nothing_written(store)


async def test_close_closes_idle_connections(
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    server = await raw_server(answering(ok(content)))
    await bounded(client.fetch(server.url(0), headers={}, store=store, index=0))
    await asyncio.sleep(0.05)
    assert server.client_eofs == 0  # kept alive
    client.close()
    await eventually(lambda: server.client_eofs == 1)


async def test_close_fails_a_queued_fetch_without_cancelling_its_caller(
    content: Content,
    store: ChunkStore,
    make_client: Callable[..., ThreadedChunkClient],
    http_server: HttpServer,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client = make_client(threads=1, read_timeout=30.0)
    _, running = await stalled_fetch(client, raw_server, content, store)
    queued = asyncio.ensure_future(
        client.fetch(http_server.url(1), headers={}, store=store, index=1)
    )
    await asyncio.sleep(0.01)  # the queued fetch is waiting for the pool
    client.close()
    done, _ = await asyncio.wait({running, queued}, timeout=BOUND)
    assert done == {running, queued}
    assert isinstance(running.exception(), ChunkTransferError)
    assert not queued.cancelled()
    assert isinstance(queued.exception(), ChunkTransferError)


# -- what the client accepts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443/chunk/0",
        "ftp://127.0.0.1/chunk/0",
        "//127.0.0.1/chunk/0",
        "/chunk/0",
        "",
        "http://127.0.0.1/chunk 0",
        "http://127.0.0.1/chunk/0\r\nX-Injected: 1",
        "http://127.0.0.1/chunk/0\nX-Injected: 1",
        "http://127.0.0.1/chunk/0\r",
        "http://127.0.0.1/chunk/\t0",
        "http://127.0.0.1/chunk/\x000",
        "http://127.0.0.1/chunk/\x1b0",
        "http://127.0.0.1/chunk/\x7f0",
        "http://127.0.0.1/chunk/0 HTTP/1.1\r\nHost: other\r\n\r\nGET /x",
        "http://user@127.0.0.1/chunk/0",
        "http://user:secret@127.0.0.1/chunk/0",
        "http://:secret@127.0.0.1/chunk/0",
        "http:///chunk/0",
        "http://127.0.0.1:99999/chunk/0",
        "http://127.0.0.1:port/chunk/0",
    ],
)
async def test_urls_for_the_event_loop_client_are_not_accepted(
    url: str, client: ThreadedChunkClient, store: ChunkStore
) -> None:
    assert split_chunk_url(url) is None
    assert not client.accepts(url)
    with pytest.raises(UnsupportedResponse):
        await client.fetch(url, headers={}, store=store, index=0)


async def test_no_more_transfers_are_accepted_than_threads(
    content: Content,
    store: ChunkStore,
    make_client: Callable[..., ThreadedChunkClient],
    http_server: HttpServer,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    client = make_client(threads=1, read_timeout=30.0)
    stalled = await raw_server(stalling(lambda index: head(CHUNK) + content.chunk(0)[:20_000]))
    assert client.accepts(http_server.url(1))
    task = asyncio.ensure_future(client.fetch(stalled.url(0), headers={}, store=store, index=0))
    await asyncio.sleep(0)  # the fetch has started: counted at once
    assert not client.accepts(http_server.url(1))
    await eventually(lambda: stalled.sent == 1)
    assert not client.accepts(http_server.url(1))
    assert not client.accepts(stalled.url(2))
    task.cancel()
    await asyncio.wait({task}, timeout=BOUND)
    assert task.done()
    assert client.accepts(http_server.url(1))


SPLITS: list[tuple[str, Origin, str]] = [
    ("http://example.org/chunk/3", Origin("example.org", 80, "example.org"), "/chunk/3"),
    ("http://example.org:8080/a/b", Origin("example.org", 8080, "example.org:8080"), "/a/b"),
    ("http://example.org:80/a", Origin("example.org", 80, "example.org:80"), "/a"),
    (
        "http://example.org/swarm/chunk?i=3&r=main",
        Origin("example.org", 80, "example.org"),
        "/swarm/chunk?i=3&r=main",
    ),
    ("http://[::1]:8080/x", Origin("::1", 8080, "[::1]:8080"), "/x"),
    ("http://[::1]/x", Origin("::1", 80, "[::1]"), "/x"),
    ("http://[2001:db8::7]:9/x?y=1", Origin("2001:db8::7", 9, "[2001:db8::7]:9"), "/x?y=1"),
    ("http://192.0.2.1:5000", Origin("192.0.2.1", 5000, "192.0.2.1:5000"), "/"),
    ("http://example.org", Origin("example.org", 80, "example.org"), "/"),
    ("http://example.org?q=1", Origin("example.org", 80, "example.org"), "/?q=1"),
    ("http://example.org/x#part", Origin("example.org", 80, "example.org"), "/x"),
    ("http://example.org/a%20b/%0D%0A", Origin("example.org", 80, "example.org"), "/a%20b/%0D%0A"),
]


@pytest.mark.parametrize(("url", "origin", "target"), SPLITS)
def test_split_chunk_url(
    url: str, origin: Origin, target: str, client: ThreadedChunkClient
) -> None:
    assert split_chunk_url(url) == (origin, target)
    assert client.accepts(url)


def test_an_explicit_port_0_is_not_read_as_80() -> None:
    split = split_chunk_url("http://127.0.0.1:0/chunk/0")
    assert split is None or split[0].port == 0


@pytest.mark.parametrize("segment", ["é", "€"])
async def test_a_non_ascii_url_is_refused_or_fetched_as_the_event_loop_would(
    segment: str,
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    http_server: HttpServer,
) -> None:
    url = http_server.url(0, prefix=segment)
    if client.accepts(url):
        length = await bounded(client.fetch(url, headers={}, store=store, index=0))
        assert length == CHUNK
        assert _on_disk(store, 0) == content.chunk(0)


# -- progress and request headers ---------------------------------------------------------------


async def test_progress_is_reported_on_the_loop_thread_while_the_body_trickles_in(
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    body = content.chunk(0)
    first_report = asyncio.Event()
    calls: list[tuple[int, int]] = []

    def on_bytes(count: int) -> None:
        calls.append((threading.get_ident(), count))
        first_report.set()

    async def trickling(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: RawServer
    ) -> None:
        # A slow body: small pieces until the client has reported progress (it reports every
        # PROGRESS_INTERVAL while bytes arrive), then the rest at once.
        await _read_request(reader, state)
        sent = 10_000
        writer.write(head(len(body)) + body[:sent])
        await writer.drain()
        while not first_report.is_set() and sent < len(body) - 200:
            writer.write(body[sent : sent + 200])
            sent += 200
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(body[sent:])
        await writer.drain()
        await _wait_for_eof(reader, state)

    server = await raw_server(trickling)
    length = await bounded(
        client.fetch(server.url(0), headers={}, store=store, index=0, on_bytes=on_bytes), 10
    )
    assert length == len(body)
    assert _on_disk(store, 0) == body
    assert calls, "no progress report during a slow body"
    assert {ident for ident, _ in calls} == {threading.get_ident()}
    counts = [count for _, count in calls]
    assert counts == sorted(counts)
    assert 10_000 < counts[0] < len(body)  # reported while the server held the rest back
    assert counts[-1] <= len(body)


async def test_progress_reports_run_on_the_loop_thread_and_stay_within_the_chunk(
    content: Content, store: ChunkStore, client: ThreadedChunkClient, http_server: HttpServer
) -> None:
    # A chunk arriving at once may not be reported at all: only what is reported is checked.
    calls: list[tuple[int, int]] = []

    def on_bytes(count: int) -> None:
        calls.append((threading.get_ident(), count))

    for index in (0, LAST):
        calls.clear()
        await bounded(
            client.fetch(
                http_server.url(index), headers={}, store=store, index=index, on_bytes=on_bytes
            )
        )
        assert _on_disk(store, index) == content.chunk(index)
        assert all(ident == threading.get_ident() for ident, _ in calls)
        counts = [count for _, count in calls]
        assert counts == sorted(counts)
        assert all(0 < count <= len(content.chunk(index)) for count in counts)


async def test_request_headers_reach_the_server(
    store: ChunkStore, client: ThreadedChunkClient, http_server: HttpServer
) -> None:
    await bounded(
        client.fetch(
            http_server.url(0),
            headers={PEER_ID_HEADER: "peer-42", "X-Extra": "a value; with: colons"},
            store=store,
            index=0,
        )
    )
    (seen,) = http_server.headers
    assert seen[PEER_ID_HEADER] == "peer-42"
    assert seen["X-Extra"] == "a value; with: colons"
    assert seen["Host"] == f"127.0.0.1:{http_server.port}"
    assert seen["Accept-Encoding"] == "identity"


async def test_the_request_line_and_host_are_sent_as_the_url_says(
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    server = await raw_server(answering(ok(content)))
    await bounded(client.fetch(f"{server.url(2)}?r=main&x=%20", headers={}, store=store, index=2))
    (request,) = server.requests
    lines = request.split(b"\r\n")
    assert lines[0] == b"GET /chunk/2?r=main&x=%20 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines


@pytest.mark.parametrize(
    "headers",
    [
        {PEER_ID_HEADER: "peer\r\nX-Injected: 1"},
        {PEER_ID_HEADER: "peer\n"},
        {PEER_ID_HEADER: "peer\r"},
        {PEER_ID_HEADER: "peer\x00"},
        {PEER_ID_HEADER: "peer\x7f"},
        {"X-A\r\nX-Injected": "1"},
    ],
)
async def test_a_header_with_control_characters_is_refused_before_sending(
    headers: dict[str, str],
    content: Content,
    store: ChunkStore,
    client: ThreadedChunkClient,
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    server = await raw_server(answering(ok(content)))
    with pytest.raises(ValueError):
        await client.fetch(server.url(0), headers=headers, store=store, index=0)
    await asyncio.sleep(0.05)
    assert server.accepted == 0
    assert client.accepts(server.url(0))  # nothing left counted as running
    assert _nothing_written(store)


# -- through a PeerNode's HTTP transport --------------------------------------------------------


class _Observer:
    """Follows one transfer: the byte counts reported, whether it was delivered."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.delivered_bytes: int | None = None

    def received(self, nbytes: int) -> None:
        self.counts.append(nbytes)

    def delivered(self, nbytes: int) -> bool:
        self.delivered_bytes = nbytes
        return True


async def _node_transport_remote(
    content: Content, store: ChunkStore, port: int
) -> tuple[PeerNode, HttpChunkTransport, RemotePeer]:
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    node._http = HttpClient()  # what start() makes, without a tracker
    session = SwarmSession(
        swarm_id=content.description.swarm_id,
        description=content.description,
        store=store,
        mode=PeerMode.LEECH,
    )
    transports: dict[str, ChunkTransport] = node.chunk_transports(session)
    transport = transports[HTTP]
    assert isinstance(transport, HttpChunkTransport)
    template = f"http://127.0.0.1:{port}/swarm/s/chunk/{{representation}}/{{chunk}}"
    remote = RemotePeer(
        peer_id="remote",
        info=PeerInfo(peer_id="remote"),
        base_url=f"http://127.0.0.1:{port}",
        offer=TransportOffer(type=HTTP, uri=template),
    )
    return node, transport, remote


async def test_a_node_leaves_a_peer_that_answers_chunked_to_the_event_loop(
    tmp_path: Path, raw_server: Callable[[Handler], Awaitable[RawServer]]
) -> None:
    large = _make_content(tmp_path, THREADED_FETCH_MIN_CHUNK + 1000, THREADED_FETCH_MIN_CHUNK, "l")
    chunked = head(None, "Transfer-Encoding: chunked") + b"0\r\n\r\n"
    server = await raw_server(answering(lambda index: chunked))
    with ChunkStore.create(large.description, tmp_path / "large-out") as store:
        node, transport, remote = await _node_transport_remote(large, store, server.port)
        try:
            assert transport.threaded(remote)
            assert await bounded(transport.fetch_in_thread(remote, 0, _Observer())) is None
            assert not transport.threaded(remote)
            assert len(server.requests) == 1
            assert server.requests[0].startswith(b"GET /swarm/s/chunk/main/0 HTTP/1.1\r\n")
            # From then on the node does not try threads for that peer at all.
            assert await bounded(transport.fetch_in_thread(remote, 1, _Observer())) is None
            assert len(server.requests) == 1
            assert _nothing_written(store)
        finally:
            await node.stop(disconnect=False)


async def test_a_node_fetches_small_chunks_on_the_event_loop(
    content: Content, store: ChunkStore, raw_server: Callable[[Handler], Awaitable[RawServer]]
) -> None:
    assert content.description.chunk_size < THREADED_FETCH_MIN_CHUNK
    server = await raw_server(answering(ok(content)))
    node, transport, remote = await _node_transport_remote(content, store, server.port)
    try:
        assert await bounded(transport.fetch_in_thread(remote, 0, _Observer())) is None
        assert server.accepted == 0  # left to the event loop's client, untouched
        assert transport.threaded(remote)
        # The whole fetch goes through the event loop's client: delivered, then written.
        observer = _Observer()
        assert await bounded(transport.fetch(remote, 0, observer)) == CHUNK
        assert observer.delivered_bytes == CHUNK and observer.counts[-1] == CHUNK
        assert store.read(0) == content.chunk(0)
    finally:
        await node.stop(disconnect=False)


def test_a_connection_with_bytes_waiting_after_the_answer_is_not_kept(
    client: ThreadedChunkClient,
) -> None:
    # Bytes the peer sent after its answer would be read as the next request's answer; a
    # connection the peer has closed would answer nothing.  Neither goes back to the pool.
    origin = Origin("127.0.0.1", 1, "127.0.0.1:1")
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        (quiet, _), (chatty, chatty_peer), (hung_up, hung_up_peer) = pairs
        chatty_peer.sendall(b"HTTP/1.1 200 OK\r\n")
        hung_up_peer.close()
        for sock in (quiet, chatty, hung_up):
            client._release(origin, sock)
        assert client._idle[origin] == [quiet]
        assert chatty.fileno() == -1 and hung_up.fileno() == -1  # closed
    finally:
        for pair in pairs:
            for sock in pair:
                sock.close()
