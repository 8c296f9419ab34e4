"""The lean HTTP/1.1 client (:mod:`ppsp.http.client`) against real sockets on loopback.

The servers are small ``asyncio`` servers written here, each answering with bytes a test
scripts (well-formed, hostile, slow or silent), so that every framing, limit, timeout and
failure the client meets from other peers and from trackers is met here on a real connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from e2e.tls_helpers import make_tls_files, server_context
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
    InvalidURL,
    LocalProtocolError,
    MalformedResponse,
    PPSPError,
)
from ppsp.http.client import Headers, HttpClient, Timeout
from ppsp.wire.fields import MAX_HEAD_BYTES

T = TypeVar("T")

SHORT = 0.3
"""A timeout a test expects to run out (the tests bound their own waits generously)."""


@dataclass
class Request:
    """One request as the server received it."""

    head: bytes
    body: bytes
    connection: int
    peer: tuple[str, int]

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]


Answer = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]
"""Writes the answer to a request; False closes the connection afterwards."""


@dataclass
class RawServer:
    """An HTTP/1.1 server on loopback whose answers a test scripts."""

    answer: Answer
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    scheme: str = "http"
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, path: str = "/x") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        self.scheme = "https" if tls is not None else "http"

    async def close(self) -> None:
        self.stop.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
                    body = await reader.readexactly(int(length.group(1))) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = Request(head, body, number, writer.get_extra_info("peername")[:2])
                self.requests.append(request)
                keep = await self.answer(request, writer)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            self.open_now -= 1
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    """Start scripted servers (``await serve(answer, tls=None)``); all closed at the end."""
    servers: list[RawServer] = []

    async def start(answer: Answer, tls: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(answer)
        await server.start(tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def response(body: bytes = b"hello", *fields: str, status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answering(data: bytes | Callable[[Request], bytes], *, keep: bool = True) -> Answer:
    """An answer writing ``data`` (or ``data(request)``) whole."""

    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(data(request) if callable(data) else data)
        return keep

    return answer


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    """A body in the chunked coding, one chunk per piece."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return out + b"0\r\n" + trailer + b"\r\n"


async def bounded(awaitable: Awaitable[T], seconds: float = 10.0) -> T:
    """The awaitable's result, failing the test if it takes far longer than it should."""
    return await asyncio.wait_for(awaitable, seconds)


async def get(http: HttpClient, url: str, limit: int = 1 << 20, **kwargs: object) -> bytes:
    async with http.request("GET", url, **kwargs) as answer:  # type: ignore[arg-type]
        assert answer.status == 200
        return await answer.read(limit)


# -- keep-alive and framing ---------------------------------------------------------------------


async def test_keep_alive_carries_requests_on_one_connection(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(lambda request: response(request.line)))
    async with HttpClient() as http:
        for path in ("/a", "/b?q=1", "/c"):
            assert await bounded(get(http, server.url(path))) == f"GET {path} HTTP/1.1".encode()
    assert server.connections == 1
    assert [r.connection for r in server.requests] == [0, 0, 0]
    first = server.requests[0].head.decode()
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n" in first
    assert "Content-Length" not in first  # a GET has no body to frame


async def test_a_post_sends_its_body_and_headers(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(lambda request: response(request.body[::-1], "X-A: 1")))
    async with (
        HttpClient() as http,
        http.post(server.url("/"), body=b"abc", headers={"Content-Type": "text/xml"}) as answer,
    ):
        assert (answer.status, answer.reason) == (200, "OK")
        assert answer.headers["x-a"] == answer.headers.get("X-A") == "1"
        assert answer.content_length == 3
        assert await answer.read(10) == b"cba"
    head = server.requests[0].head
    assert b"\r\nContent-Type: text/xml\r\n" in head and b"\r\nContent-Length: 3\r\n" in head


async def test_chunked_bodies_are_decoded_and_the_connection_kept(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    body = chunked(b"one ", b"two ", b"x" * 70_000, trailer=b"X-Sum: 1\r\n")
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        for start in range(0, len(head + body), 7):  # in small pieces: the decoder's seams
            writer.write((head + body)[start : start + 7])
        return True

    server = await serve(answer)
    async with HttpClient() as http:
        for _ in range(2):
            assert await bounded(get(http, server.url())) == b"one two " + b"x" * 70_000
    assert server.connections == 1


async def test_a_close_delimited_body_is_read_to_the_end_and_not_reused(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of it", keep=False))
    async with HttpClient() as http:
        for _ in range(2):
            assert await bounded(get(http, server.url())) == b"all of it"
    assert server.connections == 2


async def test_connection_close_is_honoured(serve: Callable[..., Awaitable[RawServer]]) -> None:
    server = await serve(answering(response(b"bye", "Connection: close"), keep=True))
    async with HttpClient() as http:
        for _ in range(2):
            assert await bounded(get(http, server.url())) == b"bye"
    assert server.connections == 2


async def test_an_answer_not_read_to_its_end_closes_its_connection(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    size = 4 << 20  # more than the socket buffers and the client's read buffer hold
    server = await serve(answering(response(b"y" * size)))
    async with HttpClient(read_buffer=65536) as http:
        async with http.get(server.url()) as answer:
            assert len(await bounded(answer.content.read(10))) == 10
        assert await bounded(get(http, server.url(), limit=size)) == b"y" * size
    assert server.connections == 2


async def test_bytes_beyond_the_announced_length_are_never_read_as_an_answer(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(response(b"abc") + b"HTTP/1.1 200 OK\r\n"))
    async with HttpClient() as http:
        assert await bounded(get(http, server.url())) == b"abc"
        assert await bounded(get(http, server.url())) == b"abc"
    assert server.connections == 2


async def test_the_body_streams_in_pieces(serve: Callable[..., Awaitable[RawServer]]) -> None:
    server = await serve(answering(response(b"z" * 300_000)))
    async with HttpClient(read_buffer=65536) as http:
        async with http.get(server.url()) as answer:
            small = await answer.content.read(1000)
            rest = [piece async for piece in answer]
        assert len(small) == 1000 and all(rest)
        assert len(small) + sum(len(piece) for piece in rest) == 300_000
        assert await bounded(get(http, server.url())) == b"z" * 300_000  # read whole: kept
    assert server.connections == 1


async def test_interim_answers_are_skipped(serve: Callable[..., Awaitable[RawServer]]) -> None:
    server = await serve(answering(b"HTTP/1.1 100 Continue\r\n\r\n" + response(b"final")))
    async with HttpClient() as http:
        assert await bounded(get(http, server.url())) == b"final"


async def test_no_content_has_no_body(serve: Callable[..., Awaitable[RawServer]]) -> None:
    server = await serve(answering(b"HTTP/1.1 204 No Content\r\n\r\n"))
    async with HttpClient() as http:
        for _ in range(2):
            async with http.get(server.url()) as answer:
                assert answer.status == 204
                assert await bounded(answer.read(10)) == b""
    assert server.connections == 1


# -- bounds -------------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(response(b"q" * 5000)))
    async with HttpClient() as http:
        async with http.get(server.url()) as answer:
            with pytest.raises(BodyTooLarge):
                await answer.read(4999)
        assert await bounded(get(http, server.url(), limit=5000)) == b"q" * 5000
    assert server.connections == 2  # the refused body's connection was not reused


async def test_a_chunked_body_over_the_limit_is_refused(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    body = chunked(*[b"w" * 1000] * 10)
    server = await serve(answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
    async with HttpClient() as http, http.get(server.url()) as answer:
        with pytest.raises(BodyTooLarge) as info:
            await bounded(answer.read(9999))
    assert isinstance(info.value, HttpClientError) and isinstance(info.value, ConnectionError)


async def test_connections_are_bounded_per_host(serve: Callable[..., Awaitable[RawServer]]) -> None:
    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(response(b"ok"))
        return True

    server = await serve(slow)
    async with HttpClient(limit_per_host=2) as http:
        bodies = await bounded(asyncio.gather(*(get(http, server.url()) for _ in range(6))))
    assert bodies == [b"ok"] * 6
    assert server.most_open <= 2 and server.connections == 2


async def test_connections_are_bounded_in_all(serve: Callable[..., Awaitable[RawServer]]) -> None:
    # Requests being answered at once, over every server: what the limit bounds (connections
    # in use; an idle one kept for later, or a second one to a server while the limit has
    # room, depends on the timing).
    answering = {"now": 0, "most": 0}

    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        answering["now"] += 1
        answering["most"] = max(answering["most"], answering["now"])
        await asyncio.sleep(0.05)
        answering["now"] -= 1
        writer.write(response(b"ok"))
        return True

    servers = [await serve(slow) for _ in range(3)]
    async with HttpClient(limit=2) as http:
        urls = [server.url() for server in servers] * 2
        assert await bounded(asyncio.gather(*(get(http, url) for url in urls))) == [b"ok"] * 6
    assert answering["most"] == 2


# -- timeouts -----------------------------------------------------------------------------------


async def test_connecting_to_a_blackhole_times_out() -> None:
    # A listening socket whose queue is full never completes another handshake.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            async with HttpClient() as http:
                with pytest.raises(HttpTimeout) as info:
                    await bounded(
                        get(http, f"http://127.0.0.1:{port}/", timeout=Timeout(connect=SHORT))
                    )
        finally:
            for filler in fillers:
                filler.close()
    assert isinstance(info.value, TimeoutError) and "connection" in str(info.value)


async def test_a_server_that_never_answers_times_out(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    async def silent(request: Request, writer: asyncio.StreamWriter) -> bool:
        await server.stop.wait()
        return False

    server = await serve(silent)
    async with HttpClient() as http:
        with pytest.raises(TimeoutError):
            await bounded(get(http, server.url(), timeout=Timeout(read=SHORT)))
        with pytest.raises(HttpTimeout):
            await bounded(get(http, server.url(), timeout=Timeout(total=SHORT)))


async def test_a_trickling_body_runs_out_of_total_time(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    async def trickle(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"t")
            await writer.drain()
            await asyncio.sleep(0.05)
        return True

    server = await serve(trickle)
    async with HttpClient() as http:
        with pytest.raises(HttpTimeout) as info:  # each wait is short, the whole is too long
            await bounded(get(http, server.url(), timeout=Timeout(total=SHORT, read=5)))
    assert "over 0.3 s" in str(info.value)


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 two hundred\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    ],
    ids=[
        "status",
        "not-http",
        "two-lengths",
        "length-and-chunked",
        "long-head",
        "chunk-size",
        "chunk-too-long",
        "switch",
    ],
)
async def test_malformed_answers_are_refused(
    serve: Callable[..., Awaitable[RawServer]], answer: bytes
) -> None:
    server = await serve(answering(answer))
    async with HttpClient() as http:
        with pytest.raises(MalformedResponse) as info:
            await bounded(get(http, server.url()))
    assert isinstance(info.value, HttpClientError) and isinstance(info.value, PPSPError)


async def test_a_server_closing_mid_body_is_an_incomplete_body(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    cut = response(b"c" * 1000)[:-900]
    server = await serve(answering(cut, keep=False))
    async with HttpClient() as http:
        with pytest.raises(IncompleteBody) as info:
            await bounded(get(http, server.url()))
    assert "100 of 1000" in str(info.value)


async def test_a_chunked_body_without_its_last_chunk_is_incomplete(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await serve(answering(head + b"5\r\nabcde\r\n", keep=False))
    async with HttpClient() as http:
        with pytest.raises(IncompleteBody):
            await bounded(get(http, server.url()))


async def test_a_server_closing_without_answering_is_disconnected(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(b"", keep=False))
    async with HttpClient() as http:
        with pytest.raises(HttpDisconnected) as info:
            await bounded(get(http, server.url()))
        assert info.value.no_answer
        with pytest.raises(HttpDisconnected) as info:  # a POST likewise
            async with http.post(server.url(), body=b"x"):
                pass
    assert len(server.requests) == 2  # a new connection is not retried


async def test_a_kept_connection_closed_meanwhile_is_replaced_once_for_a_get(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    async def first_only(request: Request, writer: asyncio.StreamWriter) -> bool:
        if len(server.requests) % 2:
            writer.write(response(b"first"))
            return True
        return False  # the second request on the connection: closed without an answer

    server = await serve(first_only)
    async with HttpClient() as http:
        assert await bounded(get(http, server.url())) == b"first"
        assert await bounded(get(http, server.url())) == b"first"  # sent again, new connection
        assert server.connections == 2 and len(server.requests) == 3
        with pytest.raises(HttpDisconnected):  # a POST is not sent twice
            async with http.post(server.url(), body=b"once"):
                pass
    assert len(server.requests) == 4


async def test_an_idle_connection_the_server_closed_is_not_used(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(response(b"ok"), keep=True))
    async with HttpClient() as http:
        assert await bounded(get(http, server.url())) == b"ok"
        for writer in list(server._writers):
            writer.close()  # the server's idle timeout
        await asyncio.sleep(0.1)
        async with http.post(server.url(), body=b"x") as answer:  # not sent on the dead one
            assert await answer.read(10) == b"ok"
    assert server.connections == 2


async def test_idle_connections_expire(serve: Callable[..., Awaitable[RawServer]]) -> None:
    server = await serve(answering(response(b"ok")))
    async with HttpClient(keepalive_timeout=0.05) as http:
        assert await bounded(get(http, server.url())) == b"ok"
        await asyncio.sleep(0.3)
        assert await bounded(get(http, server.url())) == b"ok"
    assert server.connections == 2


async def test_a_refused_connection_says_so() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        async with HttpClient() as http:
            with pytest.raises(HttpConnectError) as info:
                await bounded(get(http, f"http://127.0.0.1:{port}/"))
    assert isinstance(info.value.os_error, ConnectionRefusedError)


async def test_a_name_that_does_not_resolve_says_so() -> None:
    async def no_names(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with HttpClient(resolver=no_names) as http:
        with pytest.raises(HttpNameError) as info:
            await bounded(get(http, "http://tracker.invalid:7000/"))
    assert isinstance(info.value.os_error, socket.gaierror)
    assert isinstance(info.value, HttpConnectError)


async def test_names_are_resolved_and_each_address_tried(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(response(b"named")))
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        with socket.socket() as closed:  # a first address that refuses
            closed.bind(("127.0.0.3", port))
        return ["127.0.0.3", "127.0.0.1"]

    async with HttpClient(resolver=resolve) as http:
        assert await bounded(get(http, f"http://peer.example:{server.port}/")) == b"named"
    assert asked == [("peer.example", server.port)]
    assert f"\r\nHost: peer.example:{server.port}\r\n".encode() in server.requests[0].head


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/", "http:///x", "http://user:pw@127.0.0.1/", "http://a\x01b/", "http://h:0/"],
)
async def test_urls_it_cannot_ask_are_refused(url: str) -> None:
    async with HttpClient() as http:
        with pytest.raises(InvalidURL) as info:
            await get(http, url)
    assert isinstance(info.value, ValueError) and isinstance(info.value, HttpClientError)


async def test_an_untrusted_target_cannot_add_a_request_line(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(response(b"ok")))
    async with HttpClient() as http:
        url = server.url("/a b/\u00e9?x=y z")
        assert await bounded(get(http, url)) == b"ok"
        with pytest.raises(LocalProtocolError):
            await get(http, server.url(), headers={"X": "a\r\nInjected: 1"})
    assert server.requests[0].line == b"GET /a%20b/%C3%A9?x=y%20z HTTP/1.1"


def test_headers_are_looked_up_in_any_case() -> None:
    headers = Headers([("Set-Thing", "1"), ("set-thing", "2"), ("X", "y")])
    assert headers["SET-THING"] == "1" and headers.getall("Set-Thing") == ["1", "2"]
    assert "x" in headers and "z" not in headers and len(headers) == 2
    assert headers.get("missing") is None


# -- TLS and the local address ------------------------------------------------------------------


async def test_https_through_a_given_trust_anchor(
    serve: Callable[..., Awaitable[RawServer]], tmp_path: Path
) -> None:
    files = make_tls_files(tmp_path)
    server = await serve(answering(response(b"secret")), tls=server_context(files))
    trust = ssl.create_default_context(cafile=str(files.ca))
    async with HttpClient(ssl_context=trust) as http:
        assert server.url().startswith("https://")
        for _ in range(2):
            assert await bounded(get(http, server.url())) == b"secret"
    assert server.connections == 1


async def test_an_untrusted_certificate_is_a_certificate_error(
    serve: Callable[..., Awaitable[RawServer]], tmp_path: Path
) -> None:
    server = await serve(answering(response()), tls=server_context(make_tls_files(tmp_path)))
    async with HttpClient() as http:  # the system's trust store: no test CA in it
        with pytest.raises(HttpCertificateError) as info:
            await bounded(get(http, server.url()))
    assert isinstance(info.value.certificate_error, ssl.SSLCertVerificationError)
    assert isinstance(info.value, HttpTLSError)
    assert server.requests == []


async def test_https_to_a_plain_server_is_a_tls_error() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # a ClientHello is no request: answered as an HTTP server would
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with HttpClient() as http:
            with pytest.raises(HttpTLSError) as info:
                await bounded(get(http, f"https://127.0.0.1:{port}/"))
    finally:
        server.close()
    assert isinstance(info.value.os_error, ssl.SSLError)
    assert not isinstance(info.value, HttpCertificateError)


async def test_plain_http_makes_no_tls_context(
    serve: Callable[..., Awaitable[RawServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a TLS context was made for http://")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    monkeypatch.setattr(ssl, "SSLContext", refuse)
    server = await serve(answering(response(b"clear")))
    async with HttpClient() as http:
        assert await bounded(get(http, server.url())) == b"clear"


def _has_address(address: str) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _has_address("127.0.0.2"), reason="127.0.0.2 is not a local address")
async def test_connections_leave_from_the_local_address(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(answering(response(b"from you")))
    async with HttpClient(local_address="127.0.0.2") as http:
        assert await bounded(get(http, server.url())) == b"from you"
    assert server.requests[0].peer[0] == "127.0.0.2"


async def test_a_closed_client_refuses_requests(serve: Callable[..., Awaitable[RawServer]]) -> None:
    server = await serve(answering(response()))
    http = HttpClient()
    await http.close()
    assert http.closed
    with pytest.raises(HttpClientError):
        await get(http, server.url())
    with contextlib.suppress(Exception):
        await http.close()  # twice is fine
