"""A PPSPP download on a UDP socket: the thin I/O around :class:`~ppsp.peer.ppspp.leecher.Leecher`.

One connected datagram socket to the peer (the kernel drops datagrams from anyone else); each
datagram goes to the engine with the event loop's time, what the engine wants sent is sent,
one timer waits for its next deadline.  Verified chunks are written at their offsets
(``os.pwrite``) into ``OUTPUT.part``, which is cut to the content's size, flushed and renamed
to ``OUTPUT`` once every chunk is held (as the HTTP download does); a failed download removes
it (a PPSPP download does not resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from ppsp.errors import PPSPError
from ppsp.peer.net.chunkstore import part_path
from ppsp.peer.ppspp.leecher import Leecher, LeecherConfig, LeecherState

__all__ = ["RECEIVE_BUFFER_BYTES", "PpsppDownloadFailed", "PpsppGetResult", "ppspp_download"]

RECEIVE_BUFFER_BYTES = 4 << 20
"""The socket's receive buffer asked for (the kernel caps it at ``net.core.rmem_max``)."""


class PpsppDownloadFailed(PPSPError):
    """A PPSPP download that could not complete (the message is one line)."""


class PpsppGetResult:
    """What a complete download gave: where, how many bytes and chunks, the engine's counts."""

    def __init__(self, path: Path, size: int, chunks: int, stats: dict[str, int]) -> None:
        self.path = path
        self.size = size
        self.chunks = chunks
        self.stats = stats


class _PartFile:
    """``OUTPUT.part``, written at chunk offsets, renamed when complete."""

    def __init__(self, output: Path, chunk_size: int) -> None:
        self.final = output
        self.path = part_path(output)
        self._chunk_size = chunk_size
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, index: int, data: bytes) -> None:
        """Write verified chunk ``index`` at its offset."""
        offset = index * self._chunk_size
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def commit(self, size: int) -> None:
        """Cut to ``size``, flush, close and give the file its final name."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.close()
        os.replace(self.path, self.final)

    def close(self) -> None:
        """Close the file (kept on disk)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """Close and remove the partial file."""
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class _Client(asyncio.DatagramProtocol):
    """The socket's protocol: feeds the engine, sends, writes, keeps the one timer."""

    def __init__(
        self,
        leecher: Leecher,
        store: _PartFile,
        done: asyncio.Future[None],
        on_progress: Callable[[int, int | None], None] | None,
    ) -> None:
        self.leecher = leecher
        self._store = store
        self._done = done
        self._on_progress = on_progress
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        leecher.timestamp_offset = time.time() - self._loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport and send our handshake."""
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # A seeder's bursts outrun a small buffer: a lost DATA costs a request timeout
            # (and libswift does not send the uncle hashes it carried again).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self._flush()

    def datagram_received(self, data: bytes, addr: object) -> None:
        """Hand a datagram to the engine, then write, send and re-arm."""
        self.leecher.datagram_received(data, self._loop.time())
        self._flush()

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (nobody on the port): the engine retries until its timeout."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the timer."""
        self._cancel_timer()

    def _on_timer(self) -> None:
        self._timer = None
        self.leecher.handle_timer(self._loop.time())
        self._flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        leecher = self.leecher
        try:
            chunks = leecher.take_chunks()
            for index, data in chunks:
                self._store.write(index, data)
        except OSError as exc:
            leecher.close(self._loop.time())
            self._finish(exc)
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            for data in leecher.datagrams_to_send():
                transport.sendto(data)
        if chunks and self._on_progress is not None:
            self._on_progress(leecher.held_count, leecher.chunk_count)
        if leecher.done:
            self._finish(None)
            return
        deadline = leecher.next_deadline()
        if self._timer is not None and (deadline is None or self._timer.when() != deadline):
            self._cancel_timer()
        if deadline is not None and self._timer is None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _finish(self, error: BaseException | None) -> None:
        self._cancel_timer()
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)

    def close(self) -> None:
        """Tell the peer goodbye (when not done) and close the socket."""
        if not self.leecher.done:
            self.leecher.close(self._loop.time())
        if self._transport is not None and not self._transport.is_closing():
            for data in self.leecher.datagrams_to_send():
                self._transport.sendto(data)
            self._transport.close()
        self._cancel_timer()


async def ppspp_download(
    root_hash: bytes,
    peer: tuple[str, int],
    output: Path,
    *,
    config: LeecherConfig | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> PpsppGetResult:
    """Download the content named by ``root_hash`` from the PPSPP peer at ``peer`` into
    ``output`` (through ``OUTPUT.part``), every chunk verified against the root hash.

    ``on_progress(held, total)`` is called as chunks arrive.  Raises
    :class:`PpsppDownloadFailed` (one-line message) when the peer does not answer, sends
    nothing more, fails verification, or the file cannot be written; ValueError for a root
    hash of the wrong length; cancellation closes the channel and removes the partial file.
    """
    loop = asyncio.get_running_loop()
    config = config or LeecherConfig()
    leecher = Leecher(root_hash, loop.time(), config)
    try:
        store = _PartFile(output, config.chunk_size)
    except OSError as exc:
        raise PpsppDownloadFailed(f"cannot write {part_path(output)}: {exc.strerror}") from None
    done: asyncio.Future[None] = loop.create_future()
    host, port = peer
    try:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Client(leecher, store, done, on_progress), remote_addr=(host, port)
        )
    except OSError as exc:
        store.discard()
        raise PpsppDownloadFailed(f"cannot reach {host}:{port}: {exc.strerror or exc}") from None
    client = protocol
    try:
        try:
            await done
        except OSError as exc:
            raise PpsppDownloadFailed(f"cannot write {store.path}: {exc.strerror}") from None
        if leecher.state is not LeecherState.COMPLETE:
            raise PpsppDownloadFailed(f"{host}:{port}: {leecher.failure}")
        assert leecher.size is not None and leecher.chunk_count is not None
        try:
            store.commit(leecher.size)
        except OSError as exc:
            raise PpsppDownloadFailed(f"cannot write {output}: {exc.strerror}") from None
        return PpsppGetResult(output, leecher.size, leecher.chunk_count, dict(leecher.stats))
    finally:
        client.close()
        store.discard()  # a no-op once committed: the .part is gone
