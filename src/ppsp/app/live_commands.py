"""What ``ppsp live`` and the live half of ``ppsp watch`` do, as coroutines.

The source cuts its input into signed chunks and feeds the swarm; a viewer plays the stream
at a local URL (one continuous response at ``/stream``; for MPEG-TS also HLS at
``/live.m3u8``, see :mod:`ppsp.app.hls`; the watch page at ``/``) and, with ``-o``, into a
file or standard output.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.app import nat_setup
from ppsp.app.commands import PeerOptions, fail, write_report
from ppsp.app.hls import LiveSegmenter, parse_segment_name
from ppsp.app.player import serve_player
from ppsp.app.web import WatchPage, live_figures
from ppsp.errors import PPSPError
from ppsp.peer.download.events import PlayChunk
from ppsp.peer.live import LiveDescription, QoE, load_key
from ppsp.peer.live.identity import create_key, default_key_path, prepare_key_directory
from ppsp.peer.net.live_io import LiveInput, LiveOutputs, describe_input_error
from ppsp.peer.net.livenode import LiveSourceRunner, LiveViewer
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint
from ppsp.peer.net.ppspp_nat import PpsppPunch, PpsppStun
from ppsp.peer.net.ppspp_relay import PpsppRelay, TurnServer
from ppsp.peer.net.session import SwarmSession
from ppsp.peer.net.turn import TurnRelay
from ppsp.process.signals import stop_event


async def watch_live(
    node: PeerNode,
    session: SwarmSession,
    description: LiveDescription,
    stop: asyncio.Event,
    player_host: str,
    player_port: int | None,
    output: Path | None,
    timeout: float,
    report: Path | None,
    on_url: Callable[[str], None] | None,
    *,
    ppspp_socket: tuple[socket.socket, tuple[str, int] | None] | None = None,
    stun: tuple[str, int] | None = None,
    turn_relay: TurnRelay | None = None,
) -> int:
    """Play a live stream at the player URL (and into ``output``) until it ends or is
    stopped.  With PPSPP among the node's transports, ``ppspp_socket`` is the UDP socket
    bound (and registered) before the join, with its reflexive address: the stream is fetched
    and served again on it, its NAT binding kept alive with ``stun``, and a viewer behind NAT
    punches towards the stream's peers.  ``turn_relay`` (allocated and registered before the
    join, ``watch --turn``) serves the stream again through the relay too, to the peers the
    stream's FINDs list; it is released on exit."""
    to_stdout = output is not None and str(output) == "-"
    sink: BinaryIO | None = None
    if to_stdout:
        sink = sys.stdout.buffer
    elif output is not None:
        sink = output.open("wb")
    outputs = LiveOutputs(sink)
    segmenter = LiveSegmenter(description.chunk_ms) if offers_hls(description) else None
    viewer = HlsLiveViewer(
        node, session, description, outputs, segmenter=segmenter, no_progress_timeout=timeout
    )
    player = LivePlayerEndpoint(outputs, description.media_type, viewer=viewer)
    from ppsp.peer.net.transport import PPSPP

    keeper: PpsppStun | None = None
    punch: PpsppPunch | None = None
    relay: PpsppRelay | None = None
    if PPSPP in node.transport_preference:
        sock, reflexive = ppspp_socket or (None, None)
        try:
            viewer.ppspp = await serve_live_ppspp(node, session, description, 0, sock=sock)
        except OSError as exc:
            await nat_setup.release(sock, turn_relay)
            await node.stop()
            return fail(f"cannot open a PPSPP socket on {node.host}: {exc.strerror or exc}")
        if turn_relay is not None:
            relay = nat_setup.live_relay(node, viewer.ppspp, turn_relay)
        keeper, punch = await nat_setup.live_nat(
            node, session.swarm_id, viewer.ppspp, stun, reflexive, relay
        )
    elif turn_relay is not None:
        await turn_relay.close()
    try:
        runner, url = await serve_player(
            player.app(), player_host, player_port, to_stderr=to_stdout, hls=player.hls
        )
    except OSError as exc:
        close_live_nat(keeper, punch)
        if relay is not None:
            await relay.close()
        if viewer.ppspp is not None:
            viewer.ppspp.close()
        await node.stop()
        return fail(f"cannot listen on {player_host}:{player_port}: {exc.strerror or exc}")
    if on_url is not None:
        on_url(url)
    code = 0
    try:
        await viewer.run(stop)
        if viewer.ended:
            print("the live stream ended", file=sys.stderr, flush=True)
    except PPSPError as exc:
        code = fail(str(exc))
    finally:
        viewer.finish()
        outputs.close()
        await runner.cleanup()
        print(format_qoe(viewer.qoe(), session), file=sys.stderr, flush=True)
        close_live_nat(keeper, punch)
        if relay is not None:
            await relay.close()  # its peers told, the allocation released
        if viewer.ppspp is not None:
            viewer.ppspp.close()
        await node.stop()
        write_report(node, report, ppspp_report(viewer.ppspp, keeper, punch, relay))
        if sink is not None and not to_stdout:
            sink.close()
    return code


def format_qoe(qoe: QoE, session: SwarmSession) -> str:
    """The one-line quality-of-experience summary a viewer prints when it stops."""
    continuity = qoe.continuity_index
    parts = [
        "startup delay " + ("-" if qoe.startup_delay is None else f"{qoe.startup_delay:.2f} s"),
        "continuity " + ("-" if continuity is None else f"{continuity:.4f}"),
        f"played {qoe.chunks_played}",
        f"skipped {qoe.chunks_skipped}",
        "delay behind source "
        + ("-" if qoe.delay_behind_source is None else f"{qoe.delay_behind_source:.2f} s"),
        f"from source {qoe.bytes_from_source} B",
        f"from peers {qoe.bytes_from_peers} B",
        f"uploaded {session.uploaded_bytes} B",
    ]
    return "qoe: " + ", ".join(parts)


HLS_MEDIA_TYPE = "video/mp2t"
"""The streams offered as HLS: MPEG-TS, whose chunks the source cuts at key frames."""

PLAYLIST_WAIT_S = 20.0
"""How long a request for the playlist waits for its first segment (a viewer that just
started) before it is answered 503 (a player asks again)."""


def offers_hls(description: LiveDescription) -> bool:
    """Whether the stream is offered as HLS (MPEG-TS only)."""
    return description.media_type.split(";", 1)[0].strip().lower() == HLS_MEDIA_TYPE


class HlsLiveViewer(LiveViewer):
    """A live viewer that also hands each chunk it plays, with its index and source
    timestamp, to an HLS segmenter (:class:`~ppsp.app.hls.LiveSegmenter`).

    The outputs get the payload only; the segmenter needs the index (a gap is a skipped chunk)
    and the timestamp (a segment's duration), which the played chunk's action carries and the
    window's envelope holds.
    """

    def __init__(
        self,
        node: PeerNode,
        session: SwarmSession,
        description: LiveDescription,
        outputs: LiveOutputs,
        *,
        segmenter: LiveSegmenter | None,
        no_progress_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            node, session, description, outputs, no_progress_timeout=no_progress_timeout
        )
        self.segmenter = segmenter
        self.segments_changed = asyncio.Event()
        """Set (and cleared) when a chunk reached the segmenter: wakes waiting playlists."""

    def chunk_played(self, action: PlayChunk) -> None:
        """A chunk was played: the playlist's segmenter gets it."""
        if self.segmenter is not None:
            window = self.live.window
            envelope = window.get(action.index) if action.index in window else None
            self.segmenter.played(
                action.index,
                action.payload,
                timestamp_ms=None if envelope is None else envelope.timestamp_ms,
                start=action.start,
                end=envelope is not None and envelope.end,
            )
            self._wake()

    def finish(self) -> None:
        """The viewer stopped: the playlist gets its last segment and says it ended."""
        if self.segmenter is not None:
            self.segmenter.finish()
            self._wake()

    def _wake(self) -> None:
        self.segments_changed.set()
        self.segments_changed.clear()

    def figures(self) -> dict[str, object]:
        """This viewer's figures for the watch page (``/stats.json``)."""
        return live_figures(self.session, self.qoe(), self.playback.state, self.segmenter)


class LivePlayerEndpoint:
    """The local HTTP endpoint for a live stream: one continuous response per player
    (``/stream``), the HLS playlist and segments of an MPEG-TS stream (``/live.m3u8``,
    ``/segments/INDEX.ts``), and the watch page (``/``, ``/stats.json``, ``/static/*``)."""

    def __init__(
        self, outputs: LiveOutputs, media_type: str, *, viewer: HlsLiveViewer | None = None
    ) -> None:
        self.outputs = outputs
        self.media_type = media_type
        self.viewer = viewer

    @property
    def hls(self) -> bool:
        """Whether the stream is offered as HLS."""
        return self.viewer is not None and self.viewer.segmenter is not None

    def app(self) -> web.Application:
        """The aiohttp application serving ``/stream`` (and, with a viewer, the HLS playlist,
        its segments and the watch page)."""
        app = web.Application()
        app.router.add_route("GET", "/stream", self.stream)
        viewer = self.viewer
        if viewer is not None:
            app.router.add_get("/live.m3u8", self.playlist)
            app.router.add_get("/segments/{name}", self.segment)
            WatchPage(
                kind="live",
                swarm_id=lambda: viewer.session.swarm_id,
                figures=viewer.figures,
                hls=self.hls,
            ).add_routes(app)
        return app

    def _segmenter(self) -> tuple[HlsLiveViewer, LiveSegmenter]:
        viewer = self.viewer
        if viewer is None or viewer.segmenter is None:
            raise web.HTTPNotFound(text="HLS is offered for MPEG-TS streams only: play /stream")
        return viewer, viewer.segmenter

    async def playlist(self, request: web.Request) -> web.Response:
        """The live media playlist; waits up to PLAYLIST_WAIT_S for its first segment."""
        viewer, segmenter = self._segmenter()
        text = segmenter.playlist()
        if text is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PLAYLIST_WAIT_S):
                    while (text := segmenter.playlist()) is None:
                        await viewer.segments_changed.wait()
        if text is None:
            raise web.HTTPServiceUnavailable(
                text="no segment yet", headers={"Retry-After": "1", "Cache-Control": "no-store"}
            )
        return web.Response(
            body=text.encode("utf-8"),  # RFC 8216 section 4: UTF-8, and no charset parameter
            content_type="application/vnd.apple.mpegurl",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    async def segment(self, request: web.Request) -> web.Response:
        """One segment of the playlist (404 when the name is not ``INDEX.ts`` or the segment
        is not kept: not made yet, or gone)."""
        _, segmenter = self._segmenter()
        index = parse_segment_name(request.match_info["name"])
        data = None if index is None else segmenter.segment(index)
        if data is None:
            raise web.HTTPNotFound(text="no such segment")
        return web.Response(
            body=data,
            content_type=HLS_MEDIA_TYPE,
            headers={"Cache-Control": "max-age=60", "X-Content-Type-Options": "nosniff"},
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Stream every chunk played from now on, until the viewer stops or the player leaves."""
        queue = self.outputs.subscribe()
        response = web.StreamResponse()
        response.content_type = self.media_type
        response.headers["Cache-Control"] = "no-store"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while (payload := await queue.get()) is not None:
                await response.write(payload)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            self.outputs.clients.discard(queue)
        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
            await response.write_eof()
        return response


async def live_main(
    options: PeerOptions,
    *,
    input_path: str | None = "-",
    chunk_ms: int = 500,
    window_s: int = 30,
    key_path: Path | None = None,
    name: str = "live",
    ppspp_port: int | None = None,
    stun: tuple[str, int] | None = None,
    turn: TurnServer | None = None,
) -> int:
    """Run a live source: print the swarm ID first, then stream until the input ends (or a
    stop signal), announce the end, serve the last chunks briefly and return 0 (1 when the
    input could not be read).  With ``ppspp_port``, the stream is also served over PPSPP
    (RFC 7574, signed munros) on that UDP port, registered at the tracker (HOST, and with
    ``stun`` the REFLEXIVE address that STUN server tells, kept alive), and with ``turn``
    through a relay on that TURN server too (registered as a PROXY address after them; the
    source goes on without one when the server refuses or does not answer)."""
    stop = stop_event()
    try:
        live_input = LiveInput.open(input_path)
    except OSError as exc:
        return fail(describe_input_error(input_path, exc))
    try:
        key, key_file, created = source_key(key_path, name)
    except (OSError, PPSPError) as exc:
        live_input.close()
        return fail(f"cannot use the source key: {exc}")
    report = options.report
    node = options.node(clock=time.time, report_interval=5.0)
    runner = LiveSourceRunner(node, key, name=name, chunk_ms=chunk_ms, window_s=window_s)
    keeper: PpsppStun | None = None
    punch: PpsppPunch | None = None
    sock: socket.socket | None = None
    turn_relay: TurnRelay | None = None
    relay: PpsppRelay | None = None
    try:
        await node.start()
        if ppspp_port is not None:
            sock, reflexive = await nat_setup.ppspp_socket(node.host, ppspp_port, stun)
            if turn is not None:
                turn_relay = await nat_setup.allocate_relay(turn, node.host)
            description = runner.source.description
            runner.ppspp = await serve_live_ppspp(
                node, runner.session, description, 0, signer=key.sign, sock=sock
            )
            node.advertise_ppspp(runner.ppspp.address[1], reflexive)  # with the join below
            nat_setup.advertise_relay(node, turn_relay)  # after HOST and REFLEXIVE
            if turn_relay is not None:
                relay = nat_setup.live_relay(node, runner.ppspp, turn_relay)
            keeper, punch = await nat_setup.live_nat(
                node, runner.swarm_id, runner.ppspp, stun, reflexive, relay
            )
        await runner.announce()
    except (OSError, PPSPError) as exc:
        live_input.close()
        close_live_nat(keeper, punch)
        if relay is not None:
            await relay.close()
        elif turn_relay is not None:
            await turn_relay.close()
        if runner.ppspp is not None:
            runner.ppspp.close()
        else:
            nat_setup.close_socket(sock)
        await node.stop(disconnect=False)
        return fail(f"cannot start the live source: {exc}")
    print(runner.swarm_id, flush=True)
    made = "made a new source key in" if created else "using the source key in"
    print(f"{made} {key_file}", file=sys.stderr, flush=True)
    print(f"live source at {node.base_url}", file=sys.stderr, flush=True)
    if runner.ppspp is not None:
        host, port = runner.ppspp.address
        print(
            f"offering PPSPP at udp {host}:{port} (swarm ID"
            f" {runner.ppspp.server.swarm_id.hex()}, signed munros)",
            file=sys.stderr,
            flush=True,
        )
    failure: str | None = None
    try:
        failure = await runner.run(live_input, stop)
    finally:
        print(
            f"live source stopped after {runner.chunks_produced} chunks"
            f" ({runner.start_points} start points)",
            file=sys.stderr,
            flush=True,
        )
        close_live_nat(keeper, punch)
        if relay is not None:
            await relay.close()  # its peers told, the allocation released
        if runner.ppspp is not None:
            runner.ppspp.close()
        await node.stop()
        write_report(node, report, ppspp_report(runner.ppspp, keeper, punch, relay))
    return 0 if failure is None else fail(failure)


async def serve_live_ppspp(
    node: PeerNode,
    session: SwarmSession,
    description: LiveDescription,
    port: int,
    *,
    signer: Callable[[bytes], bytes] | None = None,
    sock: socket.socket | None = None,
) -> LivePpsppEndpoint:
    """Serve ``description``'s stream over PPSPP on UDP ``port`` of the node's host (0: any
    free port; with ``sock``, on that bound socket instead) and offer it in
    TRANSPORT_NEGOTIATION: the source (``signer``, its key) signs the munros; a viewer
    re-serves what its channels verified (and fetches over the same socket).  The chunk
    bytes sent keep to the node's upload cap and count in ``session``'s report, attributed
    to the PeerIDs listed at the channels' addresses."""
    from ppsp.peer.net.limiter import upload_pacer
    from ppsp.peer.net.ppspp_uploads import PpsppUploads
    from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, live_ppspp_swarm_id
    from ppsp.peer.ppspp.live_receiver import LiveReceiverConfig
    from ppsp.peer.ppspp.live_server import LiveServer, LiveServerConfig

    swarm = live_ppspp_swarm_id(description.public_key)
    # Chunks last half a nominal chunk or more: twice the nominal count spans the window.
    window = 2 * description.window_chunks
    config = LiveServerConfig(corrupt_data=node.corrupt_uploads)
    # --upload-rate binds the DATA too, from the bucket HTTP draws on (its clock, the node's,
    # is Unix time here: the live engines' ``now``).
    pacer = upload_pacer(node.upload_limiter)
    server = LiveServer(swarm, window_chunks=window, signer=signer, config=config, pacer=pacer)
    receiving = (
        None
        if signer is not None
        else LiveReceiverConfig(window_s=description.window_s, window_chunks=window)
    )
    endpoint = await LivePpsppEndpoint.open(node.host, port, server, receiving, sock=sock)
    node.offer_ppspp(description.swarm_id, endpoint.address[1], swarm, LIVE_CHUNK_SIZE)
    # Each DATA counted for the PeerID the tracker lists at its channel's address, the rest
    # unattributed (as stored content's PPSPP uploads).
    tracker = node.tracker
    endpoint.uploads = PpsppUploads(
        session, None if tracker is None else (lambda: tracker.find(session.swarm_id)), [swarm]
    )
    endpoint.uploads.attach(server)
    return endpoint


def ppspp_report(
    endpoint: LivePpsppEndpoint | None,
    keeper: PpsppStun | None = None,
    punch: PpsppPunch | None = None,
    relay: PpsppRelay | None = None,
) -> dict[str, object] | None:
    """The ``--report`` file's ``"ppspp_live"`` entry (the PPSPP server's counts), and the
    socket's ``"stun"`` and ``"punch"`` counts, and the TURN relay's ``"relay"``, when they
    ran."""
    if endpoint is None:
        return None
    uploads = {} if endpoint.uploads is None else endpoint.uploads.counts()
    extra: dict[str, object] = {
        "ppspp_live": {
            **endpoint.server.stats,
            "forged_refused": endpoint.forged,
            **{f"attribution_{key}": value for key, value in uploads.items()},
        }
    }
    if keeper is not None:
        extra["stun"] = keeper.counts()
    if punch is not None:
        extra["punch"] = punch.counts()
    if relay is not None:
        extra["relay"] = relay.counts()
    return extra


def close_live_nat(keeper: PpsppStun | None, punch: PpsppPunch | None) -> None:
    """Stop a live PPSPP socket's STUN keep-alive and punching (those that run)."""
    if keeper is not None:
        keeper.close()
    if punch is not None:
        punch.close()


def source_key(path: Path | None, name: str) -> tuple[Ed25519PrivateKey, Path, bool]:
    """Load the source key, or make and save one; returns (key, file, whether it is new).

    Without ``path``, the key of the stream called ``name`` in the user's data directory
    (:func:`~ppsp.peer.live.identity.default_key_path`).
    """
    if path is None:
        path = default_key_path(name)
        prepare_key_directory(path)
    if path.exists():
        return load_key(path), path, False
    try:
        return create_key(path), path, True
    except FileExistsError:  # another source made it a moment ago
        return load_key(path), path, False
