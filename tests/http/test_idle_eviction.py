"""A host at its connection bound: its longest-idle connection makes room (``ppsp.http.idle``).

Real loopback sockets from distinct 127.x addresses to a server whose hooks allow each host 2
connections.  A new connection of a host at its bound closes that host's connection idle
longest between requests and is served; a host with no idle connection (one never used, one
being answered) is refused as before; another host's idle connections are never closed for it;
TLS connections, admitted before their handshake, the same.  The index of idle connections is
empty once every connection ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from e2e.tls_helpers import make_tls_files, server_context
from ppsp.http.hooks import ConnectionHooks
from ppsp.http.server import HTTPServer, Request, Response, serve

HALL, OTHER = "127.0.0.77", "127.0.0.78"
BOUND = 2


class PerHost(ConnectionHooks):
    """At most :data:`BOUND` connections per source address; what was closed, and why."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}
        self.evicted = 0

    def full(self, remote: tuple[str, int]) -> bool:
        return self.open.get(remote[0], 0) >= BOUND

    def opened(self, remote: tuple[str, int]) -> object | None:
        if self.full(remote):
            return None
        self.open[remote[0]] = self.open.get(remote[0], 0) + 1
        return remote[0]

    def closed(self, token: object) -> None:
        assert isinstance(token, str)
        self.open[token] -= 1

    def timed_out(self, token: object, what: str) -> None:
        if what == "evicted":
            self.evicted += 1


@contextlib.asynccontextmanager
async def running(tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[HTTPServer, PerHost]]:
    hooks = PerHost()
    gate = asyncio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/slow":
            await gate.wait()
        return Response(200, b"ok")

    server = await serve(handler, "127.0.0.1", 0, hooks=hooks, ssl=tls)
    try:
        yield server, hooks
    finally:
        gate.set()
        await server.close(0.5)


class Client:
    """One kept-alive connection from ``local``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(
        cls, server: HTTPServer, local: str, tls: ssl.SSLContext | None = None
    ) -> Client:
        _, port = server.addresses[0]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(local, 0), ssl=tls,
            server_hostname="127.0.0.1" if tls else None,
        )  # fmt: skip
        return cls(reader, writer)

    async def get(self, path: str = "/") -> bytes:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        await self.reader.readexactly(2)
        return head.split(b"\r\n", 1)[0]

    async def closed_by_server(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), 10) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()


async def test_a_new_connection_closes_its_hosts_longest_idle_one() -> None:
    async with running() as (server, hooks):
        first, second = await Client.open(server, HALL), await Client.open(server, HALL)
        other = await Client.open(server, OTHER)
        for client in (first, second, other):
            assert await client.get() == b"HTTP/1.1 200 OK"
        await second.get()  # the first is now idle longest
        third = await Client.open(server, HALL)
        assert await third.get() == b"HTTP/1.1 200 OK"
        assert await first.closed_by_server()
        assert hooks.evicted == 1 and hooks.open == {HALL: 2, OTHER: 1}
        # The others are served on.
        assert await second.get() == b"HTTP/1.1 200 OK"
        assert await other.get() == b"HTTP/1.1 200 OK"
        for client in (first, second, third, other):
            client.close()
        await asyncio.sleep(0.1)
        assert len(server.idle) == 0


async def test_no_idle_connection_of_its_own_means_refused() -> None:
    async with running() as (server, hooks):
        # One connection never used, one being answered: neither is idle between requests.
        unused = await Client.open(server, HALL)
        busy = await Client.open(server, HALL)
        busy.writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        await busy.writer.drain()
        # Another host's idle connection is not closed for this host either.
        other = await Client.open(server, OTHER)
        assert await other.get() == b"HTTP/1.1 200 OK"
        refused = await Client.open(server, HALL)
        assert await refused.closed_by_server()
        assert hooks.evicted == 0
        assert await other.get() == b"HTTP/1.1 200 OK"
        for client in (unused, busy, other, refused):
            client.close()


async def test_tls_connections_make_room_the_same_way(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path / "tls")
    client_tls = ssl.create_default_context(cafile=str(files.ca))
    async with running(server_context(files)) as (server, hooks):
        first = await Client.open(server, HALL, client_tls)
        second = await Client.open(server, HALL, client_tls)
        assert await first.get() == b"HTTP/1.1 200 OK"
        assert await second.get() == b"HTTP/1.1 200 OK"
        third = await Client.open(server, HALL, client_tls)
        assert await third.get() == b"HTTP/1.1 200 OK"
        assert await first.closed_by_server()
        assert hooks.evicted == 1
        for client in (first, second, third):
            client.close()


@pytest.mark.parametrize("count", [5])
async def test_many_clients_of_one_host_take_turns_within_its_bound(count: int) -> None:
    # More clients than the bound, each asking in turn: every request is served on a new
    # connection when its own was closed meanwhile, and the host never holds more than 2.
    async with running() as (server, hooks):
        clients = [await Client.open(server, HALL) for _ in range(BOUND)]
        for client in clients:
            assert await client.get() == b"HTTP/1.1 200 OK"
        for _ in range(count):
            fresh = await Client.open(server, HALL)
            assert await fresh.get() == b"HTTP/1.1 200 OK"
            clients.append(fresh)
            assert hooks.open[HALL] <= BOUND
        assert hooks.evicted == count
        for client in clients:
            client.close()
