"""The live stream's input and outputs (I/O layer): the source's input, read in a thread (a
regular file followed as it grows), and where a viewer's played chunks go (a file or standard
output, and the player's HTTP clients).  Used by :mod:`ppsp.peer.net.livenode`.

Layer: I/O, as :mod:`ppsp.peer.net`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import stat
import threading
from dataclasses import dataclass
from typing import BinaryIO

from ppsp.peer.net.filegrowth import FileGrowth

__all__ = [
    "READ_SIZE",
    "InputItem",
    "LiveInput",
    "LiveOutputs",
    "describe_input_error",
    "read_input",
]

READ_SIZE = 65536
"""Bytes read from the live input at a time."""


class LiveOutputs:
    """Where played chunks go: a file or standard output, and the player's HTTP clients.

    The first chunk played is a start point, so a file or a player connected from the start
    begins where it can decode.  A player that connects later first gets the chunks played
    since the latest start point (at most ``BACKLOG_BYTES``; beyond, it waits for the next
    start point), so that it too begins with a key frame and the program tables.
    """

    BACKLOG_BYTES = 32 * 1024 * 1024
    """Most bytes kept for players that connect later."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.sink = sink
        self.clients: set[asyncio.Queue[bytes | None]] = set()
        self.bytes_played = 0
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0

    def play(self, payload: bytes, *, start: bool = True) -> None:
        """Hand one chunk's payload to every output, in playback order (``start``: a player
        can start with it)."""
        self.bytes_played += len(payload)
        if start:
            self._backlog = []
            self._backlog_bytes = 0
        if start or self._backlog:
            self._backlog.append(payload)
            self._backlog_bytes += len(payload)
            if self._backlog_bytes > self.BACKLOG_BYTES:
                self._backlog = []  # too long since a start point: later players wait for one
                self._backlog_bytes = 0
        if self.sink is not None:
            self.sink.write(payload)
            self.sink.flush()
        for queue in list(self.clients):
            if queue.qsize() > 256:  # a client that does not read: drop it, not the stream
                self.clients.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(payload)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A queue that receives the chunks since the latest start point, then every chunk
        played from now on (None: the end)."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for payload in self._backlog:
            queue.put_nowait(payload)
        self.clients.add(queue)
        return queue

    def close(self) -> None:
        """End every client's stream and flush the sink."""
        for queue in self.clients:
            queue.put_nowait(None)
        self.clients.clear()
        if self.sink is not None:
            with contextlib.suppress(OSError, ValueError):
                self.sink.flush()


@dataclass(frozen=True, slots=True)
class LiveInput:
    """The live input of a source, checked (and opened where that cannot block) before the
    stream is announced: :meth:`open`."""

    path: str
    """The path given, ``-`` for standard input."""
    fd: int | None
    """The open file descriptor; None for a named pipe, opened by the reader (it waits there
    for a writer)."""
    follow: bool
    """A regular file: read as it grows, like ``tail -f``, so it never ends."""

    @classmethod
    def open(cls, path: str | None) -> LiveInput:
        """Check ``path`` and open it; raises OSError when it cannot be read."""
        if path is None or path == "-":
            return cls("-", 0, False)
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if stat.S_ISFIFO(info.st_mode):
            # Opening a pipe for reading waits for a writer: only check the permission here.
            if not os.access(path, os.R_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return cls(path, None, False)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a device must not block the open
        os.set_blocking(fd, True)
        return cls(path, fd, stat.S_ISREG(info.st_mode))

    def close(self) -> None:
        """Close the descriptor :meth:`open` opened (never standard input)."""
        if self.fd is not None and self.fd != 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)


def describe_input_error(live_input: LiveInput | str | None, exc: OSError) -> str:
    """One line saying why the live input cannot be read."""
    path = live_input.path if isinstance(live_input, LiveInput) else live_input or "-"
    name = "standard input" if path == "-" else path
    return f"cannot read the live input {name}: {exc.strerror or exc}"


InputItem = bytes | OSError | None
"""What the input reader hands over: bytes read, the error that ended reading, or None at the
end of the input."""


async def read_input(live_input: LiveInput) -> asyncio.Queue[InputItem]:
    """Read the live input in a thread; a regular file is followed as it grows (``tail -f``)."""
    queue: asyncio.Queue[InputItem] = asyncio.Queue(maxsize=1024)
    loop = asyncio.get_running_loop()

    def reader() -> None:
        fd = live_input.fd
        last: InputItem = None
        # Watched before the first read, so that no write is missed (see FileGrowth).
        growth = FileGrowth(live_input.path) if live_input.follow else None
        try:
            if fd is None:
                fd = os.open(live_input.path, os.O_RDONLY)  # a named pipe: waits for a writer
            while True:
                data = os.read(fd, READ_SIZE)
                if data:
                    try:
                        asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
                    except (RuntimeError, concurrent.futures.CancelledError):
                        break  # the event loop is gone: the source has stopped
                elif growth is not None:
                    growth.wait()
                else:
                    break
        except OSError as exc:
            last = exc
        finally:
            if growth is not None:
                growth.close()
            if fd is not None and fd != 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(queue.put(last), loop)

    # A daemon thread, not the loop's executor: a read blocked on a quiet pipe must not keep
    # the process from exiting when the source is stopped.
    threading.Thread(target=reader, name="ppsp-live-input", daemon=True).start()
    return queue
