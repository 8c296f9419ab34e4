"""Live streaming over the peer node: the source (``ppsp live``) and the viewer (``ppsp watch``).

The decisions are the sans-I/O live core's (:mod:`ppsp.peer.live`): the chunker cuts and signs,
the window keeps the last seconds, the playback clock says what is due and what to fetch first.
This module reads the input, moves chunk envelopes between peers over HTTP, verifies each one
before it is kept, played or passed on, and hands played chunks to the outputs.

Times are Unix times (``time.time()``): a live chunk's deadline is compared with the source's
timestamps, so every peer reads the wall clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hashlib
import logging
import math
import os
import random
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import ForgedChunk, LiveError, PPSPError
from ppsp.peer.live import (
    ChunkEnvelope,
    LiveChunk,
    LiveChunker,
    LiveDescription,
    LivePlayback,
    LiveSource,
    LiveWindow,
    PlaybackConfig,
    PlaybackState,
    QoE,
    availability_from_bitmaps,
    verify_envelope,
)
from ppsp.peer.net.http_common import read_bounded
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.session import (
    LIVE_REPRESENTATION,
    SOURCE_PROPERTY,
    LiveState,
    RemotePeer,
    SwarmSession,
)
from ppsp.wire.tracker import PeerMode, RepresentationScope

log = logging.getLogger(__name__)

READ_SIZE = 65536
"""Bytes read from the live input at a time."""

SLOTS_PER_PEER = 4
"""Live chunk requests in flight per relaying peer."""

SOURCE_SLOTS = 1
"""Live chunk requests in flight to the source per viewer: the source's upload is the scarce
resource of a live swarm, and a queue of requests at it only makes every chunk late."""

FETCH_TIMEOUT_S = 10.0
"""Longest wait for one live chunk."""

MIN_FETCH_TIMEOUT_S = 0.3
"""Shortest wait for one live chunk, even one already due."""

STARTUP_FETCH_TIMEOUT_S = 3.0
"""Wait for a chunk of the startup buffer (it has no deadline until playback starts)."""

SOURCE_RELIEF_S = 0.75
"""A chunk due later than this is not asked of the source while another peer holds it, so that
viewers relay to each other and the source's upload serves what only it has."""

SOURCE_FANOUT = 2
"""About how many viewers take each new chunk from the source (see ``_fetches_first``)."""

NEIGHBOURS = 6
"""Viewers a viewer exchanges chunk maps with (besides the source): PUSH on new chunks and
PULL when stale.  A partial mesh keeps the announcements per chunk linear in the swarm size
instead of quadratic, and six random neighbours keep the mesh connected."""

PUSH_INTERVAL_S = 0.1
"""Least time between two CHUNK_AVAILABILITY PUSHes of a peer's map to its neighbours."""

PULL_INTERVAL_S = 0.5
"""A neighbour whose map is older than this is asked for it (PULL), in case a PUSH was lost."""

FIND_INTERVAL_S = 3.0
"""How often the tracker is asked for more peers of the stream."""


RELAY_MARGIN_S = 2.5
"""Extra delay behind the source a viewer takes at join, beyond its startup buffer: the time
in which a new chunk reaches the viewers that took it from the source and is relayed by them
before anyone else needs it urgently."""


def default_playback_config(description: LiveDescription) -> PlaybackConfig:
    """Playback tuning: a 1.5 s startup buffer, joined ``RELAY_MARGIN_S`` further back.

    The whole buffer exists when the viewer joins, so startup is one round of fetches, and the
    delay behind the source is about the buffer, the relay margin and one chunk.
    """
    chunk_s = description.chunk_ms / 1000
    buffer_chunks = max(1, math.ceil(1.5 / chunk_s))
    margin = buffer_chunks - 1 + math.ceil(RELAY_MARGIN_S / chunk_s)
    return PlaybackConfig(buffer_chunks=buffer_chunks, join_margin=margin)


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


# -- the source -------------------------------------------------------------------------------


END_LINGER_MAX_S = 10.0
"""Longest the source goes on serving after the stream ended, so that viewers (who play a few
seconds behind it) can fetch the last chunks."""

END_LINGER_MIN_S = 0.5
"""Shortest the source goes on serving after the stream ended, so that its last chunk map
reaches its neighbours."""

STOP_LINGER_MAX_S = 0.8
"""Longest the source goes on serving after a stop signal ended the stream: a stopped command
ends within a second; viewers that already hold the END chunk pass it on among themselves."""

END_TAIL_S = 10.0
"""The source leaves early once every connected viewer holds the stream's end: the chunks of
the last ``END_TAIL_S`` seconds (nominal), from the first of them it holds to the last one."""


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


async def _read_chunks(live_input: LiveInput) -> asyncio.Queue[InputItem]:
    """Read the live input in a thread; a regular file is followed as it grows (``tail -f``)."""
    queue: asyncio.Queue[InputItem] = asyncio.Queue(maxsize=1024)
    loop = asyncio.get_running_loop()

    def reader() -> None:
        fd = live_input.fd
        last: InputItem = None
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
                elif live_input.follow:
                    time.sleep(0.05)
                else:
                    break
        except OSError as exc:
            last = exc
        finally:
            if fd is not None and fd != 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(queue.put(last), loop)

    # A daemon thread, not the loop's executor: a read blocked on a quiet pipe must not keep
    # the process from exiting when the source is stopped.
    threading.Thread(target=reader, name="ppsp-live-input", daemon=True).start()
    return queue


class LiveSourceRunner:
    """The source of a live stream: cut, sign, keep the window, announce, serve, end."""

    def __init__(
        self,
        node: PeerNode,
        key: Ed25519PrivateKey,
        *,
        name: str,
        chunk_ms: int,
        window_s: int,
        media_type: str = "video/mp2t",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.clock = clock
        self.source = LiveSource.start(
            key,
            now=clock(),
            name=name,
            media_type=media_type,
            chunk_ms=chunk_ms,
            window_s=window_s,
        )
        self.chunker = LiveChunker(self.source)
        description = self.source.description
        self.session = SwarmSession(
            swarm_id=description.swarm_id,
            description=None,
            store=None,
            mode=PeerMode.SEED,
            live=LiveState(
                description=description,
                window=LiveWindow.for_description(description),
                is_source=True,
            ),
        )
        self.chunks_produced = 0
        self.start_points = 0
        self._last_push = 0.0
        self._last_find = 0.0

    @property
    def swarm_id(self) -> str:
        """The stream's swarm ID (from the source's public key)."""
        return self.session.swarm_id

    async def announce(self) -> None:
        """Register the stream's session and JOIN its swarm as SEED at the tracker."""
        self.node.sessions[self.swarm_id] = self.session
        assert self.node.tracker is not None
        await self.node.tracker.join(self.swarm_id, PeerMode.SEED)

    async def run(self, live_input: LiveInput, stop: asyncio.Event) -> str | None:
        """Stream the input until it ends or ``stop`` is set, then announce the end.

        The last chunk is flagged END; the source then serves its window until every
        connected viewer holds the end of the stream, at most ``END_LINGER_MAX_S`` (after a
        stop signal ``STOP_LINGER_MAX_S``; a second signal ends the process at once).
        Returns why the input could not be read to its end, or None.
        """
        queue = await _read_chunks(live_input)
        failure: str | None = None
        while not stop.is_set():
            timer = self.chunker.next_timer()
            now = self.clock()
            wait = 0.2 if timer is None else max(0.0, min(0.2, timer - now))
            item: InputItem = b""
            with contextlib.suppress(asyncio.TimeoutError):
                item = await asyncio.wait_for(queue.get(), timeout=wait)
            now = self.clock()
            if item is None or isinstance(item, OSError):
                if isinstance(item, OSError):
                    failure = describe_input_error(live_input, item)
                break
            if item:
                self._publish(self.chunker.feed(item, now), now)
            else:
                self._publish(self.chunker.poll(now), now)
            await self._housekeeping(now)
        stopped = stop.is_set()
        now = self.clock()
        self._publish(self.chunker.flush(now), now)
        log.debug("live stream ended after %d chunks", self.chunks_produced)
        await self._linger(
            None if stopped else stop, STOP_LINGER_MAX_S if stopped else END_LINGER_MAX_S
        )
        return failure

    def _publish(self, chunks: list[LiveChunk], now: float) -> None:
        live = self.session.live
        assert live is not None
        for chunk in chunks:
            if live.window.add(chunk.envelope):
                self.chunks_produced += 1
                self.start_points += chunk.start
        live.window.expire(now)

    async def _housekeeping(self, now: float) -> None:
        node, session = self.node, self.session
        if now - self._last_push >= PUSH_INTERVAL_S and session.remotes:
            self._last_push = now
            node.spawn(_push_to_neighbours(node, session))
        if now - self._last_find >= FIND_INTERVAL_S:
            self._last_find = now
            node.spawn(node.discover(session))
        for remote in list(session.remotes.values()):
            if remote.offer is None and not remote.connecting and remote.failures < 3:
                remote.connecting = True
                node.spawn(_connect(node, session, remote))

    def _viewers(self) -> list[RemotePeer]:
        return [
            r
            for r in self.session.remotes.values()
            if r.offer is not None and not r.banned and r.failures < 3
        ]

    def viewers_hold_the_end(self) -> bool:
        """Whether every connected viewer's map holds the stream's end (see ``END_TAIL_S``)."""
        final = self.source.next_index - 1
        tail = max(1, math.ceil(END_TAIL_S * 1000 / self.source.description.chunk_ms))
        for remote in self._viewers():
            held = remote.bitmap
            if held is None:
                return False
            tail_held = [i for i in range(max(0, final - tail + 1), final + 1) if i in held]
            if not tail_held or len(tail_held) != final - tail_held[0] + 1:
                return False
        return True

    async def _linger(self, stop: asyncio.Event | None, limit: float) -> None:
        """Serve the window after the end, until the viewers hold it or ``limit`` seconds."""
        began = self.clock()
        last_pull = -math.inf
        while True:
            now = self.clock()
            if now - began >= limit:
                log.info("stopped serving the ended stream after %.1f s", limit)
                return
            if now - began >= END_LINGER_MIN_S and self.viewers_hold_the_end():
                return
            if now - last_pull >= PULL_INTERVAL_S:
                last_pull = now
                for remote in self._viewers():
                    self.node.spawn(_pull(self.node, self.session, remote))
            await self._housekeeping(now)
            if stop is None:
                await asyncio.sleep(0.1)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.1)
            if stop.is_set():
                return


async def _push_to_neighbours(node: PeerNode, session: SwarmSession) -> None:
    await _push_to(node, session, None)


async def _push_to(node: PeerNode, session: SwarmSession, targets: list[RemotePeer] | None) -> None:
    with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError, OSError):
        await node.push_map(session, targets)


async def _connect(node: PeerNode, session: SwarmSession, remote: RemotePeer) -> None:
    try:
        await node.connect(session, remote)
        live = session.live
        if live is not None and remote.properties.get(SOURCE_PROPERTY) == "1":
            live.source_peer_ids.add(remote.peer_id)
    except (TimeoutError, PPSPError, aiohttp.ClientError, OSError, ConnectionError):
        remote.failures += 1
    finally:
        remote.connecting = False
        session.chunk_arrived.set()


# -- the viewer -------------------------------------------------------------------------------


class LiveViewer:
    """A viewer of a live stream: joins at the live edge, fetches by deadline, plays, relays."""

    def __init__(
        self,
        node: PeerNode,
        session: SwarmSession,
        description: LiveDescription,
        outputs: LiveOutputs,
        *,
        config: PlaybackConfig | None = None,
        clock: Callable[[], float] = time.time,
        no_progress_timeout: float = 30.0,
    ) -> None:
        self.node = node
        self.session = session
        self.description = description
        self.outputs = outputs
        self.clock = clock
        self.no_progress_timeout = no_progress_timeout
        now = clock()
        # The startup delay counts from the command's start (when its peer node was made),
        # not from when the description came.
        self.playback = LivePlayback(
            description,
            now=node.started_at,
            config=config or default_playback_config(description),
        )
        session.live = LiveState(
            description=description,
            window=LiveWindow.for_description(description),
            is_source=False,
            playback=self.playback,
        )
        self.live = session.live
        self.in_flight: dict[int, str] = {}
        self.per_peer: dict[str, int] = {}
        self._last_push = 0.0
        self._last_pull = 0.0
        self._last_find = 0.0
        self._last_arrival = now
        self._scoped_find_done = False
        self._new_chunks = False
        self._neighbours: set[str] = set()
        self._rng = random.Random(node.peer_id)

    def qoe(self) -> QoE:
        """The viewer's quality-of-experience figures so far."""
        return self.playback.qoe()

    @property
    def ended(self) -> bool:
        """Whether the stream ended and its last chunk was played (or skipped)."""
        return self.playback.state is PlaybackState.ENDED

    async def run(self, stop: asyncio.Event) -> None:
        """Play the stream until it ends or ``stop`` is set; raises PPSPError when the stream
        is gone without its end.

        Chunks go to the outputs as soon as they are held, in order, from the start point on:
        the player always has what the viewer holds.
        """
        session = self.session
        while not stop.is_set():
            now = self.clock()
            self._connect_new()
            newest = self._newest_known()
            if newest is not None:
                self.playback.note_newest(newest, now)
                if not self._scoped_find_done and self.playback.target is not None:
                    self._scoped_find_done = True
                    self.node.spawn(self._find_near_edge(self.playback.target))
            self._request(now)
            playout = self.playback.due(now)
            for index in playout.played:
                if index in self.live.window:
                    envelope = self.live.window.get(index)
                    self.outputs.play(envelope.payload, start=envelope.start)
            if playout.ended:
                return
            self.live.window.expire(now)
            self.playback.set_floor(self.live.window.floor, now)
            await self._housekeeping(now)
            if now - self._last_arrival > self.no_progress_timeout:
                raise PPSPError(
                    f"no chunk arrived for {self.no_progress_timeout:.0f} s: the stream is gone"
                )
            session.chunk_arrived.clear()
            timer = self.playback.next_timer()
            wait = 0.05 if timer is None else max(0.005, min(0.05, timer - self.clock()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.chunk_arrived.wait(), timeout=wait)

    def _newest_known(self) -> int | None:
        newest = self.live.window.newest
        for remote in self.session.remotes.values():
            if remote.bitmap is not None and len(remote.bitmap) and not remote.banned:
                candidate = remote.bitmap.end
                # The map's last index is held (bitmaps end at the newest chunk).
                if newest is None or candidate > newest:
                    newest = candidate
        return newest

    def _usable(self) -> list[RemotePeer]:
        return [
            r
            for r in self.session.remotes.values()
            if r.offer is not None and not r.banned and r.bitmap is not None
        ]

    def _request(self, now: float) -> None:
        usable = self._usable()
        if not usable:
            return
        availability = availability_from_bitmaps(r.bitmap for r in usable if r.bitmap)
        for index in list(self.in_flight):
            availability.pop(index, None)
        for index in self.live.window:
            availability.pop(index, None)
        wanted = self.playback.wanted(availability, now, limit=len(usable) * SLOTS_PER_PEER)
        sources = self.live.source_peer_ids
        for index in wanted:
            holders = [
                r
                for r in usable
                if r.bitmap is not None
                and index in r.bitmap
                and self.per_peer.get(r.peer_id, 0)
                < (SOURCE_SLOTS if r.peer_id in sources else SLOTS_PER_PEER)
            ]
            if not holders:
                continue
            relays = [r for r in holders if r.peer_id not in sources]
            relaxed = self.playback.urgency(index, now) > SOURCE_RELIEF_S
            if relays and relaxed:
                holders = relays
            elif not relays and relaxed and not self._fetches_first(index):
                continue  # another viewer takes it from the source; wait for a relay
            remote = min(holders, key=lambda r: (self.per_peer.get(r.peer_id, 0), r.failures))
            self.in_flight[index] = remote.peer_id
            self.per_peer[remote.peer_id] = self.per_peer.get(remote.peer_id, 0) + 1
            self.node.spawn(self._fetch(remote, index))

    def _fetches_first(self, index: int) -> bool:
        """Whether this viewer is one of the few that take a new chunk from the source.

        Each chunk goes from the source to about ``SOURCE_FANOUT`` viewers, chosen by a hash of
        the chunk index and the viewer's PeerID that every viewer computes alike; the others
        wait for a relay until the chunk becomes urgent.  So the source's upload is spent once
        per chunk and neighbour, not once per viewer.
        """
        viewers = 1 + sum(
            1 for r in self.session.remotes.values() if r.peer_id not in self.live.source_peer_ids
        )
        if viewers <= SOURCE_FANOUT:
            return True
        digest = hashlib.sha256(f"{self.node.peer_id}:{index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") % viewers < SOURCE_FANOUT

    async def _fetch(self, remote: RemotePeer, index: int) -> None:
        node, live = self.node, self.live
        # A live chunk is worth nothing after its deadline: wait for it until then, and no
        # longer, so that a busy sender (the source) skips it instead of sending it too late.
        # Before playback starts there are no deadlines yet, only estimates: wait longer.
        left = self.playback.urgency(index, self.clock())
        if self.playback.play_start is None:
            left = STARTUP_FETCH_TIMEOUT_S
        timeout = min(FETCH_TIMEOUT_S, max(MIN_FETCH_TIMEOUT_S, left))
        try:
            data = await _get_envelope(node, self.session, remote, index, timeout)
            envelope = ChunkEnvelope.decode(data)
            if envelope.index != index:
                raise ForgedChunk(f"asked for chunk {index}, got {envelope.index}")
            now = self.clock()
            verify_envelope(self.description, envelope, now, live.window)
        except ForgedChunk as exc:
            live.forged_rejected += 1
            log.warning("peer %s sent a forged live chunk (%s): dropping it", remote.peer_id, exc)
            remote.banned = True
            return
        except LiveError:
            live.stale_rejected += 1
            return
        except TimeoutError:
            return  # late, not broken: a busy peer (the source above all) is not dropped
        except (PPSPError, aiohttp.ClientError, OSError, ConnectionError):
            remote.failures += 1
            if remote.failures >= 3:
                remote.banned = True
            return
        finally:
            self.in_flight.pop(index, None)
            self.per_peer[remote.peer_id] = max(0, self.per_peer.get(remote.peer_id, 1) - 1)
            self.session.chunk_arrived.set()
        remote.failures = 0
        if live.window.add(envelope):
            from_source = remote.peer_id in live.source_peer_ids
            self.playback.on_chunk(
                index,
                envelope.timestamp_ms,
                now,
                start=envelope.start,
                end=envelope.end,
                nbytes=len(data),
                from_source=from_source,
            )
            remote.bytes_received += len(data)
            self.session.downloaded_bytes += len(data)
            self.session.arrivals.append((now, remote.peer_id, len(data)))
            self._last_arrival = now
            self._new_chunks = True

    def _connect_new(self) -> None:
        for remote in self.session.remotes.values():
            if remote.offer is None and not remote.connecting and not remote.banned:
                if remote.failures >= 3:
                    continue
                remote.connecting = True
                self.node.spawn(_connect(self.node, self.session, remote))

    async def _find_near_edge(self, first: int) -> None:
        """A chunk-scoped FIND at the tracker: peers holding the stream from the join target."""
        tracker = self.node.tracker
        if tracker is None:
            return
        scope = (RepresentationScope(representation_id=LIVE_REPRESENTATION, start_index=first),)
        with contextlib.suppress(PPSPError, aiohttp.ClientError, asyncio.TimeoutError):
            listed = await tracker.find(self.session.swarm_id, content_group=scope)
            self.node.add_peers(self.session, listed)

    def neighbours(self) -> list[RemotePeer]:
        """The peers this viewer exchanges maps with: every source and up to NEIGHBOURS viewers.

        Neighbours that left or were dropped are replaced by random other connected viewers.
        """
        sources = self.live.source_peer_ids
        remotes = self.session.remotes
        usable = {
            peer_id
            for peer_id, r in remotes.items()
            if r.offer is not None and not r.banned and peer_id not in sources
        }
        self._neighbours &= usable
        spare = sorted(usable - self._neighbours)
        self._rng.shuffle(spare)
        self._neighbours.update(spare[: max(0, NEIGHBOURS - len(self._neighbours))])
        chosen = [remotes[p] for p in sorted(self._neighbours)]
        chosen += [r for p, r in remotes.items() if p in sources and not r.banned and r.offer]
        return chosen

    async def _housekeeping(self, now: float) -> None:
        node, session = self.node, self.session
        neighbours = self.neighbours()
        if self._new_chunks and now - self._last_push >= PUSH_INTERVAL_S:
            self._new_chunks = False
            self._last_push = now
            targets = [r for r in neighbours if r.peer_id not in self.live.source_peer_ids]
            node.spawn(_push_to(node, session, targets))
        if now - self._last_pull >= PULL_INTERVAL_S:
            self._last_pull = now
            for remote in neighbours:
                if now - remote.last_map_at > PULL_INTERVAL_S:
                    node.spawn(_pull(node, session, remote))
        if now - self._last_find >= FIND_INTERVAL_S:
            self._last_find = now
            node.spawn(node.discover(session))


async def _pull(node: PeerNode, session: SwarmSession, remote: RemotePeer) -> None:
    try:
        await node.pull_map(session, remote)
    except (TimeoutError, PPSPError, aiohttp.ClientError, OSError, ConnectionError):
        remote.failures += 1
        if remote.failures >= 3:
            remote.banned = True


async def _get_envelope(
    node: PeerNode, session: SwarmSession, remote: RemotePeer, index: int, timeout: float
) -> bytes:
    """GET one live chunk envelope over the negotiated HTTP transport."""
    http = node.http
    assert remote.offer is not None
    url = remote.offer.chunk_url(index, LIVE_REPRESENTATION)
    limit = aiohttp.ClientTimeout(total=timeout)
    async with http.get(url, headers=node.request_headers, timeout=limit) as answer:
        if answer.status != 200:
            raise ConnectionError(f"{remote.peer_id} answered {answer.status} for {index}")
        return await read_bounded(answer.content, 8 << 20, limiter=node.download_limiter)
