"""A peer's endpoint bounds the bytes of request bodies being read, per host and in all, on real
sockets (:mod:`ppsp.http.budget`, the bounds of :mod:`ppsp.http.bounds`).

A started peer (127.0.2.21) is reached by hosts that each begin 1 MiB peer-protocol POSTs and
stall.  One host (127.0.9.9) gets four bodies read at once (4 MiB); its further ones are
answered 503 ``TEMPORARILY OVERLOADED`` with ``Retry-After``, unread, while another host's
1 MiB body is still read and an honest peer's FIND_CHUNK (127.0.4.4) is answered.  Sixteen
hosts at their share spend the 64 MiB in all: while their bodies keep their pace a further
body to be waited for is refused whoever sends it, an honest peer's small message sent whole is
still answered; once they lag it (a byte sent, then nothing), an honest peer's message whose
body follows its head is read, one of theirs evicted (503 or closed).  Once the clients are
gone, nothing is left charged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from ppsp.codecs.httphead import head_length, parse_response_head
from ppsp.codecs.peer_xml import decode_response, encode_request
from ppsp.http.bounds import BODY_BUDGET, BODY_BUDGET_PER_HOST
from ppsp.http.budget import BodyBudget
from ppsp.peer.net.http_common import MAX_PEER_MESSAGE_BYTES
from ppsp.peer.net.node import PeerNode
from ppsp.wire.peer import ErrorResponse, FindRequest, PeerMethod
from waits import still_waiting, until

HOST = "127.0.2.21"
FLOODER, OTHER, HONEST = "127.0.9.9", "127.0.9.10", "127.0.4.4"
WAIT = 10.0
SWARM = "ab" * 20
PER_HOST = BODY_BUDGET_PER_HOST // MAX_PEER_MESSAGE_BYTES
"""Largest bodies one host may have read at once (4)."""


@pytest.fixture
async def node() -> AsyncIterator[PeerNode]:
    peer = PeerNode(tracker_url="http://127.0.0.1:9/", host=HOST)
    await peer.start()  # its endpoint, as `ppsp seed` and `ppsp get` start it
    yield peer
    await peer.stop(disconnect=False)


def budget_of(node: PeerNode) -> BodyBudget:
    server = node._server
    assert server is not None and server.body_budget is not None
    return server.body_budget


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def begin_post(node: PeerNode, source: str, first: int = 65536) -> Connection:
    """A POST of a 1 MiB message from ``source``: its head and ``first`` bytes of its body,
    then a stall."""
    reader, writer = await asyncio.open_connection(HOST, node.port, local_addr=(source, 0))
    writer.write(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-peer+xml\r\n"
        b"Content-Length: %d\r\n\r\n" % MAX_PEER_MESSAGE_BYTES + b"<" * first
    )
    await writer.drain()
    return reader, writer


async def answer_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """The status, header fields and body of the next answer."""
    data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    head = parse_response_head(data[: head_length(data)])
    body = await asyncio.wait_for(reader.readexactly(head.content_length or 0), WAIT)
    fields = {name: head.header(name) or "" for name in ("Retry-After", "Connection")}
    return head.status, fields, body


async def find_chunk(node: PeerNode, source: str, split: bool = False) -> int:
    """An honest FIND_CHUNK from ``source``, sent whole (``split``: its body once its head and
    first bytes were charged): the status of its answer."""
    body = encode_request(
        FindRequest(
            transaction_id="7",
            peer_id="c" * 40,
            swarm_id=SWARM,
            method=PeerMethod.FIND_CHUNK,
            chunk_ids=(1, 2),
        )
    )
    reader, writer = await asyncio.open_connection(HOST, node.port, local_addr=(source, 0))
    try:
        head = (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-peer+xml\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        if split:
            budget = budget_of(node)
            refused = budget.refused
            writer.write(head + body[:10])
            await until(lambda: budget.held(source) > 0 or budget.refused > refused)
            with contextlib.suppress(ConnectionError):
                writer.write(body[10:])
        else:
            writer.write(head + body)
        status, _, _ = await answer_of(reader)
        return status
    finally:
        writer.close()


async def test_one_host_gets_its_share_and_others_are_still_read(node: PeerNode) -> None:
    budget = budget_of(node)
    held = [await begin_post(node, FLOODER) for _ in range(PER_HOST)]
    await until(lambda: budget.held(FLOODER) == BODY_BUDGET_PER_HOST)
    beyond = [await begin_post(node, FLOODER) for _ in range(3)]
    connections = held + beyond
    try:
        for reader, _ in beyond:
            status, fields, body = await answer_of(reader)
            assert (status, fields) == (503, {"Retry-After": "1", "Connection": "close"})
            answer = decode_response(body, status)
            assert isinstance(answer, ErrorResponse)
            assert answer.response == "TEMPORARILY OVERLOADED"
        assert all([await still_waiting(reader, 0.3) for reader, _ in held])
        # Another host's large body is read, and an honest peer's message answered.
        connections.append(await begin_post(node, OTHER))
        await until(lambda: budget.held(OTHER) == MAX_PEER_MESSAGE_BYTES)
        assert await still_waiting(connections[-1][0], 0.3)
        assert await find_chunk(node, HONEST) != 503
    finally:
        for _, writer in connections:
            writer.close()
    await until(lambda: budget.in_use == 0 and budget.hosts == 0)


async def test_hosts_together_spend_the_total_and_small_messages_still_pass(
    node: PeerNode,
) -> None:
    budget = budget_of(node)
    budget.grace = 3600.0  # their bodies keep their pace here (lagging it: the next test)
    hosts = [f"127.0.10.{n}" for n in range(1, BODY_BUDGET // BODY_BUDGET_PER_HOST + 1)]
    connections: list[Connection] = []
    try:
        for host in hosts:
            connections += [await begin_post(node, host) for _ in range(PER_HOST)]
        await until(lambda: budget.in_use == BODY_BUDGET)
        # The total is spent: a body to be waited for is refused, whoever sends it...
        reader, writer = await begin_post(node, HONEST)
        connections.append((reader, writer))
        status, fields, _ = await answer_of(reader)
        assert (status, fields["Retry-After"]) == (503, "1")
        # ... but a small message that came whole with its head is answered.
        assert await find_chunk(node, HONEST) != 503
    finally:
        for _, writer in connections:
            writer.close()
    await until(lambda: budget.in_use == 0 and budget.hosts == 0)


async def test_bodies_lagging_their_pace_are_evicted_for_a_message_at_its_pace(
    node: PeerNode,
) -> None:
    budget = budget_of(node)
    loop = asyncio.get_running_loop()
    hosts = [f"127.0.10.{n}" for n in range(1, BODY_BUDGET // BODY_BUDGET_PER_HOST + 1)]
    connections: list[Connection] = []
    try:
        for host in hosts:
            connections += [await begin_post(node, host, first=1) for _ in range(PER_HOST)]
        await until(lambda: budget.in_use == BODY_BUDGET)
        # A second later every one lags its pace (1 MiB within the 30 s body timeout).
        await until(lambda: budget.slow(loop.time()) == len(connections))
        # An honest peer's FIND_CHUNK whose body follows its head is read and answered.
        assert await find_chunk(node, HONEST, split=True) != 503
        assert budget.evicted == 1
        # One of the attackers' connections was answered 503 (or closed); the rest wait.
        reads = [asyncio.ensure_future(reader.read(65536)) for reader, _ in connections]
        done, pending = await asyncio.wait(reads, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        assert len(done) == 1
        data = done.pop().result()
        assert data == b"" or data.startswith(b"HTTP/1.1 503 ")
        if data:
            assert b"\r\nRetry-After: 1\r\n" in data and b"TEMPORARILY OVERLOADED" in data
    finally:
        for _, writer in connections:
            writer.close()
    await until(lambda: budget.in_use == 0 and budget.hosts == 0)
