"""The HTTP chunk transport (PROFILE.md's binding): a GET of the URL the peer's offer expands to.

Two clients move the bytes, chosen per transfer:

- chunks of :data:`THREADED_FETCH_MIN_CHUNK` or more run whole in a worker thread
  (:mod:`ppsp.peer.net.chunkfetch`): a blocking keep-alive connection, the body received,
  verified (SHA-256) and written there, all of which release the GIL;
- smaller chunks, transfers under a download cap (paced on the event loop), URLs other than
  plain ``http://``, a moment when every thread is busy, and from then on a peer that answered
  in the chunked coding, use the event loop's client (:mod:`ppsp.http.client`); their bodies
  are verified and written in the storing threads, after the request's slot was freed
  (:meth:`~ppsp.peer.net.transport.TransferObserver.delivered`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor

from ppsp.codecs.httphead import BUSY_STATUSES, retry_after_seconds
from ppsp.errors import ChunkTransferError, ChunkUnavailable, HttpClientError, PeerBusy
from ppsp.http.client import HttpClient, Timeout
from ppsp.peer.download.peers import CHUNK_QUEUE_TIMEOUT, CONNECT_TIMEOUT
from ppsp.peer.net.chunkfetch import ThreadedChunkClient, UnsupportedResponse
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.http_common import read_pieces
from ppsp.peer.net.limiter import RateLimiter
from ppsp.peer.net.session import RemotePeer
from ppsp.peer.net.transport import ChunkNotWanted, ChunkTransport, TransferObserver
from ppsp.wire.peer import HTTP

CHUNK_TIMEOUT = Timeout(total=30, connect=CONNECT_TIMEOUT, read=CHUNK_QUEUE_TIMEOUT)
"""Bounds on one chunk request: 30 s from sending it to the last byte; opening the connection
and each wait for bytes (the first one included, which may wait in a busy uploader's queue) as
:mod:`ppsp.peer.download.peers` says (the download policy gives up on a stalled transfer after
``PROGRESS_TIMEOUT`` itself)."""

THREADED_FETCH_MIN_CHUNK = 1 << 20
"""Chunks at least this large are fetched in worker threads (:mod:`ppsp.peer.net.chunkfetch`).

Measured with ``bench.transfer_bench`` (docs/BENCHMARKS.md): with 1 MiB chunks the threads
move 256 MiB about 5% faster than the event loop's client (0.596 against 0.569 of a static
server, middles of seven alternated runs); with 512 KiB chunks the two are level, and with
256 KiB chunks the event loop is about 8% faster (a thread hand-over costs about as much as
what it saves on a small chunk)."""


class HttpChunkTransport(ChunkTransport):
    """Chunks of one session's store over HTTP, in worker threads or on the event loop.

    ``http`` and ``threads`` are the peer's clients (shared by its sessions), ``store_pool``
    the threads that verify and write what the event loop's client received, ``limiter`` the
    download cap if any, ``headers`` what every request carries (the requester's PeerID);
    ``stopping`` says when the peer is stopping (nothing new is written then).
    """

    kind = HTTP

    def __init__(
        self,
        *,
        http: HttpClient,
        threads: ThreadedChunkClient,
        store_pool: Executor,
        store: ChunkStore,
        representation: str,
        headers: Mapping[str, str],
        limiter: RateLimiter | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.http = http
        self.threads = threads
        self.store_pool = store_pool
        self.store = store
        self.representation = representation
        self.headers = dict(headers)
        self.limiter = limiter
        self.stopping = stopping
        self._loop_only: set[str] = set()  # peers whose answers only the loop's client reads

    def threaded(self, remote: RemotePeer) -> bool:
        """Whether transfers from ``remote`` may still run in threads (it never answered in a
        way only the event loop's client reads)."""
        return remote.peer_id not in self._loop_only

    async def fetch(self, remote: RemotePeer, index: int, observer: TransferObserver) -> int:
        """GET chunk ``index`` from ``remote``, verify it and write it (see the module)."""
        written = await self.fetch_in_thread(remote, index, observer)
        if written is not None:
            return written
        try:
            parts = await self._get(remote, index, observer)
        except TimeoutError as exc:  # no connection, no answer, no progress, out of time
            raise TimeoutError(f"chunk {index} from {remote.peer_id}: {exc!r}") from exc
        except HttpClientError as exc:
            raise ChunkTransferError(f"chunk {index} from {remote.peer_id}: {exc!r}") from exc
        nbytes = sum(len(part) for part in parts)
        # The request's slot is free while the chunk is verified and written.
        if not observer.delivered(nbytes):
            raise ChunkNotWanted(f"chunk {index} is held already")
        if self.stopping():
            raise ChunkUnavailable(f"chunk {index}: the peer is stopping")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.store_pool, self.store.store_parts, index, parts)
        return nbytes

    async def fetch_in_thread(
        self, remote: RemotePeer, index: int, observer: TransferObserver
    ) -> int | None:
        """GET, verify and write chunk ``index`` in a worker thread; its length once written.

        None when this transfer is for the event loop's client (see the module docstring).
        """
        if (
            self.limiter is not None
            or remote.peer_id in self._loop_only
            or self.stopping()
            or self.store.description.chunk_size < THREADED_FETCH_MIN_CHUNK
            or remote.offer is None
        ):
            return None
        url = remote.offer.chunk_url(index, self.representation)
        if not self.threads.accepts(url):
            return None
        try:
            async with asyncio.timeout(CHUNK_TIMEOUT.total):
                return await self.threads.fetch(
                    url,
                    headers=self.headers,
                    store=self.store,
                    index=index,
                    on_bytes=observer.received,
                )
        except UnsupportedResponse:
            self._loop_only.add(remote.peer_id)
            return None

    async def _get(self, remote: RemotePeer, index: int, observer: TransferObserver) -> list[bytes]:
        """The body of the chunk's GET on the event loop, as the pieces received."""
        assert remote.offer is not None
        url = remote.offer.chunk_url(index, self.representation)
        async with self.http.get(url, headers=self.headers, timeout=CHUNK_TIMEOUT) as answer:
            if answer.status in BUSY_STATUSES:
                raise PeerBusy(
                    f"{remote.peer_id} busy ({answer.status}) for {index}",
                    retry_after_seconds(answer.headers.get("Retry-After")),
                )
            if answer.status != 200:
                raise ChunkTransferError(f"{remote.peer_id} answered {answer.status} for {index}")
            return await read_pieces(
                answer.content,
                self.store.description.chunk_size,
                limiter=self.limiter,
                on_bytes=observer.received,
            )
