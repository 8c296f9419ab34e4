"""What a peer node offers other peers: stored chunks over real HTTP, and its upload rate.

The endpoint runs on the peer's own HTTP server (:mod:`ppsp.http.server`) on a real socket.  On
asyncio's loop a chunk goes out with ``sendfile``: what the socket takes at once in one call,
the rest through ``loop.sendfile``.  uvloop has no ``loop.sendfile`` and the chunk is read and
written instead.  Either way the body is the chunk's bytes, counted as uploaded.
A capped peer advertises its cap as ``Bandwidth`` in PROPERTY_QUERY, which ranks it for
others until they have measured it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
import uvloop

from ppsp.http.server import send_file_now, serve
from ppsp.peer.net.chunkstore import ChunkStore, describe_file
from ppsp.peer.net.http_common import PEER_ID_HEADER
from ppsp.peer.net.node import PeerNode, advertised_rate
from ppsp.peer.net.session import SwarmSession
from ppsp.peer.upload.fair import Decision, FairUploads, Verdict
from ppsp.wire.tracker import PeerMode

CHUNK = 64 * 1024
SIZE = 5 * CHUNK + 1000  # a short last chunk


async def _serve_and_fetch_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Serve a file's chunks and fetch each twice; how many times chunks were read to send
    (instead of sent with ``sendfile``)."""
    reads = 0
    pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        nonlocal reads
        reads += 1
        return pread(fd, length, offset)

    data = os.urandom(SIZE)
    path = tmp_path / "content.bin"
    path.write_bytes(data)
    description = describe_file(path, chunk_size=CHUNK)
    store = ChunkStore.open_seed(description, path)
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    session = SwarmSession.seeding(store, now=node.clock())
    node.sessions[session.swarm_id] = session
    monkeypatch.setattr(os, "pread", counting_pread)  # describing the file read it all
    # The endpoint under test, without a tracker.
    server = await serve(node.endpoint.router(), "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.addresses[0][1]}/swarm/{session.swarm_id}/chunk/main"
    try:
        async with aiohttp.ClientSession(headers={PEER_ID_HEADER: "reader"}) as http:
            for index in range(6):
                async with http.get(f"{base}/{index}") as answer:
                    assert answer.status == 200
                    assert answer.headers["Content-Type"] == "application/octet-stream"
                    body = await answer.read()
                assert body == data[index * CHUNK : (index + 1) * CHUNK]
            # Several at once on separate connections: each gets its own bytes.
            order = (4, 0, 3, 1, 2, 5)
            bodies = await asyncio.gather(*(_get(http, f"{base}/{index}") for index in order))
            assert b"".join(body for _, body in sorted(zip(order, bodies, strict=True))) == data
            async with http.get(f"{base}/6") as answer:
                assert answer.status == 404
    finally:
        await server.close()
        store.close()
    assert session.served_chunks == 12
    assert session.uploaded_bytes == 2 * SIZE
    assert session.uploaded_to == {"reader": 2 * SIZE}
    return reads


async def _get(http: aiohttp.ClientSession, url: str) -> bytes:
    async with http.get(url) as answer:
        assert answer.status == 200
        return await answer.read()


async def test_chunks_served_with_sendfile_on_asyncio_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert await _serve_and_fetch_every_chunk(tmp_path, monkeypatch) == 0


def test_chunks_served_by_reading_on_uvloop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert uvloop.run(_serve_and_fetch_every_chunk(tmp_path, monkeypatch)) == 12


async def test_a_socket_that_takes_part_of_a_chunk_gets_the_rest_from_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sendfile = os.sendfile
    calls: list[int] = []

    def stingy_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real_sendfile(out_fd, in_fd, offset, min(count, 1000))

    monkeypatch.setattr(os, "sendfile", stingy_sendfile)
    assert await _serve_and_fetch_every_chunk(tmp_path, monkeypatch) == 0
    # Every chunk took several calls: the first one at once, the rest through the loop.
    assert len(calls) > 12 * 2


async def test_a_failing_first_sendfile_leaves_the_chunk_to_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sendfile = os.sendfile
    failed: list[int] = []

    def failing_once_per_chunk(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        if offset is not None and offset % CHUNK == 0 and offset not in failed:
            failed.append(offset)
            raise OSError(22, "Invalid argument")
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", failing_once_per_chunk)
    assert await _serve_and_fetch_every_chunk(tmp_path, monkeypatch) == 0
    assert sorted(failed) == [index * CHUNK for index in range(6)]


async def test_send_file_now_sends_only_behind_an_empty_buffer(tmp_path: Path) -> None:
    path = tmp_path / "content.bin"
    data = os.urandom(100_000)
    path.write_bytes(data)
    filler = b"x" * (16 << 20)
    received = bytearray()
    done = asyncio.Event()
    server_side: list[asyncio.Transport] = []

    class Collect(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # let the sender's buffers fill
            server_side.append(transport)

        def data_received(self, chunk: bytes) -> None:
            received.extend(chunk)

        def eof_received(self) -> None:
            done.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Collect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    try:
        with path.open("rb") as file:
            assert send_file_now(transport, file, 1000, 50_000) == 50_000
            transport.write(filler)  # more than the sockets hold: the rest stays buffered
            assert transport.get_write_buffer_size() > 0
            assert send_file_now(transport, file, 0, 1000) == 0
        while not server_side:
            await asyncio.sleep(0)
        server_side[0].resume_reading()
        transport.write_eof()
        await asyncio.wait_for(done.wait(), 10)
    finally:
        transport.close()
        server.close()
    assert bytes(received) == data[1000:51_000] + filler


async def test_send_file_now_leaves_a_closing_transport_alone(tmp_path: Path) -> None:
    path = tmp_path / "content.bin"
    path.write_bytes(b"y" * 1000)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    transport.close()
    with path.open("rb") as file:
        assert send_file_now(transport, file, 0, 1000) == 0
    server.close()


def _seeding_node(tmp_path: Path) -> tuple[PeerNode, SwarmSession, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "content.bin"
    path.write_bytes(data)
    store = ChunkStore.open_seed(describe_file(path, chunk_size=CHUNK), path)
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    session = SwarmSession.seeding(store, now=node.clock())
    node.sessions[session.swarm_id] = session
    return node, session, data


async def test_the_endpoint_serves_descriptions_and_the_protocol_and_refuses_the_rest(
    tmp_path: Path,
) -> None:
    node, session, _ = _seeding_node(tmp_path)
    assert session.description is not None and session.store is not None
    server = await serve(node.endpoint.router(), "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/swarm/{session.swarm_id}/description") as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"] == "application/json"
                assert await answer.read() == session.description.to_bytes()
            for path in ("/swarm/unknown/description", "/swarm/x/chunk/main/1", "/nothing"):
                async with http.get(base + path) as answer:
                    assert answer.status == 404, path
            async with http.get(f"{base}/swarm/{session.swarm_id}/chunk/main/x") as answer:
                assert answer.status == 404
            async with http.put(f"{base}/") as answer:
                assert answer.status == 405
                assert answer.headers["Allow"] == "GET, HEAD, POST"
            # The peer protocol: a malformed message and one over the bound are its own
            # 400 INVALID SYNTAX (the connection's address, not a header, speaks for it).
            for body in (b"<not-ppsp/>", b" " * ((1 << 20) + 1)):
                async with http.post(f"{base}/", data=body) as answer:
                    assert answer.status == 400
                    assert b"INVALID SYNTAX" in await answer.read()
    finally:
        await server.close()
        session.store.close()


async def test_a_refused_chunk_request_is_answered_503_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, session, data = _seeding_node(tmp_path)
    assert session.store is not None
    refuse = Decision(Verdict.REFUSE, retry_after=7)
    server = await serve(node.endpoint.router(), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.addresses[0][1]}/swarm/{session.swarm_id}/chunk/main/0"
    try:
        async with aiohttp.ClientSession() as http:
            monkeypatch.setattr(FairUploads, "request", lambda *args, **kwargs: refuse)
            async with http.get(url) as answer:
                assert answer.status == 503
                assert answer.headers["Retry-After"] == "7"
            monkeypatch.undo()
            async with http.get(url) as answer:
                assert answer.status == 200
                assert await answer.read() == data[:CHUNK]
    finally:
        await server.close()
        session.store.close()
    assert session.served_chunks == 1


@pytest.mark.parametrize(
    ("properties", "rate"),
    [
        ({"Bandwidth": "2097152"}, 2097152.0),
        ({"Bandwidth": " 1000 "}, 1000.0),
        ({"Bandwidth": "0"}, None),
        ({"Bandwidth": "-5"}, None),
        ({"Bandwidth": "fast"}, None),
        ({"Bandwidth": "1e9"}, None),
        ({"UploadRate": "1000"}, None),
        ({}, None),
    ],
)
def test_advertised_rate_is_read_only_from_a_positive_integer(
    properties: dict[str, str], rate: float | None
) -> None:
    assert advertised_rate(properties) == rate


def test_a_capped_peer_advertises_its_upload_cap_as_bandwidth(tmp_path: Path) -> None:
    path = tmp_path / "content.bin"
    path.write_bytes(os.urandom(SIZE))
    description = describe_file(path, chunk_size=CHUNK)
    for upload_rate, expected in ((2_000_000.0, "2000000"), (None, None)):
        node = PeerNode(tracker_url="http://127.0.0.1:9/", upload_rate=upload_rate)
        node.sessions[description.swarm_id] = SwarmSession(
            swarm_id=description.swarm_id, description=description, store=None, mode=PeerMode.SEED
        )
        values = node.property_values(description.swarm_id, node.clock())
        assert values.get("Bandwidth") == expected
        assert "UploadRate" in values
