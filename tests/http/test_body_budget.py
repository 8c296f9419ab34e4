"""The HTTP server's byte budget for request bodies being read (:mod:`ppsp.http.budget`).

A body the server must wait for is charged its ``Content-Length`` per host and in all before
any of it is waited for, and given back once its handler returned.  On real loopback sockets,
clients on distinct 127.x addresses: a host sending bodies slowly is refused 503 with
``Retry-After`` past its share while another host's bodies are still read; once all hosts
together spend the total, a body to be waited for is refused whoever sends it, but a small one
that came with its head is still served; chunked bodies pay chunk by chunk; bodies lagging
their pace are evicted (answered 503) for bodies that arrive at theirs; and the budget comes
back to zero after bodies answered, cut by their client, timed out, evicted, or cut by the
server's close.  Bounds are shrunk per server so that each test takes well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from ppsp.codecs.httphead import ResponseHead, head_length, parse_response_head
from ppsp.http.bounds import BODY_BUDGET, BODY_BUDGET_PER_HOST
from ppsp.http.budget import BodyBudget, RequestBodyBusy, body_host
from ppsp.http.server import HTTPServer, Request, Response, serve
from waits import still_waiting, until

WAIT = 10.0
"""Generous bound on any one wait of a test."""

SLOW_A, SLOW_B, SLOW_C = "127.0.9.9", "127.0.9.10", "127.0.9.11"
HONEST = "127.0.4.4"
BODY = 100_000
"""The declared length of the slow bodies (each sends only its first bytes)."""


@contextlib.asynccontextmanager
async def running(
    per_host: int = 2 * BODY, total: int = 5 * BODY, grace: float = 3600.0, **options: object
) -> AsyncIterator[HTTPServer]:
    """A server echoing the length of each body, its budget of these bounds (no body lags its
    pace by more than ``grace``: by default none is ever evicted)."""

    async def echo(request: Request) -> Response:
        body = await request.read_body(4 * BODY)
        return Response(200, b"%d" % len(body))

    server = await serve(
        echo,
        "127.0.0.1",
        0,
        body_budget=BodyBudget(per_host=per_host, total=total, grace=grace),
        **options,  # type: ignore[arg-type]
    )
    try:
        yield server
    finally:
        await server.close(0.5)


def head(length: int, *fields: str) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: peer", f"Content-Length: {length}", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def start_slow(
    server: HTTPServer, source: str, length: int = BODY
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client from ``source`` that sends a head and the first bytes of its body, then stalls."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.addresses[0][1], local_addr=(source, 0)
    )
    writer.write(head(length) + b"x" * 1000)
    await writer.drain()
    return reader, writer


async def answer_of(reader: asyncio.StreamReader) -> ResponseHead:
    data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    return parse_response_head(data[: head_length(data)])


def budget_of(server: HTTPServer) -> BodyBudget:
    assert server.body_budget is not None
    return server.body_budget


# -- the accounting -----------------------------------------------------------------------------


def test_a_budget_takes_per_host_and_in_all_and_gives_back() -> None:
    budget = BodyBudget(per_host=10, total=25)
    a6, a4 = budget.take("a", 6), budget.take("a", 4)
    assert a6 is not None and a4 is not None
    assert budget.take("a", 1) is None  # its share is spent
    b10, c5 = budget.take("b", 10), budget.take("c", 5)
    assert b10 is not None and c5 is not None
    assert budget.take("d", 1) is None  # the total is spent, whoever asks (none of it slow)
    budget.give(a6)
    d6 = budget.take("d", 6)
    assert d6 is not None
    for body in (a4, b10, c5, d6, d6):  # given back twice: counted once
        budget.give(body)
    assert (budget.in_use, budget.hosts, budget.bodies, budget.refused) == (0, 0, 0, 2)
    # A body larger than a share is its handler's to refuse: alone, it is read.
    assert budget.take("e", 40) is not None
    assert budget.take("f", 1) is None
    with pytest.raises(ValueError):
        BodyBudget(per_host=10, total=5)


def test_a_host_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert body_host("::ffff:127.0.9.9") == body_host("127.0.9.9") == "127.0.9.9"
    assert body_host("2001:db8::1") == body_host("2001:db8::2") == "2001:db8::/64"
    assert body_host("not an address") == "not an address"


async def test_the_server_has_the_default_budget_unless_given_one() -> None:
    async def nothing(request: Request) -> Response:
        return Response()

    server = await serve(nothing, "127.0.0.1", 0)
    try:
        budget = budget_of(server)
        assert (budget.per_host, budget.total) == (BODY_BUDGET_PER_HOST, BODY_BUDGET)
    finally:
        await server.close(0.5)


# -- on real sockets ----------------------------------------------------------------------------


async def test_a_host_past_its_share_is_refused_503_and_another_host_is_still_read() -> None:
    async with running() as server:
        budget = budget_of(server)
        held = [await start_slow(server, SLOW_A) for _ in range(2)]
        await until(lambda: budget.held(SLOW_A) == 2 * BODY)
        reader, writer = await start_slow(server, SLOW_A)
        refused = await answer_of(reader)
        assert refused.status == 503
        assert refused.header("Retry-After") == "1"
        assert refused.header("Connection") == "close"
        await asyncio.wait_for(reader.read(), WAIT)  # the server closes after it (EOF)
        writer.close()
        # Another host's body is still read, slow or not.
        other = await start_slow(server, HONEST)
        await until(lambda: budget.held(HONEST) == BODY)
        assert await still_waiting(other[0])
        other[1].write(b"x" * (BODY - 1000))
        answer = await answer_of(other[0])
        assert answer.status == 200
        await until(lambda: budget.held(HONEST) == 0)
        assert all([await still_waiting(r) for r, _ in held])  # the first two still wait
        for _, w in [*held, other]:
            w.close()
        await until(lambda: budget.in_use == 0)


async def test_past_the_total_only_bodies_that_came_with_their_head_are_read() -> None:
    async with running() as server:
        budget = budget_of(server)
        held = [await start_slow(server, host) for host in (SLOW_A, SLOW_A, SLOW_B, SLOW_B)]
        held.append(await start_slow(server, SLOW_C))
        await until(lambda: budget.in_use == 5 * BODY)
        # The honest host's body to be waited for: refused, the total being spent.
        reader, writer = await start_slow(server, HONEST)
        assert (await answer_of(reader)).status == 503
        writer.close()
        # Its small request sent whole is served: it costs nothing more than its head.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.addresses[0][1], local_addr=(HONEST, 0)
        )
        writer.write(head(5) + b"small")
        answer = await answer_of(reader)
        assert answer.status == 200
        assert await reader.readexactly(1) == b"5"
        writer.close()
        for _, w in held:
            w.close()
        await until(lambda: budget.in_use == 0 and budget.hosts == 0)


async def test_chunked_bodies_pay_chunk_by_chunk() -> None:
    async with running(chunked_requests=True) as server:
        budget = budget_of(server)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.addresses[0][1], local_addr=(SLOW_A, 0)
        )
        writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"y" * 80_000
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await until(lambda: budget.held(SLOW_A) == len(chunk))
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await until(lambda: budget.held(SLOW_A) == 2 * len(chunk))
        writer.write(b"%x\r\n" % len(chunk))  # a third would pass the host's share
        answer = await answer_of(reader)
        assert (answer.status, answer.header("Retry-After")) == (503, "1")
        writer.close()
        await until(lambda: budget.in_use == 0)


async def test_bodies_lagging_their_pace_are_answered_503_for_bodies_at_theirs() -> None:
    async with running(BODY, 3 * BODY, grace=0.2, chunked_requests=True) as server:
        budget = budget_of(server)
        loop = asyncio.get_running_loop()
        lagging = [await start_slow(server, host) for host in (SLOW_A, SLOW_B)]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.addresses[0][1], local_addr=(SLOW_C, 0)
        )
        writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n" % BODY + b"y" * 1000)  # a chunk begun, then nothing
        lagging.append((reader, writer))
        await until(lambda: budget.in_use == 3 * BODY)
        # 0.5 s later each lags its pace (100 kB within 30 s, 1 kB sent) by more than 0.2 s.
        await until(lambda: budget.slow(loop.time()) == 3)
        # Three honest hosts' bodies, each following its head: each charged, evicting one.
        honest = []
        for host in ("127.0.4.4", "127.0.4.5", "127.0.4.6"):
            client = await asyncio.open_connection(
                "127.0.0.1", server.addresses[0][1], local_addr=(host, 0)
            )
            client[1].write(head(BODY) + b"x" * 1000)
            await until(lambda host=host: budget.held(host) == BODY)
            honest.append(client)
        assert budget.evicted == 3
        for reader, writer in honest:
            writer.write(b"x" * (BODY - 1000))
            assert (await answer_of(reader)).status == 200
            writer.close()
        for reader, writer in lagging:
            answer = await answer_of(reader)
            assert (answer.status, answer.header("Retry-After")) == (503, "1")
            assert answer.header("Connection") == "close"
            writer.close()
        await until(lambda: budget.in_use == 0 and budget.hosts == 0)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0), as a client that dies does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_the_budget_comes_back_after_aborted_and_timed_out_bodies() -> None:
    async with running(per_host=4 * BODY, total=8 * BODY, body_timeout=0.3) as server:
        budget = budget_of(server)
        # Aborted: clients that reset or close in the middle of their bodies.
        aborted = [await start_slow(server, SLOW_A) for _ in range(4)]
        await until(lambda: budget.held(SLOW_A) == 4 * BODY)
        for index, (_, writer) in enumerate(aborted):
            if index % 2:
                _reset(writer)
            else:
                writer.close()
        await until(lambda: budget.in_use == 0)
        # Timed out: bodies that stall past the body timeout are answered 408.
        stalled = [await start_slow(server, host) for host in (SLOW_B, SLOW_B, SLOW_C)]
        await until(lambda: budget.in_use == 3 * BODY)
        for reader, writer in stalled:
            assert (await answer_of(reader)).status == 408
            writer.close()
        await until(lambda: budget.in_use == 0 and budget.hosts == 0)
        # And the host may send bodies again.
        reader, writer = await start_slow(server, SLOW_A)
        writer.write(b"x" * (BODY - 1000))
        assert (await answer_of(reader)).status == 200
        writer.close()
        await until(lambda: budget.in_use == 0)


async def test_the_budget_comes_back_when_the_server_closes_under_slow_bodies() -> None:
    server = await serve(
        _read_slowly, "127.0.0.1", 0, body_budget=BodyBudget(per_host=BODY, total=BODY)
    )
    budget = budget_of(server)
    clients = [await start_slow(server, SLOW_A)]
    await until(lambda: budget.in_use == BODY)
    await server.close(0.1)
    assert budget.in_use == 0
    for _, writer in clients:
        writer.close()


async def _read_slowly(request: Request) -> Response:
    return Response(200, await request.read_body())


async def test_a_handler_may_answer_a_refused_body_itself() -> None:
    async def busy_aware(request: Request) -> Response:
        try:
            await request.read_body(4 * BODY)
        except RequestBodyBusy:
            return Response(503, b"later", headers={"Retry-After": "2"})
        return Response()

    server = await serve(
        busy_aware, "127.0.0.1", 0, body_budget=BodyBudget(per_host=BODY, total=BODY)
    )
    try:
        budget = budget_of(server)
        first = await start_slow(server, SLOW_A)
        await until(lambda: budget.in_use == BODY)
        reader, writer = await start_slow(server, SLOW_B)
        answer = await answer_of(reader)
        assert (answer.status, answer.header("Retry-After")) == (503, "2")
        assert answer.header("Connection") == "close"  # its body is not read
        writer.close()
        first[1].close()
        await until(lambda: budget.in_use == 0)
    finally:
        await server.close(0.5)


def test_a_budget_shared_by_processes_holds_the_bounds_in_all() -> None:
    for processes in (1, 2, 3, 7, 64):
        part = BodyBudget.shared_by(processes)
        assert part.total * processes >= BODY_BUDGET > (part.total - 1) * processes
        assert part.per_host is not None
        assert part.per_host * processes >= BODY_BUDGET_PER_HOST
        assert (part.per_host - 1) * processes < BODY_BUDGET_PER_HOST
    assert BodyBudget.shared_by(0).total == BODY_BUDGET
    assert BodyBudget.shared_by(4, per_host=False).per_host is None
