"""What the peer commands (``ppsp seed``, ``ppsp get``, ``ppsp watch``) do, as coroutines.

The click definitions in :mod:`ppsp.app.cli` parse options and call these; the live source and the
live half of ``watch`` are in :mod:`ppsp.app.live_commands`.  Each returns the
process exit code; expected failures are one line on standard error, never a traceback.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from ppsp.app import nat_setup
from ppsp.errors import PPSPError
from ppsp.peer.download.picker import PickerConfig
from ppsp.peer.net.chunkstore import part_path
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.session import DownloadFailed, SwarmSession
from ppsp.peer.upload.connections import MAX_CONNECTIONS_PER_HOST
from ppsp.peer.upload.fair import DEFAULT_HOST_SHARE
from ppsp.process.signals import Interrupted, stop_event, until_stopped
from ppsp.tracker.net.client import token_subject
from ppsp.wire.tracker import Encoding

# Imported where they are used, not here: the player endpoint (``watch`` and ``get -o -``),
# the live modules (a swarm that turns out to be live) and rich (a progress bar on a
# terminal); tests/app/test_startup.py checks that ``get`` and ``seed`` do not load them.
if TYPE_CHECKING:
    import ssl

    from rich.progress import Progress

    from ppsp.peer.net.ppspp_nat import PpsppPunch, PpsppStun
    from ppsp.peer.net.ppspp_relay import PpsppRelay, TurnServer
    from ppsp.peer.net.ppspp_serving import PartialServing
    from ppsp.peer.net.ppspp_uploads import PpsppUploads
    from ppsp.peer.net.turn import TurnRelay
    from ppsp.peer.ppspp.partial import PartialContent

WATCH_WINDOW_CHUNKS = 8
"""Chunks ahead of the play position fetched in playback order (the deadline window)."""

STUN_REGISTER_WAIT = 2.0
"""Seconds ``get --stun`` waits for the first reflexive address before it registers at the
tracker (the registration carries the PPSPP addresses; without an answer by then, HOST only)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOptions:
    """What every peer command is told: its tracker, where it serves, its limits and report.

    ``tls`` holds the trust anchors for an ``https://`` tracker (the system's when None);
    ``token``, a bearer token for the tracker, also gives the peer its PeerID (the token's
    subject, see :attr:`peer_id`).
    """

    tracker_url: str
    host: str = "127.0.0.1"
    port: int = 0
    advertise: tuple[str, int | None] | None = None
    encoding: Encoding = Encoding.XML
    upload_rate: float | None = None
    download_rate: float | None = None
    report: Path | None = None
    corrupt_uploads: bool = False
    disclose_stats: bool = False
    host_share: float = DEFAULT_HOST_SHARE
    connections_per_host: int = MAX_CONNECTIONS_PER_HOST
    tls: ssl.SSLContext | None = None
    token: str | None = None

    @property
    def peer_id(self) -> str | None:
        """The PeerID the token was issued for; None without a token (the node picks one)."""
        return None if self.token is None else token_subject(self.token)

    def node(self, **settings: Any) -> PeerNode:
        """A peer node with these options (and any further PeerNode settings)."""
        if self.token is not None:
            settings.setdefault("peer_id", self.peer_id)
        node = PeerNode(
            tracker_url=self.tracker_url,
            tracker_tls=self.tls,
            tracker_token=self.token,
            host=self.host,
            port=self.port,
            advertise=self.advertise,
            encoding=self.encoding,
            upload_rate=self.upload_rate,
            download_rate=self.download_rate,
            disclose_stats=self.disclose_stats,
            host_share=self.host_share,
            connections_per_host=self.connections_per_host,
            **settings,
        )
        node.corrupt_uploads = self.corrupt_uploads
        return node


def write_report(node: PeerNode, path: Path | None, extra: dict[str, Any] | None = None) -> None:
    """Write every session's figures as JSON to ``path`` (atomically), if a path is given;
    ``extra`` adds top-level entries (``ppsp seed --ppspp-port``: its PPSPP engine's counts).

    Times in the report are the node's monotonic clock; ``wall_offset`` turns them into Unix
    time, so that reports of several processes can be put on one time line.
    """
    if path is None:
        return
    document = {
        "peer_id": node.peer_id,
        "wall_offset": time.time() - node.clock(),
        "sessions": [session.report(node.peer_id) for session in node.sessions.values()],
        **(extra or {}),
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(document))
    temporary.replace(path)


def fail(message: str) -> int:
    """Print ``ppsp: message`` on standard error and return the failure exit code."""
    print(f"ppsp: {message}", file=sys.stderr, flush=True)
    return 1


class ProgressReporter:
    """Progress of a download: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, *, interval: float = 1.0) -> None:
        self.stream = stream
        self.interval = interval
        self.interactive = stream.isatty()
        self._progress: Progress | None = None
        self._task: object = None
        self._last = 0.0

    def __call__(self, session: SwarmSession) -> None:
        """Called on every stored chunk."""
        if session.description is None:
            return
        total = session.description.size
        done = min(total, len(session.bitmap()) * session.description.chunk_size)
        if session.complete:
            done = total
        if self.interactive:
            if self._progress is None:
                # Imported here: rich costs start-up time that only a terminal user sees paid.
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                self._progress = Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    transient=False,
                )
                self._progress.start()
                self._task = self._progress.add_task(session.swarm_id[:12], total=total)
            self._progress.update(self._task, completed=done)  # type: ignore[arg-type]
            return
        now = time.monotonic()
        if now - self._last >= self.interval or session.complete:
            self._last = now
            percent = 100.0 * done / total if total else 100.0
            peers = sum(1 for r in session.remotes.values() if r.offer is not None)
            print(
                f"{session.swarm_id[:12]} {percent:5.1f}% {done}/{total} bytes, {peers} peers",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        """Stop the bar, if one is shown."""
        if self._progress is not None:
            self._progress.stop()


def check_output(output: Path | None, *, force: bool) -> str | None:
    """Why ``-o output`` cannot be used (checked before any network), or None when it can.

    A file already there is kept unless ``force``: a download writes ``OUTPUT.part`` and
    replaces OUTPUT only once every chunk is verified.
    """
    if output is None or str(output) == "-":
        return None
    if output.is_dir():
        return f"{output} is a directory"
    if output.exists() and not force:
        return f"{output} already exists: give --force to replace it"
    if not output.parent.is_dir():
        return f"cannot write {output}: no directory {output.parent}"
    return None


def describe_seeding(path: Path, session: SwarmSession, node: PeerNode) -> str:
    """The line ``ppsp seed`` prints once it serves: what, how cut, where."""
    description = session.description
    assert description is not None
    rep = description.representation()
    return (
        f"seeding {path}: {_size(description.size)} ({description.media_type}) in "
        f"{rep.chunk_count} chunks of {_size(description.chunk_size)}, at {node.base_url}"
    )


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{count} bytes"


async def seed_main(
    path: Path,
    options: PeerOptions,
    *,
    chunk_size: int | None = None,
    ppspp_port: int | None = None,
    merkle_hash: str = "sha1",
    ppspp_chunk_size: int | None = None,
    stun: tuple[str, int] | None = None,
    turn: TurnServer | None = None,
) -> int:
    """Seed ``path``: print the swarm ID first, serve until SIGINT/SIGTERM, then DISCONNECT.

    With ``ppspp_port``, the file is also served over PPSPP (RFC 7574, UDP) on that port, and
    its RFC 7574 root hash is printed as the second line.  ``ppspp_chunk_size`` is the PPSPP
    chunk size of both the file (default 1024, libswift's) and the swarm's representation
    offered to the swarm's peers (default 8 KiB, or the description's chunk size when
    smaller: :func:`~ppsp.peer.net.ppspp_transport.ppspp_chunk_size`).  The socket is
    registered at the tracker (HOST, and with ``stun`` the REFLEXIVE address a STUN server
    sees it at, kept alive by a Binding every 20 s).  With ``turn`` the swarm's content is
    also served through a relay on that TURN server, registered as a PROXY address, for the
    peers the swarm's FINDs list (docs/PROTOCOL.md, "NAT traversal"); the relay is released
    on exit.  PPSPP's DATA keep to the upload cap with HTTP's and are counted in the report
    for the PeerIDs the tracker lists at their channels' addresses.
    """
    stop = stop_event()
    node = options.node()
    try:
        await until_stopped(stop, node.start())
    except Interrupted:
        await node.stop(disconnect=False)
        return fail("interrupted")
    except OSError as exc:
        await node.stop(disconnect=False)
        return fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}")
    ppspp_socket = None
    turn_relay: TurnRelay | None = None
    if ppspp_port is not None:
        # Bound (and its reflexive address asked) before the registration, which carries
        # the socket's addresses; the content is served on it once hashed.
        try:
            ppspp_socket, reflexive = await until_stopped(
                stop, nat_setup.ppspp_socket(options.host, ppspp_port, stun)
            )
        except Interrupted:
            await node.stop(disconnect=False)
            return fail("interrupted")
        except OSError as exc:
            await node.stop(disconnect=False)
            why = exc.strerror or exc
            return fail(f"cannot serve {path} over PPSPP on udp port {ppspp_port}: {why}")
        if turn is not None:
            try:
                turn_relay = await until_stopped(stop, nat_setup.allocate_relay(turn, options.host))
            except Interrupted:
                nat_setup.close_socket(ppspp_socket)
                await node.stop(disconnect=False)
                return fail("interrupted")
        node.advertise_ppspp(ppspp_socket.getsockname()[1], reflexive)
        nat_setup.advertise_relay(node, turn_relay)  # after HOST and REFLEXIVE
    try:
        session = await until_stopped(stop, node.seed(path, chunk_size=chunk_size))
    except Interrupted:
        await nat_setup.release(ppspp_socket, turn_relay)
        await node.stop(disconnect=False)
        return fail("interrupted")
    except PPSPError as exc:
        await nat_setup.release(ppspp_socket, turn_relay)
        await node.stop(disconnect=False)
        return fail(f"cannot seed {path}: {exc}")
    except OSError as exc:
        await nat_setup.release(ppspp_socket, turn_relay)
        await node.stop(disconnect=False)
        return fail(f"cannot seed {path}: {exc.strerror or exc}")
    print(session.swarm_id, flush=True)
    print(describe_seeding(path, session, node), file=sys.stderr, flush=True)
    ppspp = None
    uploads: PpsppUploads | None = None
    keeper: PpsppStun | None = None
    punch: PpsppPunch | None = None
    relay: PpsppRelay | None = None
    if ppspp_port is not None:
        from ppsp.peer.net.limiter import upload_pacer
        from ppsp.peer.net.ppspp_transport import representation_content
        from ppsp.peer.net.ppspp_udp import seed_file
        from ppsp.wire.ppspp import DEFAULT_CHUNK_SIZE, MerkleHashFunction

        assert session.store is not None
        try:
            # The swarm's representation as an RFC 7574 content of small chunks (one more pass
            # over the file, in a worker thread), beside the whole file for libswift.
            swarm_content = [
                await until_stopped(
                    stop,
                    asyncio.to_thread(
                        representation_content,
                        session.store,
                        chunk_size=ppspp_chunk_size,
                        corrupt=node.corrupt_uploads,
                    ),
                )
            ]
        except Interrupted:
            await nat_setup.release(ppspp_socket, turn_relay)
            await node.stop()
            return fail("interrupted")
        except ValueError as exc:
            swarm_content = []
            print(f"PPSPP not offered to the swarm's peers: {exc}", file=sys.stderr, flush=True)
        try:
            ppspp = await until_stopped(
                stop,
                seed_file(
                    path,
                    options.host,
                    ppspp_port,
                    merkle_hash=MerkleHashFunction.from_name(merkle_hash),
                    chunk_size=ppspp_chunk_size or DEFAULT_CHUNK_SIZE,
                    contents=swarm_content,
                    sock=ppspp_socket,
                    # --upload-rate binds PPSPP's DATA too, from the bucket HTTP draws on.
                    pacer=upload_pacer(node.upload_limiter),
                ),
            )
        except Interrupted:
            await nat_setup.release(ppspp_socket, turn_relay)
            await node.stop()
            return fail("interrupted")
        except (OSError, ValueError) as exc:
            await nat_setup.release(ppspp_socket, turn_relay)
            await node.stop()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            return fail(f"cannot serve {path} over PPSPP on udp port {ppspp_port}: {reason}")
        print(ppspp.root_hash.hex(), flush=True)
        from ppsp.peer.net.ppspp_uploads import PpsppUploads

        # Each DATA counted in the session's report: for the PeerID the tracker lists at the
        # channel's address when it is the swarm's content, unattributed otherwise.
        tracker = node.tracker
        uploads = PpsppUploads(
            session,
            None if tracker is None else (lambda: tracker.find(session.swarm_id)),
            roots=[content.swarm_id for content in swarm_content],
        )
        uploads.attach(ppspp.seeder)
        host, port = ppspp.address
        if swarm_content:
            served = swarm_content[0]
            node.offer_ppspp(session.swarm_id, port, served.swarm_id, served.chunk_size)
            from ppsp.peer.net.ppspp_serving import offer_subtrees

            offer_subtrees(node, session, served)
        print(
            f"serving over PPSPP at udp {host}:{port}, root hash {ppspp.root_hash.hex()}"
            f" ({merkle_hash} Merkle tree, {ppspp.chunk_size}-byte chunks)",
            file=sys.stderr,
            flush=True,
        )
        if swarm_content:
            print(
                f"offering PPSPP to the swarm's peers at udp {host}:{port}"
                f" (root hash {swarm_content[0].swarm_id.hex()}, sha256 Merkle tree,"
                f" {swarm_content[0].chunk_size}-byte chunks)",
                file=sys.stderr,
                flush=True,
            )
        if stun is not None:
            keeper = await nat_setup.keep_stun(ppspp.server, stun, reflexive)
        if turn_relay is not None:
            relay = await nat_setup.serve_relay(
                turn_relay, swarm_content, upload_pacer(node.upload_limiter)
            )
            if relay is not None:
                uploads.attach(relay.seeder)
        punch = nat_setup.start_punching(node, session.swarm_id, ppspp.server, reflexive, relay)
    await stop.wait()
    if punch is not None:
        punch.close()
    if keeper is not None:
        keeper.close()
    if relay is not None:
        await relay.close()
    elif turn_relay is not None:
        await turn_relay.close()
    if ppspp is not None:
        ppspp.close()
    if uploads is not None:
        uploads.close()  # before the report: what is unresolved is unattributed
    await node.stop()
    extra: dict[str, Any] | None = None
    if ppspp is not None:
        extra = {"ppspp": dict(ppspp.seeder.stats)}
    if uploads is not None and extra is not None:
        extra["ppspp_attribution"] = uploads.counts()
    if keeper is not None and extra is not None:
        extra["stun"] = keeper.counts()
    if punch is not None and extra is not None:
        extra["punch"] = punch.counts()
    if relay is not None and extra is not None:
        extra["relay"] = relay.counts()
    write_report(node, options.report, extra)
    return 0


async def get_main(
    swarm_id: str,
    options: PeerOptions,
    *,
    output: Path,
    timeout: float = 30.0,
    seed_after: bool = False,
    transports: tuple[str, ...] | None = None,
    stun: tuple[str, int] | None = None,
    turn: TurnServer | None = None,
) -> int:
    """Download ``swarm_id`` into ``output`` (``-``: standard output); 0 when complete.

    ``transports`` are the chunk transports asked of peers, most preferred first (default:
    HTTP only).  With ``stun`` (and PPSPP among them) the one UDP socket PPSPP downloads use
    learns its reflexive address from that STUN server, through itself, and keeps its NAT
    mapping alive (:func:`_download_stun`).  With ``turn`` (and PPSPP among them) what the
    download holds is also served through a relay on that TURN server, registered as a
    PROXY address after the socket's, its permissions given to the peers the swarm's FINDs
    list; the relay is released on exit.

    The file is written as ``OUTPUT.part`` and renamed when every chunk is verified; an
    interrupted download keeps the ``.part`` and the same command resumes it.  To standard
    output the content is written in order, each chunk as soon as it is verified.
    """
    stop = stop_event()
    to_stdout = str(output) == "-"
    settings: dict[str, Any] = {}
    if transports:
        settings["transport_preference"] = transports
    node = (
        options.node(picker_config=PickerConfig(window=WATCH_WINDOW_CHUNKS), **settings)
        if to_stdout
        else (options.node(**settings))
    )
    progress = ProgressReporter()
    try:
        await until_stopped(stop, node.start())
    except Interrupted:
        await node.stop(disconnect=False)
        return fail("interrupted")
    except OSError as exc:
        await node.stop(disconnect=False)
        return fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}")
    keeper = None if stun is None else await nat_setup.download_stun(node, stun)
    serving = _serve_while_downloading(node, swarm_id)
    punch: PpsppPunch | None = None
    relay: PpsppRelay | None = None
    if turn is not None and serving is not None:
        # Allocated before the registration, which carries its address (up to 3.75 s when
        # the server is silent; an interruption meanwhile stops the download below).
        relay = await nat_setup.download_relay(node, serving, turn, options.host)
    if node.ppspp_endpoint is not None:
        # Registered with the first join, so that peers behind NAT can punch towards it.
        mapped = None if keeper is None else await keeper.first_mapping(STUN_REGISTER_WAIT)
        node.advertise_ppspp(node.ppspp_endpoint.address[1], mapped)
        nat_setup.advertise_relay(node, None if relay is None else relay.relay)
        if keeper is not None or relay is not None:
            # Behind NAT: punch towards the swarm's peers, as a seeder there does, so that two
            # downloading peers behind NATs meet whichever of them reaches out first; with a
            # relay, permit them on it (the same FINDs).
            punch = nat_setup.start_punching(node, swarm_id, node.ppspp_endpoint, mapped, relay)
    work: asyncio.Future[object]
    if to_stdout:
        work = asyncio.ensure_future(_download_to_stdout(node, swarm_id, timeout, progress))
    else:
        work = asyncio.ensure_future(
            node.download(swarm_id, output, no_progress_timeout=timeout, on_progress=progress)
        )
    try:
        try:
            await until_stopped(stop, work)
        except Interrupted:
            progress.close()
            if to_stdout:
                return fail("interrupted")
            return fail(f"interrupted: {part_path(output)} is kept, run again to resume")
        except (DownloadFailed, PPSPError) as exc:
            progress.close()
            return fail(str(exc))
        except BrokenPipeError:
            progress.close()
            return fail("standard output was closed")
        progress.close()
        session = node.sessions[swarm_id]
        size = session.description.size if session.description else 0
        shown = "standard output" if to_stdout else str(output)
        print(f"{shown}: complete, {size} bytes verified", file=sys.stderr, flush=True)
        if seed_after:
            print(f"seeding at {node.base_url} until interrupted", file=sys.stderr, flush=True)
            await stop.wait()
        return 0
    finally:
        await node.stop()
        extra: dict[str, Any] | None = None
        if keeper is not None:
            keeper.close()
            extra = {"stun": keeper.counts()}
        if serving is not None:
            serving.stop()
            extra = {**(extra or {}), "ppspp_serving": serving.counts()}
        if punch is not None:
            punch.close()
            extra = {**(extra or {}), "punch": punch.counts()}
        if relay is not None:
            await relay.close()  # its peers told, the allocation released
            extra = {**(extra or {}), "relay": relay.counts()}
        if node.ppspp_endpoint is not None:
            node.ppspp_endpoint.close()
        write_report(node, options.report, extra)


def _serve_while_downloading(node: PeerNode, swarm_id: str) -> PartialServing | None:
    """``get --transport ppspp``: serve what the download holds over PPSPP, on the one UDP
    socket of its channels (opened now), once it can be named; a line says when.  None
    without PPSPP."""
    from ppsp.peer.net.transport import PPSPP

    if PPSPP not in node.transport_preference:
        return None
    from ppsp.peer.net.ppspp_serving import serve_while_downloading

    def ready(content: PartialContent, address: tuple[str, int]) -> None:
        print(
            f"serving over PPSPP what it holds at udp {address[0]}:{address[1]} (root hash"
            f" {content.swarm_id.hex()}, {content.chunk_size}-byte chunks)",
            file=sys.stderr,
            flush=True,
        )

    return serve_while_downloading(
        node, swarm_id, lambda: node.udp.verified(swarm_id), on_ready=ready
    )


async def _download_to_stdout(
    node: PeerNode, swarm_id: str, timeout: float, progress: ProgressReporter
) -> None:
    """``get -o -``: download into a nameless file, written out in order as it arrives."""
    from ppsp.app.player import copy_in_order

    session = await node.join_swarm(swarm_id)
    download = asyncio.ensure_future(
        node.download(
            swarm_id, None, no_progress_timeout=timeout, on_progress=progress, session=session
        )
    )

    async def from_the_start() -> None:
        await session.ready.wait()
        session.seek(0)

    node.spawn(from_the_start())
    try:
        await copy_in_order(session, sys.stdout.buffer)
        await download
    finally:
        download.cancel()
        await asyncio.wait({download})


async def watch_main(
    swarm_id: str,
    options: PeerOptions,
    *,
    player_host: str = "127.0.0.1",
    player_port: int | None = None,
    output: Path | None = None,
    timeout: float = 30.0,
    on_url: Callable[[str], None] | None = None,
    transports: tuple[str, ...] | None = None,
    stun: tuple[str, int] | None = None,
    turn: TurnServer | None = None,
) -> int:
    """Watch ``swarm_id``: stored content or a live stream, at a local player URL.

    Stored content is served with Range requests while it downloads (``-o FILE`` keeps it,
    ``-o -`` writes it to standard output in order); a live stream is served as one
    continuous response and, with ``-o FILE`` or ``-o -``, written out as it plays.
    ``transports`` are the chunk transports asked of peers, most preferred first (default:
    HTTP only; a live stream over PPSPP is also served again over PPSPP).  With PPSPP among
    them, the live PPSPP socket is bound before the join and registered with it (HOST, and
    with ``stun`` the REFLEXIVE address that STUN server tells, and with ``turn`` the PROXY
    address of a relay on that TURN server, through which a live stream is served again too);
    a stored swarm closes both.
    """
    stop = stop_event()
    live_socket: socket.socket | None = None
    turn_relay: TurnRelay | None = None
    reflexive: tuple[str, int] | None = None
    report = options.report
    node = options.node(
        picker_config=PickerConfig(window=WATCH_WINDOW_CHUNKS),
        clock=time.time,
        report_interval=5.0,
        **({"transport_preference": transports} if transports else {}),
    )
    try:
        await until_stopped(stop, node.start())
        if "PPSPP" in node.transport_preference:
            # Bound (and STUN asked) before the join, whose registration carries its addresses.
            bound = await until_stopped(stop, nat_setup.ppspp_socket(node.host, 0, stun))
            live_socket, reflexive = bound
            if turn is not None:
                turn_relay = await until_stopped(stop, nat_setup.allocate_relay(turn, node.host))
            node.advertise_ppspp(live_socket.getsockname()[1], reflexive)
            nat_setup.advertise_relay(node, turn_relay)  # after HOST and REFLEXIVE
        session = await until_stopped(stop, node.join_swarm(swarm_id))
        description = await until_stopped(stop, node.obtain_description(session, timeout))
    except Interrupted:
        await nat_setup.release(live_socket, turn_relay)
        await node.stop()
        write_report(node, report)
        return fail("interrupted")
    except OSError as exc:
        await nat_setup.release(live_socket, turn_relay)
        await node.stop(disconnect=False)
        return fail(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}")
    except (DownloadFailed, PPSPError) as exc:
        await nat_setup.release(live_socket, turn_relay)
        await node.stop()
        write_report(node, report)
        return fail(str(exc))
    from ppsp.peer.live import LiveDescription

    if isinstance(description, LiveDescription):
        from ppsp.app.live_commands import watch_live

        return await watch_live(
            node,
            session,
            description,
            stop,
            player_host,
            player_port,
            output,
            timeout,
            report,
            on_url,
            ppspp_socket=None if live_socket is None else (live_socket, reflexive),
            stun=stun,
            turn_relay=turn_relay,
        )
    # Stored content: its downloads open their own socket (and watch has no relay for it).
    await nat_setup.release(live_socket, turn_relay)
    session.description = description
    return await _watch_stored(
        node, session, stop, player_host, player_port, output, timeout, report, on_url
    )


async def _watch_stored(
    node: PeerNode,
    session: SwarmSession,
    stop: asyncio.Event,
    player_host: str,
    player_port: int | None,
    output: Path | None,
    timeout: float,
    report: Path | None,
    on_url: Callable[[str], None] | None,
) -> int:
    from ppsp.app.player import PlayerEndpoint, copy_in_order, serve_player

    to_stdout = output is not None and str(output) == "-"
    download = asyncio.ensure_future(
        node.download(
            session.swarm_id,
            None if to_stdout else output,
            no_progress_timeout=timeout,
            session=session,
        )
    )
    player = PlayerEndpoint(lambda: node.sessions.get(session.swarm_id))

    async def start_at_beginning() -> None:
        # A viewer watches from the start unless its player seeks: fetch in playback order
        # from chunk 0 until the player asks for something else.
        await session.ready.wait()
        session.seek(0)

    node.spawn(start_at_beginning())
    try:
        runner, url = await serve_player(
            player.app(), player_host, player_port, to_stderr=to_stdout
        )
    except OSError as exc:
        download.cancel()
        await asyncio.wait({download})
        await node.stop()
        return fail(f"cannot listen on {player_host}:{player_port}: {exc.strerror or exc}")
    if on_url is not None:
        on_url(url)
    copier = asyncio.ensure_future(
        copy_in_order(session, sys.stdout.buffer) if to_stdout else asyncio.sleep(0)
    )
    code = 0
    try:
        await until_stopped(stop, asyncio.gather(download, copier))
        print("download complete; still serving the player", file=sys.stderr, flush=True)
        await stop.wait()
    except Interrupted:
        pass
    except (DownloadFailed, PPSPError) as exc:
        code = fail(str(exc))
    except BrokenPipeError:
        code = fail("standard output was closed")
    finally:
        for task in (download, copier):
            task.cancel()
        await asyncio.wait({download, copier})
        await runner.cleanup()
        await node.stop()
        write_report(node, report)
    return code
