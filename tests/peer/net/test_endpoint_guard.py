"""A peer's endpoint bounds the connections one host holds, on real sockets (peer/net/guard.py).

A started peer (127.0.2.20) is reached by one host (127.0.9.9) opening connections that each
begin a peer-protocol POST's head and stop short of its end (held until the head timeout; the
bodies such connections may send are the body budget's, ``test_endpoint_body_budget.py``):
past the bound per host, further ones are cut at once, before anything is read, while another
host (127.0.4.4) is answered as before.  Its own host is not bounded.  The bound in all follows
the descriptor limit, and a failed ``accept`` is one line a minute, not a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator

import pytest

from ppsp.peer.net import guard
from ppsp.peer.net.guard import FD_RESERVE, AcceptFailures, connection_bound
from ppsp.peer.net.node import PeerNode
from ppsp.peer.upload.connections import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_HOST
from ppsp.peer.upload.fair import requester_host

HOST = "127.0.2.20"
FLOODER, HONEST = "127.0.9.9", "127.0.4.4"
PARTIAL_POST = (
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-peer+xml\r\n"
    b"Content-Length: 1048576\r\n"
)
"""A request head stopped short of its end: the connection is held until the head timeout."""


@pytest.fixture
async def node() -> AsyncIterator[PeerNode]:
    peer = PeerNode(tracker_url="http://127.0.0.1:9/", host=HOST)
    await peer.start()  # its endpoint, guarded as `ppsp seed` and `ppsp get` start it
    yield peer
    await peer.stop(disconnect=False)


async def _open(node: PeerNode, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, node.port, local_addr=(source, 0))
    writer.write(PARTIAL_POST)
    await writer.drain()
    return reader, writer


async def _cut(reader: asyncio.StreamReader, wait: float = 0.5) -> bool:
    """Whether the connection was closed (or reset) without an answer within ``wait``
    seconds (a refused one is cut at once)."""
    try:
        return await asyncio.wait_for(reader.read(1), wait) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False  # still open, its body awaited


async def test_one_host_holds_its_bound_and_others_are_still_served(node: PeerNode) -> None:
    held = [await _open(node, FLOODER) for _ in range(MAX_CONNECTIONS_PER_HOST)]
    beyond = [await _open(node, FLOODER) for _ in range(4)]
    try:
        assert all(await asyncio.gather(*(_cut(reader, 5.0) for reader, _ in beyond)))
        assert not await _cut(held[-1][0])  # the ones within the bound wait for their head
        assert node.guard.budget.open_per_host == {FLOODER: MAX_CONNECTIONS_PER_HOST}
        # Another host is answered at once.
        reader, writer = await asyncio.open_connection(HOST, node.port, local_addr=(HONEST, 0))
        writer.write(b"GET /swarm/none/description HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert head.startswith(b"HTTP/1.1 404 ")
        writer.close()
    finally:
        for _, writer in held + beyond:
            writer.close()
    # Closed connections are given back: the host may connect again.
    for _ in range(100):
        if FLOODER not in node.guard.budget.open_per_host:
            break
        await asyncio.sleep(0.01)
    reader, writer = await _open(node, FLOODER)
    assert not await _cut(reader)
    writer.close()


async def test_a_host_at_its_bound_gets_room_from_its_own_idle_connections(
    node: PeerNode,
) -> None:
    # Many viewers behind one NAT (HALL), each keeping a connection between its requests:
    # at the bound, a new one closes the host's connection idle longest; a host holding its
    # bound with heads never finished (FLOODER) still has no room, and loses none to HALL.
    hall = "127.0.0.77"
    ask = b"GET /swarm/none/description HTTP/1.1\r\nHost: x\r\n\r\n"

    async def asked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(ask)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        return head.split(b"\r\n", 1)[0]

    flood = [await _open(node, FLOODER) for _ in range(MAX_CONNECTIONS_PER_HOST)]
    viewers = [
        await asyncio.open_connection(HOST, node.port, local_addr=(hall, 0))
        for _ in range(MAX_CONNECTIONS_PER_HOST)
    ]
    try:
        for reader, writer in viewers:
            assert (await asked(reader, writer)).startswith(b"HTTP/1.1 404")
        more = [
            await asyncio.open_connection(HOST, node.port, local_addr=(hall, 0)) for _ in range(8)
        ]
        viewers += more
        for reader, writer in more:
            assert (await asked(reader, writer)).startswith(b"HTTP/1.1 404")
        # The 8 idle longest were closed, and the host holds its bound.
        assert all(await asyncio.gather(*(_cut(reader, 5.0) for reader, _ in viewers[:8])))
        assert node.guard.budget.open_per_host[requester_host(hall)] == MAX_CONNECTIONS_PER_HOST
        reader, _ = await _open(node, FLOODER)
        assert await _cut(reader, 5.0)
        assert not await _cut(flood[0][0])
    finally:
        for _, writer in flood + viewers:
            writer.close()


async def test_the_bound_per_host_is_the_nodes_to_set() -> None:
    # `--connections-per-host 2`: a third held connection of one host is cut, another host's
    # is not.
    peer = PeerNode(tracker_url="http://127.0.0.1:9/", host=HOST, connections_per_host=2)
    await peer.start()
    try:
        held = [await _open(peer, FLOODER) for _ in range(2)]
        third = await _open(peer, FLOODER)
        other = await _open(peer, HONEST)
        assert await _cut(third[0], 5.0)
        assert not await _cut(held[0][0]) and not await _cut(other[0])
        for _, writer in (*held, third, other):
            writer.close()
    finally:
        await peer.stop(disconnect=False)


async def test_this_peers_own_host_is_not_bounded(node: PeerNode) -> None:
    opened = [await _open(node, HOST) for _ in range(MAX_CONNECTIONS_PER_HOST + 4)]
    try:
        assert not any(await asyncio.gather(*(_cut(reader) for reader, _ in opened[-4:])))
    finally:
        for _, writer in opened:
            writer.close()


def test_the_bound_in_all_stays_below_the_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, hard))
    assert connection_bound() == 1024 - FD_RESERVE
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1 << 20, hard))
    assert connection_bound() == MAX_CONNECTIONS
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, hard))
    assert connection_bound() == MAX_CONNECTIONS


def test_a_failed_accept_is_one_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("test_a_failed_accept")
    logger.addFilter(AcceptFailures(lambda: now[0]))
    error = OSError(errno.EMFILE, "Too many open files")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for step in range(700):  # the event loop retries every 0.1 s: 70 s of it
            now[0] = step * 0.1
            try:
                raise error
            except OSError:
                logger.error("socket.accept() out of system resource\nsocket: <...>", exc_info=True)
        logger.error("another error")
    lines = [r for r in caplog.records if r.name == logger.name]
    assert [r.levelname for r in lines] == ["WARNING", "WARNING", "ERROR"]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines[:2])
    assert "Too many open files" in lines[0].getMessage()
    assert "more since the last warning" in lines[1].getMessage()
    assert guard.WARNING_INTERVAL == 60.0


def test_refusals_are_one_warning_per_host_and_minute(caplog: pytest.LogCaptureFixture) -> None:
    from ppsp.peer.net.guard import EndpointGuard
    from ppsp.peer.upload.connections import ConnectionBudget

    now = [0.0]
    hooks = EndpointGuard(ConnectionBudget(per_host=2), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ppsp.peer.net.guard"):
        tokens = [hooks.opened((FLOODER, port)) for port in range(1000)]
        assert sum(token is not None for token in tokens) == 2
        now[0] = 61.0
        assert hooks.opened((FLOODER, 1)) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "ppsp.peer.net.guard"]
    assert len(lines) == 2 and "997 more" in lines[1]  # 998 refused, the first one said
    for token in tokens:
        if token is not None:
            hooks.closed(token)
    assert hooks.budget.open_per_host == {}
