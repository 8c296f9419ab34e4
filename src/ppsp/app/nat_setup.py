"""The NAT side of the peer commands: a seeder's PPSPP socket with its reflexive address
(STUN), its keep-alive, punching towards the swarm's peers and a TURN relay; a downloading
peer's PPSPP socket with STUN, and its TURN relay.  Called by :mod:`ppsp.app.commands`;
each prints its one-line outcome on standard error.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ppsp.peer.net.node import PeerNode
from ppsp.wire.tracker import PeerInfo

if TYPE_CHECKING:
    from ppsp.peer.net.ppspp_live import LivePpsppEndpoint
    from ppsp.peer.net.ppspp_nat import PpsppPunch, PpsppStun, StunSocket
    from ppsp.peer.net.ppspp_relay import PpsppRelay, TurnServer
    from ppsp.peer.net.ppspp_serving import PartialServing
    from ppsp.peer.net.ppspp_udp import PpsppSeederServer
    from ppsp.peer.net.turn import TurnRelay
    from ppsp.peer.ppspp import SeededContent
    from ppsp.peer.upload.pacing import UploadPacer

__all__ = [
    "advertise_relay",
    "allocate_relay",
    "close_socket",
    "download_relay",
    "download_stun",
    "keep_stun",
    "live_nat",
    "live_relay",
    "ppspp_socket",
    "release",
    "serve_relay",
    "start_punching",
]


async def ppspp_socket(
    host: str, port: int, stun: tuple[str, int] | None
) -> tuple[socket.socket, tuple[str, int] | None]:
    """The PPSPP UDP socket bound on ``host:port``, and its reflexive address when a STUN
    ``stun`` server answered (a warning on standard error when it did not)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    if stun is None:
        return sock, None
    from ppsp.errors import StunError
    from ppsp.peer.net.stun import reflexive_address

    bound = sock.getsockname()
    try:
        mapped = await reflexive_address(stun, sock=sock)
    except BaseException as exc:
        if not isinstance(exc, StunError):
            sock.close()  # interrupted: nobody else will
            raise
        print(
            f"no reflexive address for udp {bound[0]}:{bound[1]}: STUN {stun[0]}:{stun[1]}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return sock, None
    print(
        f"PPSPP socket udp {bound[0]}:{bound[1]} has reflexive address {mapped[0]}:{mapped[1]}"
        f" (STUN {stun[0]}:{stun[1]})",
        file=sys.stderr,
        flush=True,
    )
    return sock, mapped


async def keep_stun(
    server: PpsppSeederServer | StunSocket,
    stun: tuple[str, int],
    registered: tuple[str, int] | None,
) -> PpsppStun | None:
    """Bindings every 20 s from the serving socket (a seeder's, or a live peer's: keeping its
    NAT mapping alive); a change of the reflexive address is logged, the tracker keeps the
    registered one."""

    def changed(mapped: tuple[str, int]) -> None:
        if registered is not None and mapped != registered:
            print(
                f"the PPSPP socket's reflexive address is now {mapped[0]}:{mapped[1]}"
                f" (registered: {registered[0]}:{registered[1]})",
                file=sys.stderr,
                flush=True,
            )

    return await _start_keeper(server, stun, changed)


def close_socket(sock: socket.socket | None) -> None:
    """Close ``sock`` when there is one."""
    if sock is not None:
        sock.close()


async def allocate_relay(turn: TurnServer, host: str) -> TurnRelay | None:
    """``seed --turn``: a relay on the TURN server for the PPSPP socket, or None with one
    warning line when the server refuses or does not answer (the seeder goes on without)."""
    from ppsp.errors import StunError
    from ppsp.peer.net.ppspp_relay import allocate_relay

    local = ("::", 0) if ":" in host else ("0.0.0.0", 0)
    try:
        relay = await allocate_relay(turn, local=local)
    except StunError as exc:
        print(f"no TURN relay (TURN {turn}): {exc}", file=sys.stderr, flush=True)
        return None
    assert relay.relayed is not None
    print(
        f"PPSPP relayed at udp {relay.relayed[0]}:{relay.relayed[1]} (TURN {turn})",
        file=sys.stderr,
        flush=True,
    )
    return relay


def advertise_relay(node: PeerNode, relay: TurnRelay | None) -> None:
    """Register ``relay``'s relayed address at the tracker as a PROXY PPSPP PeerAddress;
    called after :meth:`~ppsp.peer.net.node.PeerNode.advertise_ppspp`, so that it comes
    after the HOST and REFLEXIVE ones: the most direct path first."""
    if relay is None or relay.relayed is None or node.tracker is None:
        return
    from ppsp.peer.protocol.addressing import relayed_address

    node.tracker.advertise([relayed_address(relay.relayed)])


async def download_relay(
    node: PeerNode, serving: PartialServing, turn: TurnServer, host: str
) -> PpsppRelay | None:
    """``get --turn``: a relay on the TURN server through which what the download holds is
    served (by an engine of its own, given the content when ``serving`` names it, under the
    upload cap); None with one warning line when the server refuses or does not answer (the
    download goes on without).  Register it with :func:`advertise_relay`."""
    from ppsp.peer.net.limiter import upload_pacer
    from ppsp.peer.net.ppspp_relay import serve_relay

    turn_relay = await allocate_relay(turn, host)
    if turn_relay is None:
        return None
    relay = serve_relay(turn_relay, (), pacer=upload_pacer(node.upload_limiter))
    serving.add_relay(relay)
    return relay


def live_relay(node: PeerNode, endpoint: LivePpsppEndpoint, turn_relay: TurnRelay) -> PpsppRelay:
    """``watch --turn``: the live stream served again through ``turn_relay`` too, by a
    :class:`~ppsp.peer.ppspp.live_server.LiveServer` of its own like the socket's (same
    stream, window and settings, under the upload cap, its DATA counted as the socket's),
    given each chunk the viewer verified (:meth:`LivePpsppEndpoint.serve`)."""
    from ppsp.peer.net.limiter import upload_pacer
    from ppsp.peer.net.ppspp_relay import PpsppRelay
    from ppsp.peer.ppspp.live_server import LiveServer

    own = endpoint.server
    server = LiveServer(
        own.swarm_id,
        window_chunks=own.window_chunks,
        config=own.config,
        pacer=upload_pacer(node.upload_limiter),
    )
    relay = PpsppRelay(turn_relay, server, clock=endpoint.clock)
    if endpoint.uploads is not None:
        endpoint.uploads.attach(server)
    endpoint.relays.append(relay)
    return relay


async def release(sock: socket.socket | None, relay: TurnRelay | None) -> None:
    """Close the PPSPP socket and release the relay (seed_main's failure paths)."""
    close_socket(sock)
    if relay is not None:
        await relay.close()


async def serve_relay(
    turn_relay: TurnRelay, swarm_content: list[SeededContent], pacer: UploadPacer | None = None
) -> PpsppRelay | None:
    """The swarm's PPSPP content served through the relay (an engine of its own, under the
    upload cap ``pacer`` when given); None, and the relay released, when the swarm is not
    offered over PPSPP."""
    from ppsp.peer.net.ppspp_relay import serve_relay

    if not swarm_content:
        await turn_relay.close()
        return None
    return serve_relay(turn_relay, swarm_content, pacer=pacer)


def start_punching(
    node: PeerNode,
    swarm_id: str,
    server: StunSocket,
    reflexive: tuple[str, int] | None,
    relay: PpsppRelay | None = None,
) -> PpsppPunch | None:
    """A peer whose PPSPP socket (a seeder's, or a downloading peer's) is behind NAT (STUN
    gave a reflexive address other than the socket's) punches towards the swarm's peers (FIND
    every few seconds), and a seeder with a relay permits them on it (the same FINDs); None
    when neither."""
    from ppsp.peer.net.ppspp_nat import PpsppPunch

    local = server.address
    tracker = node.tracker
    natted = reflexive is not None and reflexive != local
    if not (natted or relay is not None) or tracker is None:
        return None

    async def find() -> list[PeerInfo]:
        return await tracker.find(swarm_id)

    if natted:
        print(
            f"PPSPP socket udp {local[0]}:{local[1]} is behind NAT: punching towards the swarm's"
            " peers",
            file=sys.stderr,
            flush=True,
        )
    return PpsppPunch(
        server,
        find,
        peer_id=node.peer_id,
        own=[a for a in (local, reflexive) if a is not None],
        on_listed=None if relay is None else relay.listed,
        punch=natted,
    )


async def live_nat(
    node: PeerNode,
    swarm_id: str,
    endpoint: StunSocket,
    stun: tuple[str, int] | None,
    reflexive: tuple[str, int] | None,
    relay: PpsppRelay | None = None,
) -> tuple[PpsppStun | None, PpsppPunch | None]:
    """A live PPSPP socket's NAT side (``live --ppspp-port`` or ``watch --transport ppspp``,
    registered already): with ``stun``, its keep-alive (a Binding every 20 s); behind NAT (the
    registered ``reflexive`` address differs from the socket's), punching towards the
    stream's peers, as a seeder or a downloading peer there does; with a ``relay``
    (``watch --turn``), the stream's peers permitted on it (the same FINDs)."""
    keeper = None if stun is None else await keep_stun(endpoint, stun, reflexive)
    return keeper, start_punching(node, swarm_id, endpoint, reflexive, relay)


async def download_stun(node: PeerNode, stun: tuple[str, int]) -> PpsppStun | None:
    """``get --stun``: open the UDP socket every PPSPP channel of the download uses (bound on
    the peer's host), learn its reflexive address through itself and keep its NAT mapping
    alive (a Binding every 20 s); each address learnt is printed.  None (and a warning) when
    the STUN server cannot be resolved: the download goes on without."""
    from ppsp.peer.net.ppspp_transport import PpsppClientSocket

    endpoint = PpsppClientSocket(node.chunk_client.local_address)
    node.ppspp_endpoint = endpoint
    bound = endpoint.address

    def learnt(mapped: tuple[str, int]) -> None:
        print(
            f"PPSPP socket udp {bound[0]}:{bound[1]} has reflexive address"
            f" {mapped[0]}:{mapped[1]} (STUN {stun[0]}:{stun[1]})",
            file=sys.stderr,
            flush=True,
        )

    return await _start_keeper(endpoint, stun, learnt)


async def _start_keeper(
    sock: StunSocket, stun: tuple[str, int], on_change: Callable[[tuple[str, int]], None]
) -> PpsppStun | None:
    """The STUN keep-alive on ``sock`` (a Binding every 20 s, ``on_change`` told each new
    reflexive address); None, with one warning line, when the server cannot be resolved."""
    from ppsp.errors import StunError
    from ppsp.peer.net.ppspp_nat import start_stun

    try:
        return await start_stun(sock, stun, on_change=on_change)
    except StunError as exc:
        print(f"no STUN keep-alive: {exc}", file=sys.stderr, flush=True)
        return None
