"""One pipelined connection to Redis for the tracker's requests (:class:`RedisLink`).

redis-py's asyncio client takes a connection from its pool for every command, writes it,
waits for its answer and gives the connection back: some 50-100 µs of CPU per command in
Python, more than the rest of a tracker request.  Redis answers the commands of one connection
in the order they came (RESP), so one connection can carry every request of the process: each
command is packed (``hiredis.pack_command``) and its future waits in a queue; the commands of
one turn of the event loop are written together, in one system call; one reader task parses
the answers (``hiredis.Reader``) and resolves the futures in order.  Commands of concurrent
requests share writes and reads (pipelining, without anyone waiting for it).

The connection is made by redis-py (:class:`redis.asyncio.Connection` from the storage URL, so
TLS, credentials, the database and the URL's options are redis-py's), then used here.  A lost
connection fails the commands waiting on it (:class:`ConnectionError`) and the next command
connects again; a server that stops answering fails them after ``command_timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import hiredis
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["RedisLink"]

_READ_SIZE = 1 << 16


class RedisLink:
    """Commands to Redis over one shared connection, pipelined (see the module docstring).

    ``pool`` is redis-py's pool of the storage, used only for its connection settings.
    """

    def __init__(self, pool: ConnectionPool, *, command_timeout: float) -> None:
        self._pool = pool
        self._timeout = command_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._reader_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False
        self._out: list[bytes] = []

    async def call(self, *args: bytes | str | int | float) -> Any:
        """Send one command and return its answer (a Redis error reply raised as redis-py's
        :class:`~redis.exceptions.ResponseError`, :class:`NoScriptError` for ``NOSCRIPT``)."""
        if self._writer is None:
            await self._connect()
            if self._writer is None:  # lost while connecting
                raise ConnectionError("Redis connection lost")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((future, time.monotonic()))
        # Written once per turn of the event loop, with every other command of that turn:
        # one system call for the commands of all the requests in progress.
        self._out.append(hiredis.pack_command(args))  # type: ignore[arg-type]  # stub: 1-tuple
        if len(self._out) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        # Commands queued for a connection since lost were failed (and dropped) with it.
        out, self._out = self._out, []
        if out and self._writer is not None:
            self._writer.write(b"".join(out))

    async def evalsha(self, sha: str, script: str, args: list[Any]) -> Any:
        """Run a Lua script by its SHA1, loading it first when the server does not have it."""
        try:
            return await self.call("EVALSHA", sha, 0, *args)
        except NoScriptError:
            await self.call("SCRIPT", "LOAD", script)
            return await self.call("EVALSHA", sha, 0, *args)

    async def close(self) -> None:
        """Close the connection; waiting commands fail."""
        self._closed = True
        self._drop(ConnectionError("Redis connection closed"))

    async def _connect(self) -> None:
        if self._closed:
            raise ConnectionError("Redis connection closed")
        if self._connecting is not None:
            # Another request is connecting: wait for it (its error is its own to report).
            await asyncio.shield(self._connecting)
            return
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            conn = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await conn.connect()  # TLS, AUTH, SELECT, HELLO: as redis-py does them
            reader, writer = conn._reader, conn._writer
            if reader is None or writer is None:
                raise ConnectionError("Redis connection not made")
            # The connection is ours now: redis-py no longer holds (nor warns about) it.
            conn._reader = conn._writer = None
            self._writer = writer
            self._reader_task = loop.create_task(self._read(reader, writer))
            self._arm()
        finally:
            self._connecting.set_result(None)
            self._connecting = None

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = hiredis.Reader(replyError=ResponseError)
        pending = self._pending
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    raise ConnectionError("Redis closed the connection")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    future = pending.popleft()[0]
                    if future.done():
                        continue
                    if isinstance(reply, ResponseError):
                        message = str(reply)
                        if message.startswith("NOSCRIPT"):
                            future.set_exception(NoScriptError(message))
                        else:
                            future.set_exception(reply)
                    else:
                        future.set_result(reply)
        except (OSError, ConnectionError, IndexError, hiredis.ProtocolError) as exc:
            if self._writer is writer:
                self._drop(ConnectionError(f"Redis connection lost: {exc}"))
        except asyncio.CancelledError:
            if self._writer is writer:
                self._drop(ConnectionError("Redis connection closed"))
            raise

    def _arm(self) -> None:
        """Check every second that the oldest waiting command is not older than the timeout."""
        self._watchdog = asyncio.get_running_loop().call_later(1.0, self._watch)

    def _watch(self) -> None:
        self._watchdog = None
        if self._writer is None:
            return
        if self._pending and time.monotonic() - self._pending[0][1] > self._timeout:
            self._drop(TimeoutError(f"Redis did not answer within {self._timeout:g} s"))
            return
        self._arm()

    def _drop(self, error: Exception) -> None:
        """Forget the connection and fail every command waiting on it."""
        writer, self._writer = self._writer, None
        self._out = []
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        while self._pending:
            future = self._pending.popleft()[0]
            if not future.done():
                future.set_exception(error)
