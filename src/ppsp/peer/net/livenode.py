"""Live streaming over the peer node: the source (``ppsp live``) and the viewer (``ppsp watch``).

The decisions are the sans-I/O live core's (:mod:`ppsp.peer.live`): the chunker cuts and signs,
the window keeps the last seconds, and the viewer's policy (:mod:`ppsp.peer.live.viewer`)
decides what to fetch from whom, verifies each envelope before it is kept, played or passed on,
and says what to play.  This module reads the input, runs the viewer's policy on the session
loop (:mod:`ppsp.peer.net.loop`), moves chunk envelopes and maps between peers over HTTP and
hands played chunks to the outputs.  Nothing here polls: the source waits for input, its
chunker's next cut, a chunk map or its next PUSH; the viewer for an operation's end, a chunk
map or its policy's next deadline.  (A regular input file followed as it grows is the one
exception: its reader thread looks for new bytes every 50 ms, as ``tail -f`` does.)

Times are Unix times (``time.time()``): a live chunk's deadline is compared with the source's
timestamps, so every peer reads the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.codecs.httphead import BUSY_STATUSES, retry_after_seconds
from ppsp.errors import ChunkTransferError, HttpClientError, IntegrityError, PeerBusy, PPSPError
from ppsp.http.client import Timeout
from ppsp.peer.download.events import (
    Action,
    BanPeer,
    CancelChunk,
    ChunkFailed,
    Connect,
    Done,
    Event,
    Failed,
    FetchChunk,
    FindAnswered,
    FindHolders,
    FindPeers,
    LiveChunkArrived,
    PeerConnected,
    PeerUnreachable,
    PlayChunk,
    PullMap,
    PushMap,
)
from ppsp.peer.live import (
    LiveChunk,
    LiveChunker,
    LiveDescription,
    LivePlayback,
    LiveSource,
    LiveWindow,
    PlaybackConfig,
    PlaybackState,
    QoE,
)
from ppsp.peer.live.viewer import LiveTiming, LiveViewerPolicy
from ppsp.peer.nat.punch import ppspp_candidates
from ppsp.peer.net.download import EXCHANGE_ERRORS, find_peers
from ppsp.peer.net.http_common import read_bounded
from ppsp.peer.net.live_io import (
    InputItem,
    LiveInput,
    LiveOutputs,
    describe_input_error,
    read_input,
)
from ppsp.peer.net.loop import SessionLoop
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint, live_offer_uri, parse_live_offer
from ppsp.peer.net.session import (
    LIVE_REPRESENTATION,
    SOURCE_PROPERTY,
    LiveState,
    RemotePeer,
    SwarmSession,
)
from ppsp.peer.net.transport import PPSPP
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import TransportOffer
from ppsp.wire.tracker import PeerMode, RepresentationScope

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = LiveTiming().push_interval
"""Least time between two CHUNK_AVAILABILITY PUSHes of the source's map (sent when it holds
new chunks)."""

PULL_INTERVAL_S = LiveTiming().pull_interval
"""How often the source PULLs the viewers' maps after the stream ended."""

FIND_INTERVAL_S = LiveTiming().find_interval
"""How often the tracker is asked for more peers of the stream."""


UDP_REACH_TIMEOUT = 10.0
"""Seconds a live channel's handshake to a peer reached over UDP only (behind NAT) is sent to
its candidates, every second, before the peer counts as unreachable (the stored chunk
transport's ``PUNCH_CONNECT_TIMEOUT``: a peer behind NAT punches towards newly listed peers
within its FIND interval, 3 s)."""


RELAY_MARGIN_S = 2.0
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
        self.ppspp: LivePpsppEndpoint | None = None
        """The stream served over PPSPP too (``ppsp live --ppspp-port``), or None."""
        self._last_push = -math.inf
        self._last_find = -math.inf
        self._new_chunks = False

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

        It waits for the first of: input read, the chunker's next cut, a chunk map or a peer
        arriving (the session's wake event), its next PUSH or FIND; never on a period.
        """
        queue = await read_input(live_input)
        failure: str | None = None
        reading: asyncio.Task[InputItem] | None = None
        try:
            while not stop.is_set():
                now = self.clock()
                self._publish(self.chunker.poll(now), now)
                self._housekeeping(now)
                if reading is None:
                    reading = asyncio.ensure_future(queue.get())
                deadline = self._next_deadline(self.chunker.next_timer())
                await _wait_for_any(
                    (reading,), (stop, self.session.chunk_arrived), deadline, clock=self.clock
                )
                self.session.chunk_arrived.clear()
                if not reading.done():
                    continue
                item, reading = reading.result(), None
                if item is None or isinstance(item, OSError):
                    if isinstance(item, OSError):
                        failure = describe_input_error(live_input, item)
                    break
                now = self.clock()
                self._publish(self.chunker.feed(item, now), now)
        finally:
            if reading is not None:
                reading.cancel()
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
                if self.ppspp is not None:  # signed as a munro and announced over PPSPP
                    self.ppspp.append(chunk.envelope.index, chunk.envelope.encode())
                self.chunks_produced += 1
                self.start_points += chunk.start
                self._new_chunks = True
        live.window.expire(now)

    def _next_deadline(self, timer: float | None) -> float:
        """The first of ``timer``, the next PUSH (when there is news) and the next FIND."""
        times = [self._last_find + FIND_INTERVAL_S]
        if timer is not None:
            times.append(timer)
        if self._new_chunks:
            times.append(self._last_push + PUSH_INTERVAL_S)
        return min(times)

    def _housekeeping(self, now: float) -> None:
        """PUSH new chunks to every viewer (at most every ``PUSH_INTERVAL_S``), FIND every
        ``FIND_INTERVAL_S``, connect to the peers not connected yet."""
        node, session = self.node, self.session
        if self._new_chunks and now - self._last_push >= PUSH_INTERVAL_S:
            self._new_chunks = False
            self._last_push = now
            if session.remotes:
                node.spawn(_push_to(node, session, None))
        if now - self._last_find >= FIND_INTERVAL_S:
            self._last_find = now
            node.spawn(_discover(node, session))
        for remote in list(session.remotes.values()):
            if remote.standing.connectable:
                remote.connecting = True
                node.spawn(_connect(node, session, remote))

    def _viewers(self) -> list[RemotePeer]:
        return [r for r in self.session.remotes.values() if r.standing.usable]

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
        """Serve the window after the end, until the viewers hold it or ``limit`` seconds.

        The viewers' maps are PULLed every ``PULL_INTERVAL_S``; each map that arrives (the
        session's wake event) is a moment to look again.
        """
        began = self.clock()
        last_pull = -math.inf
        wake = self.session.chunk_arrived
        events = (wake,) if stop is None else (wake, stop)
        while stop is None or not stop.is_set():
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
            self._housekeeping(now)
            deadline = min(
                began + limit,
                began + END_LINGER_MIN_S if now - began < END_LINGER_MIN_S else math.inf,
                last_pull + PULL_INTERVAL_S,
                self._next_deadline(None),
            )
            await _wait_for_any((), events, deadline, clock=self.clock)
            wake.clear()


async def _wait_for_any(
    tasks: tuple[asyncio.Future[Any], ...],
    events: tuple[asyncio.Event, ...],
    deadline: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Return once one of ``tasks`` is done or one of ``events`` is set, or at ``deadline``."""
    if any(task.done() for task in tasks) or any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(
            [*tasks, *waiters],
            timeout=max(0.0, deadline - clock()),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _discover(node: PeerNode, session: SwarmSession) -> None:
    """FIND at the tracker, then wake the session's loop to connect to the peers found."""
    await node.discover(session)
    session.chunk_arrived.set()


async def _push_to(node: PeerNode, session: SwarmSession, targets: list[RemotePeer] | None) -> None:
    with contextlib.suppress(PPSPError, HttpClientError, asyncio.TimeoutError, OSError):
        await node.push_map(session, targets)


async def _connect(node: PeerNode, session: SwarmSession, remote: RemotePeer) -> None:
    try:
        await node.connect(session, remote)
        live = session.live
        if live is not None and remote.properties.get(SOURCE_PROPERTY) == "1":
            live.source_peer_ids.add(remote.peer_id)
    except EXCHANGE_ERRORS:
        remote.standing.fail()
    finally:
        remote.connecting = False
        session.chunk_arrived.set()


# -- the viewer -------------------------------------------------------------------------------


class LiveViewer:
    """A viewer of a live stream: the I/O side of its :class:`LiveViewerPolicy`.

    It runs the policy on a :class:`~ppsp.peer.net.loop.SessionLoop` (the loop the stored
    download runs on): it connects to peers, fetches chunk envelopes, pushes and pulls chunk
    maps, asks the tracker for peers and hands played chunks to the outputs, turning what
    happens into events for the policy.  It decides nothing itself.
    """

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
        timing: LiveTiming | None = None,
    ) -> None:
        self.node = node
        self.session = session
        self.description = description
        self.outputs = outputs
        self.clock = clock
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
        timing = (timing or LiveTiming())._replace(no_progress_timeout=no_progress_timeout)
        self.policy = LiveViewerPolicy(
            session.peers,
            peer_id=node.peer_id,
            description=description,
            window=self.live.window,
            playback=self.playback,
            now=clock(),
            timing=timing,
        )
        self.loop = SessionLoop(self.policy, clock=clock, wake=session.chunk_arrived)
        self.failure: str | None = None
        self.ppspp: LivePpsppEndpoint | None = None
        """The PPSPP socket chunks are fetched from (and served again) over, for peers whose
        negotiated transport is PPSPP (``ppsp watch --transport ppspp``), or None."""

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
        playing = asyncio.ensure_future(self.loop.run(self._execute))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({playing, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (playing, stopped):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await playing
            self.loop.close()
        if playing.done() and not playing.cancelled():
            end = playing.result()
            if isinstance(end, Failed):
                raise PPSPError(end.reason)

    def chunk_played(self, action: PlayChunk) -> None:
        """Called after each chunk went to the outputs, in playing order: a hook for what
        plays the stream besides them (the watch page's HLS playlist).  Does nothing here."""

    # -- actions -------------------------------------------------------------------------------

    def _execute(self, action: Action) -> bool:
        """Carry out one action; True for the one that ends watching."""
        node, session, loop = self.node, self.session, self.loop
        if isinstance(action, PlayChunk):
            self.outputs.play(action.payload, start=action.start)
            self.chunk_played(action)
        elif isinstance(action, FetchChunk):
            log.debug("asking chunk %d of %s", action.index, action.peer)
            remote = session.remotes.get(action.peer)
            if remote is None or remote.offer is None:
                self._handle(ChunkFailed(action.peer, action.index))
            else:
                loop.start(
                    self._fetch(remote, action.index),
                    self._fetched,
                    key=(action.peer, action.index),
                )
        elif isinstance(action, CancelChunk):
            log.debug("giving up chunk %d at %s (%s)", action.index, action.peer, action.reason)
            loop.cancel((action.peer, action.index))
        elif isinstance(action, PushMap):
            peers = action.peers
            targets = None if peers is None else [session.remotes[p] for p in peers]
            if targets is not None:  # a peer reached over UDP only speaks no peer protocol
                targets = [r for r in targets if not node.udp.is_udp_only(session, r)]
            node.spawn(_push_to(node, session, targets))
        elif isinstance(action, PullMap):
            remote = session.remotes.get(action.peer)
            if remote is not None:
                loop.start(self._pull(remote), self._handle)
        elif isinstance(action, Connect):
            remote = session.remotes.get(action.peer)
            if remote is not None:
                loop.start(self._connect(remote), self._handle)
        elif isinstance(action, FindPeers):
            loop.start(find_peers(node, session, via_peers=action.via_peers), self._handle)
        elif isinstance(action, FindHolders):
            loop.start(self._find_holders(action.start_index), self._handle)
        elif isinstance(action, BanPeer):
            level = logging.WARNING if action.reason == "forged" else logging.DEBUG
            log.log(level, "peer %s banned (%s)", action.peer, action.reason)
        return isinstance(action, Done | Failed)

    def _handle(self, event: Event | None) -> None:
        if isinstance(event, PeerUnreachable):
            log.debug("peer %s unreachable", event.peer)
        if event is not None:
            self.policy.handle(event, self.clock())
            self._copy_counts()

    def _fetched(self, event: Event) -> None:
        if not isinstance(event, LiveChunkArrived):
            log.debug("fetch failed: %s", event)
            self._handle(event)
            return
        log.debug("chunk %d arrived from %s", event.index, event.peer)
        now = self.clock()
        kept = self.policy.arrived(event.peer, event.index, event.data, now)
        self._copy_counts()
        if kept:
            nbytes = len(event.data)
            remote = self.session.remotes.get(event.peer)
            if self.ppspp is not None and remote is not None and remote.transport == PPSPP:
                self.ppspp.serve(event.index)  # verified (its munro and its envelope): relayed
            if remote is not None:
                remote.bytes_received += nbytes
            self.session.downloaded_bytes += nbytes
            self.session.arrivals.append((now, event.peer, nbytes))

    def _copy_counts(self) -> None:
        self.live.forged_rejected = self.policy.forged_rejected
        self.live.stale_rejected = self.policy.stale_rejected
        self.live.source_peer_ids = self.policy.sources

    async def _fetch(self, remote: RemotePeer, index: int) -> Event:
        """GET one chunk envelope (the policy gives up on it at its deadline)."""
        if remote.transport == PPSPP:
            return await self._fetch_ppspp(remote, index)
        try:
            timeout = self.policy.timing.fetch_timeout
            data = await _get_envelope(self.node, self.session, remote, index, timeout)
        except TimeoutError:  # silence: the policy's stall rule judges the peer
            return ChunkFailed(remote.peer_id, index, stalled=True)
        except PeerBusy as exc:  # it serves others first: asked again later
            return ChunkFailed(remote.peer_id, index, busy=True, retry_after=exc.retry_after)
        except (PPSPError, HttpClientError, OSError, ConnectionError):
            return ChunkFailed(remote.peer_id, index)
        return LiveChunkArrived(remote.peer_id, index, data)

    async def _fetch_ppspp(self, remote: RemotePeer, index: int) -> Event:
        """One live chunk over PPSPP, verified against the source's signed munro."""
        endpoint, offer = self.ppspp, remote.offer
        if endpoint is None or offer is None or offer.uri is None:
            return ChunkFailed(remote.peer_id, index)
        try:
            address = parse_live_offer(offer.uri, endpoint.server.swarm_id)
            async with asyncio.timeout(self.policy.timing.fetch_timeout):
                data = await endpoint.fetch(address, index)
        except IntegrityError:  # a forged signature or chunk: banned at once
            return ChunkFailed(remote.peer_id, index, corrupt=True)
        except TimeoutError:
            return ChunkFailed(remote.peer_id, index, stalled=True)
        except (ChunkTransferError, ValueError, OSError):
            return ChunkFailed(remote.peer_id, index)
        return LiveChunkArrived(remote.peer_id, index, data)

    async def _connect(self, remote: RemotePeer) -> Event:
        # A peer behind NAT (it registered a REFLEXIVE PPSPP address) is tried over UDP at
        # once, beside HTTP: its HTTP address is likely private, and an exchange with it can
        # take the whole HTTP timeout to fail.
        early = self._start_reach(remote) if remote.standing.behind_nat else None
        connecting = asyncio.ensure_future(self.node.connect(self.session, remote))
        try:
            return await self._connected(remote, connecting, early)
        finally:  # given up (the viewer stops): neither attempt outlives it
            connecting.cancel()
            if early is not None:
                early.cancel()

    async def _connected(
        self,
        remote: RemotePeer,
        connecting: asyncio.Future[None],
        early: asyncio.Future[tuple[str, int]] | None,
    ) -> Event:
        """The outcome of connecting to ``remote``: over HTTP (``connecting``), or over UDP
        only (``early``, started beside it for a peer behind NAT, or after HTTP failed)."""
        if early is not None:
            racing: set[asyncio.Future[Any]] = {connecting, early}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if not connecting.done() and not early.cancelled() and early.exception() is None:
                # The UDP path answered first: no need to wait for HTTP to fail.
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError, *EXCHANGE_ERRORS):
                    await connecting
                if await self._reached_over_udp(remote, early):
                    return PeerConnected(remote.peer_id, None, source=False)
                return PeerUnreachable(remote.peer_id)
        try:
            await connecting
        except EXCHANGE_ERRORS as exc:
            log.debug("peer %s not reached over HTTP: %r", remote.peer_id, exc)
            reach = early if early is not None else self._start_reach(remote)
            if reach is None or not await self._reached_over_udp(remote, reach):
                return PeerUnreachable(remote.peer_id)
        else:
            if early is not None:
                early.cancel()  # reached over HTTP (a channel that opened meanwhile idles out)
        source = remote.properties.get(SOURCE_PROPERTY) == "1"
        return PeerConnected(remote.peer_id, remote.standing.advertised_rate, source=source)

    def _start_reach(self, remote: RemotePeer) -> asyncio.Future[tuple[str, int]] | None:
        """Start reaching ``remote`` over PPSPP alone: a live channel whose handshake goes to
        each of its PPSPP candidates (of the socket's family) until one answers, for up to
        :data:`UDP_REACH_TIMEOUT` s; None without a live PPSPP socket or candidates."""
        endpoint = self.ppspp
        if endpoint is None or endpoint.receiver_config is None:
            return None
        family_v6 = ":" in endpoint.address[0]
        candidates = [a for a in ppspp_candidates(remote.info) if (":" in a[0]) == family_v6]
        if not candidates:
            return None
        config = dataclasses.replace(endpoint.receiver_config, handshake_timeout=UDP_REACH_TIMEOUT)
        log.debug("reaching peer %s over PPSPP, at %s", remote.peer_id, candidates)
        reach = asyncio.ensure_future(endpoint.reach(candidates, config))
        # Read even when HTTP won and it was dropped (no "never retrieved" warning).
        reach.add_done_callback(lambda f: f.cancelled() or f.exception())
        return reach

    async def _reached_over_udp(
        self, remote: RemotePeer, reach: asyncio.Future[tuple[str, int]]
    ) -> bool:
        """A peer whose HTTP exchange failed (behind NAT) is reached over PPSPP alone when
        ``reach`` succeeds: its offer is then the answering address, its chunk map what the
        channel's HAVEs name (:meth:`_pull`), and no peer protocol message goes to it."""
        endpoint = self.ppspp
        assert endpoint is not None
        try:
            address = await reach
        except (ChunkTransferError, OSError) as exc:
            log.debug("peer %s not reached over PPSPP: %s", remote.peer_id, exc)
            return False
        swarm = endpoint.server.swarm_id
        self.node.udp.mark_udp_only(self.session, remote)
        remote.offer = TransportOffer(type=PPSPP, uri=live_offer_uri(address, swarm))
        log.info("peer %s reached over PPSPP only, at %s:%d", remote.peer_id, *address)
        self._udp_map(remote)
        return True

    def _udp_map(self, remote: RemotePeer) -> None:
        """The chunk map of a peer reached over UDP only: what its channel's HAVEs name."""
        endpoint, offer = self.ppspp, remote.offer
        if endpoint is None or offer is None or offer.uri is None:
            return
        try:
            address = parse_live_offer(offer.uri, endpoint.server.swarm_id)
        except ValueError:
            return
        held = endpoint.peer_map(address, 2 * self.description.window_chunks)
        bitmap = (
            ChunkBitmap.from_indexes(held, held[-1] - held[0] + 1, held[0])
            if held
            else ChunkBitmap(0)
        )
        remote.last_map_at = self.clock()
        remote.bitmap = bitmap
        self.session.chunk_arrived.set()

    async def _pull(self, remote: RemotePeer) -> Event | None:
        if self.node.udp.is_udp_only(self.session, remote):
            self._udp_map(remote)
            return None
        try:
            await self.node.pull_map(self.session, remote)
        except EXCHANGE_ERRORS as exc:
            log.debug("map of peer %s not pulled: %r", remote.peer_id, exc)
            return PeerUnreachable(remote.peer_id)
        return None  # the map itself reached the peer's standing as it arrived

    async def _find_holders(self, first: int) -> Event:
        """A chunk-scoped FIND at the tracker: peers holding the stream from ``first``."""
        tracker = self.node.tracker
        if tracker is None:
            return FindAnswered()
        scope = (RepresentationScope(representation_id=LIVE_REPRESENTATION, start_index=first),)
        with contextlib.suppress(PPSPError, HttpClientError, asyncio.TimeoutError):
            listed = await tracker.find(self.session.swarm_id, content_group=scope)
            added = self.node.add_peers(self.session, listed)
            return FindAnswered(tuple(remote.peer_id for remote in added))
        return FindAnswered()


async def _pull(node: PeerNode, session: SwarmSession, remote: RemotePeer) -> None:
    try:
        await node.pull_map(session, remote)
    except EXCHANGE_ERRORS:
        if remote.standing.fail():
            log.debug("peer %s banned (failures)", remote.peer_id)


async def _get_envelope(
    node: PeerNode, session: SwarmSession, remote: RemotePeer, index: int, timeout: float
) -> bytes:
    """GET one live chunk envelope over the negotiated HTTP transport."""
    http = node.http
    assert remote.offer is not None
    url = remote.offer.chunk_url(index, LIVE_REPRESENTATION)
    limit = Timeout(total=timeout)
    async with http.get(url, headers=node.request_headers, timeout=limit) as answer:
        if answer.status in BUSY_STATUSES:
            raise PeerBusy(
                f"{remote.peer_id} busy ({answer.status}) for {index}",
                retry_after_seconds(answer.headers.get("Retry-After")),
            )
        if answer.status != 200:
            raise ConnectionError(f"{remote.peer_id} answered {answer.status} for {index}")
        return await read_bounded(answer.content, 8 << 20, limiter=node.download_limiter)
