"""The lean HTTP/1.1 server (:mod:`ppsp.http.server`) on real loopback sockets.

Clients here are raw sockets, so that every byte the server reads and writes is the test's:
keep-alive and HTTP/1.0, pipelined requests answered one at a time and in order, heads refused
with the status their fault carries (then the connection closed), bodies bounded and timed,
a client trickling a head (slowloris) cut, clients that go away in the middle, handler failures
answered 500 with one log line, streamed answers and ``sendfile`` (on asyncio's loop and on
uvloop), the router's 404/405/501, a graceful close, IPv6.  Timeouts are shortened per server
so that each test takes well under a second or two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from e2e.tls_helpers import make_tls_files, server_context
from ppsp.codecs.httphead import ResponseHead, head_length, parse_response_head
from ppsp.errors import (
    ContentError,
    ObjectNotFound,
    RequestBodyTooLarge,
    TemporarilyOverloaded,
)
from ppsp.http.exchange import MAX_BODY_CHUNKS
from ppsp.http.server import (
    ConnectionHooks,
    HTTPServer,
    Request,
    Response,
    Router,
    StreamResponse,
    error_response,
    serve,
)
from ppsp.wire.fields import MAX_HEAD_BYTES, MAX_HEADER_FIELDS, MAX_REQUEST_LINE_BYTES

WAIT = 10.0
"""Generous bound on any one wait of a test (none comes near it on a healthy machine)."""


# -- helpers ------------------------------------------------------------------------------------


class Answer:
    """One parsed response: its head and body."""

    def __init__(self, head: ResponseHead, body: bytes) -> None:
        self.head = head
        self.body = body

    @property
    def status(self) -> int:
        return self.head.status

    def header(self, name: str) -> str | None:
        return self.head.header(name)


def split_answers(data: bytes, *, head_only: bool = False) -> list[Answer]:
    """Every whole response in ``data`` (framed by Content-Length; HEAD answers have no body)."""
    answers = []
    while data:
        length = head_length(data)
        assert length, f"no whole head in {data!r}"
        head = parse_response_head(data[:length])
        size = 0 if head_only or head.status < 200 else (head.content_length or 0)
        answers.append(Answer(head, data[length : length + size]))
        data = data[length + size :]
    return answers


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes (the test fails if it never does)."""
    return await asyncio.wait_for(reader.read(), WAIT)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """The next response on a kept-alive connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    parsed = parse_response_head(head)
    body = await asyncio.wait_for(reader.readexactly(parsed.content_length or 0), WAIT)
    return Answer(parsed, body)


async def exchange(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``data`` on a fresh connection; every byte the server sends until it closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        return await read_all(reader)
    finally:
        writer.close()


def get(path: str = "/", *fields: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: peer", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def hello(request: Request) -> Response:
    return Response(200, b"hello " + request.path.encode(), content_type="text/plain")


@contextlib.asynccontextmanager
async def running(
    handler: Callable[[Request], Awaitable[Response | StreamResponse]] = hello,
    host: str = "127.0.0.1",
    **options: float,
) -> AsyncIterator[HTTPServer]:
    server = await serve(handler, host, 0, **options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        await server.close(0.5)


def port_of(server: HTTPServer) -> int:
    return server.addresses[0][1]


# -- keep-alive, versions, pipelining -----------------------------------------------------------


async def test_port_zero_binds_a_free_port_and_keep_alive_serves_several_requests() -> None:
    async with running() as server:
        port = port_of(server)
        assert server.addresses == [("127.0.0.1", port)]
        assert port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in ("/a", "/b", "/c"):
            writer.write(get(path))
            answer = await read_answer(reader)
            assert answer.status == 200
            assert answer.body == b"hello " + path.encode()
            assert answer.header("content-type") == "text/plain"
            assert (answer.header("date") or "").endswith(" GMT")
            assert answer.header("connection") is None
            assert answer.head.keep_alive
        writer.close()


async def test_http10_closes_unless_asked_to_keep_alive() -> None:
    async with running() as server:
        port = port_of(server)
        (answer,) = split_answers(await exchange(port, get("/x", version="1.0")))
        assert answer.status == 200
        assert answer.header("connection") == "close"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("/y", "Connection: keep-alive", version="1.0"))
        answer = await read_answer(reader)
        assert answer.header("connection") == "keep-alive"
        writer.write(get("/z", version="1.0"))  # this one closes
        assert split_answers(await read_all(reader))[0].body == b"hello /z"
        writer.close()


async def test_connection_close_is_honoured() -> None:
    async with running() as server:
        answers = split_answers(await exchange(port_of(server), get("/", "Connection: close")))
        assert [answer.header("connection") for answer in answers] == ["close"]


async def test_an_http10_request_without_host_is_served() -> None:
    async with running() as server:
        data = await exchange(port_of(server), b"GET /old HTTP/1.0\r\n\r\n")
        assert split_answers(data)[0].body == b"hello /old"


async def test_pipelined_requests_are_answered_one_at_a_time_in_order() -> None:
    active = 0
    most = 0

    async def slow(request: Request) -> Response:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.02)
        active -= 1
        return Response(body=request.path.encode())

    async with running(slow) as server:
        paths = [f"/{n}" for n in range(5)]
        data = b"".join(get(path) for path in paths[:-1]) + get(paths[-1], "Connection: close")
        answers = split_answers(await exchange(port_of(server), data))
    assert [answer.body for answer in answers] == [path.encode() for path in paths]
    assert most == 1


async def test_a_long_pipeline_lets_other_connections_in_between_its_requests() -> None:
    # Requests pipelined on one connection are answered one per turn of the event loop: a
    # client on another connection is not kept waiting for the whole pipeline.
    served: list[str] = []

    async def record(request: Request) -> Response:
        served.append(request.path)
        return Response(body=b"")

    async with running(record) as server:
        port = port_of(server)
        first_reader, first = await asyncio.open_connection("127.0.0.1", port)
        other_reader, other = await asyncio.open_connection("127.0.0.1", port)
        first.write(get("/a") * 500)
        for _ in range(1000):
            if served:
                break
            await asyncio.sleep(0)
        other.write(get("/b"))
        assert (await read_answer(other_reader)).status == 200
        for _ in range(500):
            await read_answer(first_reader)
        first.close()
        other.close()
    assert len(served) == 501 and served.index("/b") < 100, served.index("/b")


async def test_empty_lines_before_a_request_line_are_ignored() -> None:
    async with running() as server:
        data = await exchange(port_of(server), b"\r\n\r\n" + get("/after", "Connection: close"))
        assert split_answers(data)[0].body == b"hello /after"


# -- heads refused ------------------------------------------------------------------------------

LONG_TARGET = b"/" + b"a" * MAX_REQUEST_LINE_BYTES
REFUSED = {
    "garbage": (b"hello\r\n\r\n", 400),
    "lower-case version": (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    "two spaces": (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "absolute path missing": (b"GET a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "space in target": (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "no host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "conflicting lengths": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
    "length and coding": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "coding not chunked": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    "chunked body": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    "length out of bounds": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999\r\n\r\n",
        413,
    ),
    "request line too long": (b"GET " + LONG_TARGET + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "request line too long, unended": (b"GET " + LONG_TARGET, 414),
    "too many fields": (
        get("/", *(f"X-{n}: v" for n in range(MAX_HEADER_FIELDS))),
        431,
    ),
    "head too large": (get("/", "X: " + "v" * MAX_HEAD_BYTES), 431),
    "head too large, unended": (get("/")[:-2] + b"X: " + b"v" * MAX_HEAD_BYTES, 431),
    "http/2": (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    "http/0.9": (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
}


@pytest.mark.parametrize(("data", "status"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_bad_head_is_answered_with_its_status_and_the_connection_closed(
    data: bytes, status: int
) -> None:
    called = False

    async def handler(request: Request) -> Response:
        nonlocal called
        called = True
        return Response()

    async with running(handler) as server:
        port = port_of(server)
        # A good request first: the refusal comes after its answer, on the same connection.
        answers = split_answers(await exchange(port, get("/first") + data))
        assert [answer.status for answer in answers] == [200, status]
        assert answers[1].header("connection") == "close"
        assert answers[1].body == f"{status}: ".encode() + answers[1].head.reason.encode()
        # The server goes on serving other connections.
        assert split_answers(await exchange(port, get("/", "Connection: close")))[0].status == 200
    assert called


async def test_a_refusal_reaches_a_client_still_sending() -> None:
    # The server answers 431 after 16 KiB while the client sends 1 MiB more: the answer is
    # not lost to a reset of the connection (the rest is read and dropped for a moment).
    async with running() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(b"GET / HTTP/1.1\r\nX: " + b"v" * (1 << 20))
        data = await read_all(reader)
        writer.close()
    assert split_answers(data)[0].status == 431


# -- timeouts -----------------------------------------------------------------------------------


async def test_a_client_trickling_its_head_is_cut() -> None:
    # Slowloris: one byte of a head every 0.1 s; the head may take 0.5 s from its first byte.
    async with running(head_timeout=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        started = time.monotonic()
        reading = asyncio.ensure_future(read_all(reader))
        with contextlib.suppress(ConnectionError):
            for byte in get("/" + "a" * 100):
                if reading.done():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
        received = await reading
        elapsed = time.monotonic() - started
        writer.close()
    assert elapsed < 5.0  # the whole head would take 12 s
    assert split_answers(received)[0].status == 408


async def test_a_kept_alive_connection_left_idle_is_closed() -> None:
    async with running(idle_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/"))
        assert (await read_answer(reader)).status == 200
        started = time.monotonic()
        assert await read_all(reader) == b""  # closed without an answer to nothing
        assert time.monotonic() - started < 5.0
        writer.close()


async def test_a_connection_that_never_sends_is_closed() -> None:
    async with running(head_timeout=0.3, idle_timeout=60) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        assert await read_all(reader) == b""
        writer.close()


async def test_a_kept_alive_connection_may_idle_then_trickle_within_the_head_timeout() -> None:
    # The idle wait and the head's own time are separate: idle 0.3 s, then a head in 0.2 s.
    async with running(head_timeout=0.5, idle_timeout=5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/one"))
        await read_answer(reader)
        await asyncio.sleep(0.3)
        data = get("/two")
        writer.write(data[:5])
        await asyncio.sleep(0.2)
        writer.write(data[5:])
        assert (await read_answer(reader)).body == b"hello /two"
        writer.close()


# -- bodies -------------------------------------------------------------------------------------


async def echo(request: Request) -> Response:
    limit = int(request.query.get("limit", "100"))
    return Response(body=await request.read_body(limit))


def post(body: bytes, path: str = "/", *fields: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: peer", f"Content-Length: {len(body)}", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_bodies_are_read_within_their_bound() -> None:
    async with running(echo) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        for body in (b"", b"x", b"y" * 100):
            writer.write(post(body))
            assert (await read_answer(reader)).body == body
        writer.write(post(b"z" * 101))
        answer = split_answers(await read_all(reader))[0]
        assert answer.status == 413
        assert answer.header("connection") == "close"
        writer.close()


async def test_the_server_bounds_a_body_its_handler_does_not() -> None:
    async def unbounded(request: Request) -> Response:
        return Response(body=await request.read_body())

    async with running(unbounded, body_limit=10) as server:
        port = port_of(server)
        assert split_answers(await exchange(port, post(b"a" * 10, "/", "Connection: close")))[
            0
        ].body == (b"a" * 10)
        assert split_answers(await exchange(port, post(b"a" * 11)))[0].status == 413


async def test_a_handler_may_catch_a_body_too_large() -> None:
    async def lenient(request: Request) -> Response:
        try:
            await request.read_body(4)
        except RequestBodyTooLarge:
            return Response(400, b"too big")
        return Response()

    async with running(lenient) as server:
        answers = split_answers(await exchange(port_of(server), post(b"x" * 1000)))
        assert [(a.status, a.body, a.header("connection")) for a in answers] == [
            (400, b"too big", "close")
        ]


async def test_a_body_left_unread_is_skipped_to_keep_the_connection() -> None:
    async with running() as server:
        data = post(b"ignored", "/a") + get("/b", "Connection: close")
        answers = split_answers(await exchange(port_of(server), data))
        assert [answer.body for answer in answers] == [b"hello /a", b"hello /b"]


async def test_a_body_that_does_not_arrive_in_time_is_answered_408() -> None:
    async with running(echo, body_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(post(b"0123456789")[:-5])
        answer = split_answers(await read_all(reader))[0]
        writer.close()
    assert answer.status == 408


async def test_expect_100_continue_is_answered_before_the_body_is_read() -> None:
    async with running(echo) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(post(b"body", "/", "Expect: 100-continue")[: -len(b"body")])
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        assert (await read_answer(reader)).body == b"body"
        writer.close()


async def test_a_client_gone_mid_body_ends_its_request_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[BaseException] = []
    done = asyncio.Event()

    async def reading(request: Request) -> Response:
        try:
            return Response(body=await request.read_body())
        except BaseException as exc:
            seen.append(exc)
            raise
        finally:
            done.set()

    caplog.set_level(logging.DEBUG, logger="ppsp.http")
    async with running(reading) as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(post(b"x" * 1000)[:-500])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await asyncio.wait_for(done.wait(), WAIT)
        # Still serving.
        answers = split_answers(await exchange(port_of(server), get("/", "Connection: close")))
        assert answers[0].status == 200
    assert len(seen) == 1 and isinstance(seen[0], ConnectionError)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


# -- handlers' answers and failures -------------------------------------------------------------


async def test_a_failing_handler_is_answered_500_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(request: Request) -> Response:
        raise KeyError("boom")

    caplog.set_level(logging.INFO, logger="ppsp.http")
    async with running(failing) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/fail"))
        answer = await read_answer(reader)
        assert answer.status == 500
        assert answer.head.keep_alive  # the connection is still good
        writer.close()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1
    assert errors[0].exc_info is None
    assert "GET /fail" in errors[0].getMessage() and "KeyError" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()


@pytest.mark.parametrize(
    ("error", "status", "logged"),
    [
        (ObjectNotFound(), 404, False),
        (TemporarilyOverloaded(), 503, False),
        (ContentError("no status of its own"), 500, True),
        (ConnectionRefusedError("the handler's own connection"), 500, True),
    ],
)
async def test_a_handler_error_is_answered_with_its_status(
    error: Exception, status: int, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def raising(request: Request) -> Response:
        raise error

    caplog.set_level(logging.INFO, logger="ppsp.http")
    async with running(raising) as server:
        answer = split_answers(await exchange(port_of(server), get("/", "Connection: close")))[0]
    assert answer.status == status
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == int(logged)


async def test_headers_are_read_in_any_case_and_set_as_given() -> None:
    async def headers(request: Request) -> Response:
        assert request.headers["x-peer"] == request.headers["X-PEER"] == "one"
        assert request.headers.getall("X-Peer") == ["one", "two"]
        assert "x-PEER" in request.headers and "missing" not in request.headers
        assert request.remote[0] == "127.0.0.1" and request.remote[1] > 0
        assert request.remote_ip == "127.0.0.1"
        assert dict(request.query) == {"a": "1", "b": ""}
        return Response(503, headers={"Retry-After": "3"})

    async with running(headers) as server:
        data = get("/?a=1&b=&a=2", "X-Peer: one", "x-peer: two", "Connection: close")
        answer = split_answers(await exchange(port_of(server), data))[0]
    assert answer.status == 503
    assert answer.header("retry-after") == "3"


async def test_a_header_that_would_split_the_response_is_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def splitting(request: Request) -> Response:
        return Response(headers={"X": "a\r\nSet-Cookie: evil"})

    async with running(splitting) as server:
        data = await exchange(port_of(server), get("/", "Connection: close"))
    assert [answer.status for answer in split_answers(data)] == [500]
    assert b"evil" not in data


# -- the router ---------------------------------------------------------------------------------


async def test_the_router_dispatches_and_answers_404_405_501() -> None:
    async def item(request: Request) -> Response:
        return Response(body=repr(sorted(request.match_info.items())).encode())

    router = Router()
    router.add("GET", "/swarm/{swarm}/chunk/{index}", item)
    router.add("POST", "/", hello)
    async with running(router) as server:
        port = port_of(server)

        async def ask(data: bytes) -> Answer:
            return split_answers(await exchange(port, data), head_only=data.startswith(b"HEAD"))[0]

        answer = await ask(get("/swarm/a%2Fb/chunk/7", "Connection: close"))
        assert answer.body == repr([("index", "7"), ("swarm", "a/b")]).encode()
        assert (await ask(get("/swarm//chunk/7", "Connection: close"))).status == 404
        assert (await ask(get("/nothing", "Connection: close"))).status == 404
        answer = await ask(get("/", "Connection: close"))
        assert (answer.status, answer.header("allow")) == (405, "POST")
        brew = b"BREW / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        assert (await ask(brew)).status == 501
        # A method RFC 9110 defines is never 501: 405 where the path exists, else 404.
        put = b"PUT / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        assert (await ask(put)).status == 405
        delete = b"DELETE /nothing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        assert (await ask(delete)).status == 404
        # HEAD on a GET route: the head of the answer, without its body.
        data = await exchange(
            port, b"HEAD /swarm/s/chunk/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        head = parse_response_head(data[: head_length(data)])
        assert head.status == 200
        assert head.content_length == len(repr([("index", "1"), ("swarm", "s")]))
        assert data == data[: head_length(data)]


# -- streamed answers, sendfile -----------------------------------------------------------------


async def test_a_streamed_answer_goes_in_pieces_with_flow_control() -> None:
    piece = os.urandom(256 * 1024)
    count = 32  # 8 MiB: more than the socket buffers, so writes wait for the reader

    async def streaming(request: Request) -> StreamResponse:
        response = StreamResponse(content_length=len(piece) * count)
        await response.prepare(request)
        for _ in range(count):
            await response.write(piece)
        await response.write_eof()
        return response

    async with running(streaming) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/") + get("/", "Connection: close"))
        await asyncio.sleep(0.2)  # let the server fill the buffers
        answers = split_answers(await read_all(reader))
        writer.close()
    assert [len(answer.body) for answer in answers] == [len(piece) * count] * 2
    assert answers[0].body == piece * count
    assert answers[0].header("content-type") == "application/octet-stream"


async def test_a_streamed_answer_without_length_ends_with_the_connection() -> None:
    async def unsized(request: Request) -> StreamResponse:
        response = StreamResponse(content_type="text/plain")
        await response.prepare(request)
        await response.write(b"abc")
        await response.write(b"def")
        return response  # write_eof left to the server

    async with running(unsized) as server:
        data = await exchange(port_of(server), get("/"))
    length = head_length(data)
    head = parse_response_head(data[:length])
    assert head.header("connection") == "close" and head.content_length is None
    assert data[length:] == b"abcdef"


async def test_a_short_streamed_answer_closes_the_connection() -> None:
    async def short(request: Request) -> StreamResponse:
        response = StreamResponse(content_length=10)
        await response.prepare(request)
        await response.write(b"12345")
        await response.write_eof()
        return response

    async with running(short) as server:
        data = await exchange(port_of(server), get("/") + get("/"))
    assert data.endswith(b"\r\n\r\n12345")  # cut, and the second request not answered


async def test_a_client_gone_mid_stream_raises_connection_error_in_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome: list[BaseException | None] = []
    done = asyncio.Event()

    async def endless(request: Request) -> StreamResponse:
        response = StreamResponse(content_length=1 << 40)
        await response.prepare(request)
        try:
            while True:
                await response.write(b"x" * 65536)
        except ConnectionError as exc:
            outcome.append(exc)
            raise
        finally:
            done.set()

    caplog.set_level(logging.DEBUG, logger="ppsp.http")
    async with running(endless) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/"))
        await reader.readexactly(100_000)
        writer.transport.abort()  # a reset, as a client that died
        await asyncio.wait_for(done.wait(), WAIT)
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionError)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_a_client_that_asks_and_never_reads_is_cut(tmp_path: Path) -> None:
    # It would otherwise hold the answer (and an upload slot) for as long as it likes.
    outcomes: list[BaseException] = []
    done = asyncio.Event()
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(8 << 20))

    async def big(request: Request) -> StreamResponse:
        response = StreamResponse(content_length=2 * (8 << 20))
        await response.prepare(request)
        try:
            if request.path == "/file":
                with path.open("rb") as file:
                    await response.sendfile(file, 0, 8 << 20)
            await response.write(b"x" * (8 << 20))
        except ConnectionError as exc:
            outcomes.append(exc)
            raise
        finally:
            done.set()
        return response

    for target in ("/stream", "/file"):
        done.clear()
        async with running(big, send_timeout=0.3, min_send_rate=1e9) as server:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(get(target))  # and never read a byte
            await asyncio.wait_for(done.wait(), WAIT)
            writer.close()
    assert len(outcomes) == 2
    assert all(isinstance(exc, ConnectionError) for exc in outcomes)


async def test_connected_tells_a_waiting_handler_that_its_client_left() -> None:
    waiting = asyncio.Event()
    observed: list[bool] = []

    async def patient(request: Request) -> Response:
        observed.append(request.connected)
        waiting.set()
        for _ in range(200):
            if not request.connected:
                break
            await asyncio.sleep(0.01)
        observed.append(request.connected)
        return Response()

    async with running(patient) as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/"))
        await asyncio.wait_for(waiting.wait(), WAIT)
        writer.close()
        for _ in range(500):
            if len(observed) == 2:
                break
            await asyncio.sleep(0.01)
    assert observed == [True, False]


async def _serve_file_region(tmp_path: Path) -> tuple[bytes, bytes]:
    data = os.urandom(3 << 20)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    offset, count = 12345, (2 << 20) + 17

    with path.open("rb") as file:

        async def region(request: Request) -> StreamResponse:
            response = StreamResponse(content_length=count)
            await response.prepare(request)
            await response.sendfile(file, offset, count)
            await response.write_eof()
            return response

        async with running(region) as server:
            received = await exchange(port_of(server), get("/") + get("/", "Connection: close"))
    return data[offset : offset + count], received


async def test_a_file_region_is_sent_with_sendfile_on_asyncio(tmp_path: Path) -> None:
    expected, received = await _serve_file_region(tmp_path)
    assert [answer.body for answer in split_answers(received)] == [expected, expected]


def test_a_file_region_is_read_and_written_on_uvloop(tmp_path: Path) -> None:
    expected, received = uvloop.run(_serve_file_region(tmp_path))
    assert [answer.body for answer in split_answers(received)] == [expected, expected]


# -- closing, bounds, addresses -----------------------------------------------------------------


async def test_close_lets_running_requests_finish_within_the_grace_and_cuts_the_rest() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        if request.path == "/quick":
            await asyncio.sleep(0.1)
        else:
            await release.wait()  # never set: cut at the end of the grace
        return Response(body=b"done")

    server = await serve(slow, "127.0.0.1", 0)
    port = port_of(server)
    quick_reader, quick_writer = await asyncio.open_connection("127.0.0.1", port)
    quick_writer.write(get("/quick"))
    await asyncio.wait_for(started.wait(), WAIT)
    started.clear()
    stuck_reader, stuck_writer = await asyncio.open_connection("127.0.0.1", port)
    stuck_writer.write(get("/stuck"))
    await asyncio.wait_for(started.wait(), WAIT)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    begun = time.monotonic()
    await server.close(0.5)
    assert time.monotonic() - begun < 5.0
    quick = split_answers(await read_all(quick_reader))
    assert [(a.body, a.header("connection")) for a in quick] == [(b"done", "close")]
    assert await read_all(stuck_reader) == b""
    assert await read_all(idle_reader) == b""
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    for writer in (quick_writer, stuck_writer, idle_writer):
        writer.close()


async def test_connections_over_the_bound_are_answered_503() -> None:
    async with running(max_connections=1) as server:
        port = port_of(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("/"))
        await read_answer(reader)
        answer = split_answers(await exchange(port, get("/")))[0]
        assert (answer.status, answer.header("retry-after")) == (503, "1")
        writer.close()
        await asyncio.sleep(0.05)
        assert split_answers(await exchange(port, get("/", "Connection: close")))[0].status == 200


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback() -> None:
    async def where(request: Request) -> Response:
        return Response(body=request.remote_ip.encode())

    async with running(where, host="::1") as server:
        host, port = server.addresses[0]
        assert host == "::1"
        data = await exchange(port, get("/", "Connection: close"), host="::1")
    assert split_answers(data)[0].body == b"::1"


async def test_error_response_says_its_status() -> None:
    response = error_response(404)
    assert (response.status, response.body) == (404, b"404: Not Found")
    assert response.content_type == "text/plain; charset=utf-8"


# -- what the tracker's server uses: hooks, a given socket, chunked bodies, reasons ------------


class Hooks(ConnectionHooks):
    """Hooks that record what they are told and refuse the connections of one port."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.refuse = False

    def opened(self, remote: tuple[str, int]) -> object | None:
        if self.refuse:
            self.events.append(("refused", remote[0]))
            return None
        token = ("conn", remote[1])
        self.events.append(("opened", token))
        return token

    def closed(self, token: object) -> None:
        self.events.append(("closed", token))

    def timed_out(self, token: object, what: str) -> None:
        self.events.append((what, token))


async def _until(check: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never")


async def test_hooks_are_told_of_each_connection_and_may_refuse_it() -> None:
    hooks = Hooks()
    server = await serve(hello, "127.0.0.1", 0, hooks=hooks, head_timeout=0.2, idle_timeout=0.2)
    try:
        port = port_of(server)
        # Served, then idle past the idle timeout: opened, idle, closed (the same token).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        local_port = writer.get_extra_info("sockname")[1]
        writer.write(get("/a"))
        assert (await read_answer(reader)).status == 200
        assert await read_all(reader) == b""
        writer.close()
        token = ("conn", local_port)
        await _until(lambda: ("closed", token) in hooks.events)
        assert hooks.events == [("opened", token), ("idle", token), ("closed", token)]
        # A connection that sends nothing: its head is late.
        hooks.events.clear()
        assert await exchange(port, b"") == b""
        await _until(lambda: len(hooks.events) == 3)
        assert [event for event, _ in hooks.events] == ["opened", "head", "closed"]
        # Refused: cut before anything is read or answered.
        hooks.events.clear()
        hooks.refuse = True
        with contextlib.suppress(ConnectionError):
            assert await exchange(port, get("/b")) == b""
        assert hooks.events == [("refused", "127.0.0.1")]
    finally:
        await server.close(0.5)


async def _tls_counted_before_handshake(directory: Path) -> None:
    # The hooks (a per-host guard) and the server's bound see a TLS connection when it is
    # accepted, not once its handshake is done: connections that stall in their handshake
    # count, and one over the bound is cut before any TLS work.
    files = make_tls_files(directory)
    hooks = Hooks()
    server = await serve(
        hello, "127.0.0.1", 0, hooks=hooks, ssl=server_context(files), max_connections=3,
        head_timeout=5.0,
    )  # fmt: skip
    stalled: list[asyncio.StreamWriter] = []
    try:
        port = port_of(server)
        for _ in range(3):  # plain TCP: no hello is ever sent
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            stalled.append(writer)
        await _until(lambda: server.handshaking == 3)
        assert [event for event, _ in hooks.events] == ["opened"] * 3
        # A fourth is over the bound: closed at once, no handshake begun.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(read_all(reader), WAIT) == b""
        writer.close()
        for writer in stalled:
            writer.close()
        await _until(lambda: server.handshaking == 0)
        await _until(lambda: [event for event, _ in hooks.events].count("closed") == 4)
        # A real client's handshake and request go through once there is room.
        trust = ssl.create_default_context(cafile=str(files.ca))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust)
        writer.write(get("/tls"))
        answer = await read_answer(reader)
        assert (answer.status, answer.body) == (200, b"hello /tls")
        assert len(server.connections) == 1
        writer.close()
    finally:
        for writer in stalled:
            writer.close()
        await server.close(0.5)


async def test_tls_connections_are_counted_before_their_handshake(tmp_path: Path) -> None:
    await _tls_counted_before_handshake(tmp_path)


def test_tls_connections_are_counted_before_their_handshake_on_uvloop(tmp_path: Path) -> None:
    # The tracker runs on uvloop, whose server side takes TLS differently.
    uvloop.run(_tls_counted_before_handshake(tmp_path))


async def test_a_server_accepts_on_a_socket_it_is_given() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = await serve(hello, None, 0, sock=sock)
    try:
        assert server.addresses == [("127.0.0.1", port)]
        (answer,) = split_answers(await exchange(port, get("/x", "Connection: close")))
        assert answer.body == b"hello /x"
    finally:
        await server.close(0.5)


def _chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    head = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return head + body + b"0\r\n" + trailer + b"\r\n"


async def echo_body(request: Request) -> Response:
    try:
        body = await request.read_body(16)
    except RequestBodyTooLarge:
        return Response(413, b"too large")
    return Response(200, body)


async def test_chunked_bodies_are_read_when_the_server_is_made_to() -> None:
    server = await serve(echo_body, "127.0.0.1", 0, chunked_requests=True)
    try:
        port = port_of(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_chunked(b"hello", b" ", b"world", trailer=b"X-Sum: 1\r\n") + get("/next"))
        first = await read_answer(reader)
        assert (first.status, first.body) == (200, b"hello world")
        assert (await read_answer(reader)).status == 200  # the connection went on
        writer.close()
        # Over the handler's bound: refused, and the connection closes after the answer.
        (answer,) = split_answers(await exchange(port, _chunked(b"x" * 10, b"y" * 10)))
        assert answer.status == 413 and answer.header("Connection") == "close"
        # Bad framing: 400.
        bad = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        (answer,) = split_answers(await exchange(port, bad))
        assert answer.status == 400
        # Another coding before chunked is still not read.
        gzip = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        (answer,) = split_answers(await exchange(port, gzip))
        assert answer.status == 501
    finally:
        await server.close(0.5)


async def test_a_chunked_body_in_too_many_chunks_is_refused() -> None:
    # Each chunk costs the server a wait: a body sent a byte a chunk is refused past
    # MAX_BODY_CHUNKS, and its connection closed.
    async def handler(request: Request) -> Response:
        return Response(200, await request.read_body(4096))

    server = await serve(handler, "127.0.0.1", 0, chunked_requests=True)
    try:
        port = port_of(server)
        pieces = [b"a"] * MAX_BODY_CHUNKS
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_chunked(*pieces))
        answer = await read_answer(reader)
        assert (answer.status, answer.body) == (200, b"a" * MAX_BODY_CHUNKS)
        writer.close()
        (answer,) = split_answers(await exchange(port, _chunked(*pieces, b"a")))
        assert answer.status == 400 and answer.header("Connection") == "close"
    finally:
        await server.close(0.5)


async def test_a_response_may_carry_its_own_reason_phrase() -> None:
    async def handler(request: Request) -> Response:
        return Response(404, b"", reason="Swarm\r\nNot Found")

    async with running(handler) as server:
        data = await exchange(port_of(server), get("/", "Connection: close"))
    assert data.startswith(b"HTTP/1.1 404 Swarm  Not Found\r\n")


async def test_a_repeated_head_is_parsed_once_and_answered_the_same() -> None:
    seen: list[tuple[str, str | None, bytes]] = []

    async def handler(request: Request) -> Response:
        seen.append((request.path, request.headers.get("X-Seq"), await request.read_body()))
        request.match_info["changed"] = "by a handler"  # a request's own, never the next one's
        return Response(200, b"ok")

    async with running(handler) as server:
        post = b"POST /p HTTP/1.1\r\nHost: a\r\nX-Seq: 1\r\nContent-Length: 2\r\n\r\n"
        port = port_of(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post + b"ab" + post + b"cd" + post.replace(b"2", b"3") + b"efg")
        for _ in range(3):
            assert (await read_answer(reader)).status == 200
        writer.close()
        assert len(server._heads) == 2
    assert seen == [("/p", "1", b"ab"), ("/p", "1", b"cd"), ("/p", "1", b"efg")]


async def test_a_body_that_came_with_its_head_is_taken_without_waiting() -> None:
    taken: list[bytes | None] = []

    async def handler(request: Request) -> Response:
        taken.append(request.body_if_arrived(4))
        return Response(200, await request.read_body(4))  # the same body, read once

    async with running(handler) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
        writer.write(post % 3 + b"abc")
        assert (await read_answer(reader)).body == b"abc"
        writer.write(post % 3)  # the body comes later: not taken, read_body waits for it
        await asyncio.sleep(0.05)
        writer.write(b"def")
        assert (await read_answer(reader)).body == b"def"
        writer.write(post % 5 + b"ghijk")  # over the bound: left to read_body, which refuses
        assert (await read_answer(reader)).status == 413
        writer.close()
    assert taken == [b"abc", None, None]


# -- one timer per connection -------------------------------------------------------------------


def _count_server_timers(loop: asyncio.AbstractEventLoop, counted: list[object]) -> None:
    """Make ``loop`` record every timer the server's own code arms (the tests' are left out)."""
    call_at = loop.call_at

    def counting(
        when: float, callback: Callable[..., object], *args: Any, **kw: Any
    ) -> asyncio.TimerHandle:
        if getattr(callback, "__module__", None) == "ppsp.http.server":
            counted.append(callback)
        return call_at(when, callback, *args, **kw)

    loop.call_at = counting  # type: ignore[method-assign]


async def test_a_kept_alive_connection_arms_no_timer_per_request() -> None:
    # The idle deadline moves with every request; the connection's one timer is left armed and
    # checked against it when it fires, not cancelled and made again for each request.
    timers: list[object] = []
    _count_server_timers(asyncio.get_running_loop(), timers)
    async with running() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        for n in range(20):
            writer.write(get(f"/{n}"))
            assert (await read_answer(reader)).body == f"hello /{n}".encode()
        writer.close()
    assert 1 <= len(timers) <= 2


async def test_a_connection_kept_busy_past_its_idle_timeout_stays_open_then_idles_out() -> None:
    # Each wait is shorter than the idle timeout, all of them together longer: the timer armed
    # for the first deadline fires while a later one is current, and moves to it.
    async with running(idle_timeout=0.4, head_timeout=5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        for n in range(6):
            writer.write(get(f"/{n}"))
            assert (await read_answer(reader)).status == 200
            await asyncio.sleep(0.15)
        started = time.monotonic()
        assert await read_all(reader) == b""  # then left idle: closed
        assert 0.2 <= time.monotonic() - started < 5.0
        writer.close()


async def test_a_head_begun_on_a_kept_alive_connection_gets_its_own_earlier_deadline() -> None:
    # The armed timer is the idle one (long); a head begun must still be cut at its own
    # (shorter) deadline: an earlier deadline re-arms the timer.
    async with running(idle_timeout=30, head_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(get("/one"))
        assert (await read_answer(reader)).status == 200
        started = time.monotonic()
        writer.write(b"GET /two HTTP/1.1\r\n")
        received = await read_all(reader)
        assert time.monotonic() - started < 5.0
        assert split_answers(received)[0].status == 408
        writer.close()


def test_the_timers_work_the_same_on_uvloop() -> None:
    async def scenario() -> tuple[int, bytes]:
        timers: list[object] = []
        _count_server_timers(asyncio.get_running_loop(), timers)
        async with running() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            for n in range(20):
                writer.write(get(f"/{n}"))
                assert (await read_answer(reader)).status == 200
            writer.close()
        async with running(idle_timeout=0.3, head_timeout=5) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            for n in range(5):
                writer.write(get(f"/{n}"))
                assert (await read_answer(reader)).status == 200
                await asyncio.sleep(0.1)
            closed = await read_all(reader)
            writer.close()
        return len(timers), closed

    armed, closed = uvloop.run(scenario())
    assert closed == b""
    # The first server's connection: at most 2; the second's: a few, as its deadlines pass.
    assert 2 <= armed <= 2 + 5
