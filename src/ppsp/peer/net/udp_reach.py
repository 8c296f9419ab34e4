"""Peers reached over PPSPP alone, without HTTP: a peer behind NAT (I/O layer).

A listed peer whose HTTP exchange fails but that registered ``PPSPP`` PeerAddresses is reached
on a PPSPP channel whose handshake goes to each of its candidate addresses until one answers
(hole punching; the choice is :class:`~ppsp.peer.nat.punch.CandidatePaths`'), on the PPSPP root
the session has verified from another peer's offer.  Such a peer holds the chunks its channel's
HAVEs name (a seeder's: every chunk; a downloading peer's: what it holds, announced as it
grows), read into its chunk map at each pull, and is never sent a peer protocol message
(PUSH, FIND): it speaks none.

Layer: I/O, beside :mod:`.node`, which owns one :class:`UdpReach`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ppsp.peer.nat.punch import ppspp_candidates
from ppsp.peer.net.session import RemotePeer, SwarmSession
from ppsp.peer.net.transport import PPSPP
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import RepresentationMap, TransportOffer, chunk_map_from_bitmaps

if TYPE_CHECKING:
    from ppsp.peer.net.ppspp_transport import PpsppChunkTransport

__all__ = ["PPSPP_ROOT_WAIT", "UdpReach", "full_map"]

log = logging.getLogger(__name__)

PPSPP_ROOT_WAIT = 10.0
"""Seconds a connection over PPSPP only waits for the session's store to open."""


def full_map(session: SwarmSession) -> tuple[RepresentationMap, ...]:
    """The chunk map of a peer holding every chunk of the session's representation."""
    assert session.description is not None
    count = session.description.representation(session.representation_id).chunk_count
    return chunk_map_from_bitmaps({session.representation_id: [ChunkBitmap.full(count)]})


class UdpReach:
    """The sessions' PPSPP transports, and the peers reached through them alone."""

    def __init__(self) -> None:
        self._transports: dict[str, PpsppChunkTransport] = {}
        self._udp_only: set[tuple[str, str]] = set()

    def add_transport(self, swarm_id: str, transport: PpsppChunkTransport) -> None:
        """The PPSPP chunk transport of the session of ``swarm_id``."""
        self._transports[swarm_id] = transport

    def verified(self, swarm_id: str) -> tuple[bytes, int] | None:
        """The PPSPP root hash and chunk size a chunk of the session of ``swarm_id`` verified
        under, up to that root and against the description (None before, or without PPSPP):
        what the peer serves the content as while downloading it."""
        transport = self._transports.get(swarm_id)
        return None if transport is None else transport.verified

    def chunk_map(self, session: SwarmSession, remote: RemotePeer) -> tuple[RepresentationMap, ...]:
        """The chunk map of ``remote``, reached over PPSPP alone: the description chunks whose
        PPSPP chunks its channel's HAVEs all name (every chunk when they name the whole
        content, or when there is no open channel: its next fetch opens one)."""
        from ppsp.peer.net.ppspp_transport import covering_chunks

        transport = self._transports.get(session.swarm_id)
        client = None if transport is None else transport.channel_client(remote.peer_id)
        if client is None or client.peer_complete or session.description is None:
            return full_map(session)
        description = session.description
        representation = description.representation(session.representation_id)
        held = ChunkBitmap(representation.chunk_count)
        for index in range(representation.chunk_count):
            offset, length = description.chunk_range(index, representation.id)
            pieces = covering_chunks(offset, length, client.chunk_size)
            if client.peer_holds(pieces.start, pieces.stop - 1):
                held.add(index)
        return chunk_map_from_bitmaps({session.representation_id: [held]})

    def is_udp_only(self, session: SwarmSession, remote: RemotePeer) -> bool:
        """Whether ``remote`` was reached over PPSPP alone (no peer protocol message to it)."""
        return (session.swarm_id, remote.peer_id) in self._udp_only

    def mark_udp_only(self, session: SwarmSession, remote: RemotePeer) -> None:
        """``remote`` was reached over PPSPP alone by another layer (a live viewer's channel,
        :mod:`.livenode`): no peer protocol message goes to it from now on."""
        self._udp_only.add((session.swarm_id, remote.peer_id))

    @staticmethod
    def candidates(remote: RemotePeer) -> list[tuple[str, int]]:
        """The PPSPP addresses ``remote`` registered, to try together."""
        return ppspp_candidates(remote.info)

    async def connect(
        self, session: SwarmSession, remote: RemotePeer, candidates: list[tuple[str, int]]
    ) -> None:
        """Reach ``remote`` over PPSPP only, at ``candidates``; its offer is then the
        answering address.  ConnectionError when the session has no PPSPP content yet (none
        within :data:`PPSPP_ROOT_WAIT`) or no PPSPP transport; the transport's errors when no
        candidate answers."""
        try:
            await asyncio.wait_for(session.ready.wait(), PPSPP_ROOT_WAIT)
        except TimeoutError:
            raise ConnectionError(f"{remote.peer_id}: no PPSPP content yet") from None
        transport = self._transports.get(session.swarm_id)
        if transport is None or session.description is None:
            raise ConnectionError(f"{remote.peer_id}: no PPSPP transport")
        uri = await transport.connect_direct(remote, candidates)
        self._udp_only.add((session.swarm_id, remote.peer_id))
        remote.offer = TransportOffer(type=PPSPP, uri=uri)
        log.info("peer %s reached over PPSPP only, at %s", remote.peer_id, uri)
