"""A PPSPP seeder on a UDP socket: the thin I/O around :class:`~ppsp.peer.ppspp.Seeder`.

One datagram socket; each datagram goes to the engine with the event loop's time, what the
engine wants sent is sent, and one timer waits for the engine's next deadline (re-armed after
every event, never polling).  The content's chunks are read from its file at explicit offsets
(``os.pread``), its Merkle tree is built once when it is loaded.  One socket serves any number
of contents, told apart by their root hash (the swarm ID of each channel's handshake): ``ppsp
seed --ppspp-port`` serves the file for libswift (SHA-1, 1 KiB chunks) and the swarm's
representation for peers of the swarm (:mod:`ppsp.peer.net.ppspp_transport`) on one port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

from ppsp.peer.content.merkle import chunk_hash
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.ppspp import DEFAULT_CHUNK_SIZE, MerkleHashFunction

__all__ = ["FileChunks", "FileSeeding", "PpsppSeederServer", "load_content", "seed_file", "serve"]


class FileChunks:
    """A :class:`~ppsp.peer.ppspp.ChunkReader` over an open file (``os.pread``)."""

    def __init__(self, path: Path, chunk_size: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._chunk_size = chunk_size

    def read_chunk(self, index: int, size: int) -> bytes:
        """The bytes of chunk ``index`` read from the file."""
        return os.pread(self._fd, size, index * self._chunk_size)

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def load_content(
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA1,
) -> tuple[SeededContent, FileChunks]:
    """Hash the file at ``path`` into a :class:`SeededContent` reading its chunks from it.

    Returns the content and its reader (close it when done).  Raises ValueError for an
    empty file (no root hash), OSError when the file cannot be read.
    """
    leaves: list[bytes] = []
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            leaves.append(chunk_hash(chunk, merkle_hash.hashlib_name))
            size += len(chunk)
    reader = FileChunks(path, chunk_size)
    try:
        content = SeededContent(
            size=size,
            leaf_hashes=leaves,
            reader=reader,
            chunk_size=chunk_size,
            merkle_hash=merkle_hash,
        )
    except ValueError:
        reader.close()
        raise
    return content, reader


class PpsppSeederServer(asyncio.DatagramProtocol):
    """The socket's protocol: feeds the engine, sends its datagrams, keeps its one timer."""

    def __init__(self, seeder: Seeder) -> None:
        self.seeder = seeder
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.intercept: Callable[[bytes, Address], bool] | None = None
        """Sees each datagram first and returns True for one it consumed (the STUN answers
        of :mod:`ppsp.peer.net.ppspp_nat`, on this same socket), never handed to the engine."""
        # DATA timestamps are the wall clock in microseconds (what libswift expects).
        seeder.timestamp_offset = time.time() - self._loop.time()

    @property
    def address(self) -> tuple[str, int]:
        """The socket's local address."""
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return str(name[0]), int(name[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Hand a datagram to the engine, then send and re-arm."""
        if self.intercept is not None and self.intercept(data, addr):
            return
        self.seeder.datagram_received(data, addr, self._loop.time())
        self._flush()

    def sendto(self, data: bytes, address: Address) -> None:
        """Send one datagram of another protocol (STUN) from this socket."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, address)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (a peer gone): its channel times out in the engine."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self.seeder.handle_timer(self._loop.time())
        self._flush()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for address, data in self.seeder.datagrams_to_send():
            transport.sendto(data, address)
        deadline = self.seeder.next_deadline()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._timer is None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def close(self) -> None:
        """Send closing handshakes to established peers and close the socket."""
        self.seeder.close_all(self._loop.time())
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()


async def serve(
    contents: SeededContent | list[SeededContent],
    host: str,
    port: int,
    *,
    config: SeederConfig | None = None,
    sock: socket.socket | None = None,
    pacer: UploadPacer | None = None,
) -> PpsppSeederServer:
    """Bind a UDP socket on ``host:port`` (0: any free port), or take ``sock`` (bound
    already, e.g. for a STUN Binding before the content was ready), and seed ``contents``
    on it; DATA under the upload cap ``pacer`` when given."""
    loop = asyncio.get_running_loop()
    seeder = Seeder(contents, config=config, pacer=pacer)
    if sock is not None:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: PpsppSeederServer(seeder), sock=sock
        )
    else:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: PpsppSeederServer(seeder), local_addr=(host, port)
        )
    return protocol


class FileSeeding:
    """A file served over PPSPP by :func:`seed_file`: its root hash, address, and the way
    to stop."""

    def __init__(
        self, server: PpsppSeederServer, reader: FileChunks, root_hash: bytes, chunk_size: int
    ) -> None:
        self.server = server
        self.seeder = server.seeder
        """The engine (its ``stats`` count DATA sent, channels, drops)."""
        self.root_hash = root_hash
        """The RFC 7574 root hash (the swarm ID libswift's ``-h`` takes)."""
        self.chunk_size = chunk_size
        """The file's PPSPP chunk size in bytes (libswift's ``-z`` must say the same)."""
        self._reader = reader

    @property
    def address(self) -> tuple[str, int]:
        """The UDP address it serves on."""
        return self.server.address

    def close(self) -> None:
        """Tell established peers goodbye, close the socket and the file."""
        self.server.close()
        self._reader.close()


async def seed_file(
    path: Path,
    host: str,
    port: int,
    *,
    merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    config: SeederConfig | None = None,
    contents: Sequence[SeededContent] = (),
    sock: socket.socket | None = None,
    pacer: UploadPacer | None = None,
) -> FileSeeding:
    """Hash ``path`` (in a worker thread) and seed it over PPSPP on ``host:port``, with
    ``contents`` beside it on the same socket (``sock``, when given, bound already), DATA
    under the upload cap ``pacer`` when given.

    Raises ValueError for an empty file, OSError when the file cannot be read or the port
    not bound.
    """
    content, reader = await asyncio.to_thread(
        load_content, path, chunk_size=chunk_size, merkle_hash=merkle_hash
    )
    try:
        server = await serve(
            [content, *contents], host, port, config=config, sock=sock, pacer=pacer
        )
    except OSError:
        reader.close()
        raise
    return FileSeeding(server, reader, content.swarm_id, content.chunk_size)
