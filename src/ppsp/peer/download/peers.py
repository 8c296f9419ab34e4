"""The remote peers of one swarm session, as the download decisions see them.

Sans-I/O.  A :class:`PeerStanding` is the one record of what this peer thinks of a remote peer:
how often it failed, whether it is banned, whether a connection is being made or was made, the
chunk map it announced and what it said it can upload.  A :class:`PeerBook` holds the standings
of a session's peers.  The I/O layer keeps each peer's addresses and transport beside it
(``ppsp.peer.net.session.RemotePeer`` reads and writes this record, never a copy of it).

The rule that ends a peer's use is here, once: a peer is banned at its
:data:`MAX_FAILURES`-th failure (a connection, an exchange or a transfer that did not succeed),
and at once when it sends something forged (a chunk or a description that fails its hash).
"""

from __future__ import annotations

from collections.abc import Iterator

from ppsp.wire.bitmap import ChunkBitmap

__all__ = ["MAX_FAILURES", "PeerBook", "PeerStanding"]

MAX_FAILURES = 3
"""Failures after which a peer is banned: never connected, asked or told anything again."""


class PeerStanding:
    """What this peer knows and thinks of one remote peer of a swarm."""

    __slots__ = (
        "advertised_rate",
        "banned",
        "chunks",
        "connected",
        "connecting",
        "failures",
        "last_map_at",
        "map_version",
        "peer_id",
    )

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        self.failures = 0
        """Connections, exchanges and transfers with the peer that did not succeed."""
        self.banned = False
        """Never used again: it failed :data:`MAX_FAILURES` times or sent forged bytes."""
        self.connecting = False
        """A connection (transport negotiation, properties, chunk map) is being made."""
        self.connected = False
        """A transport was negotiated: chunks may be asked of the peer."""
        self.chunks: ChunkBitmap | None = None
        """The chunk map the peer announced last (None: none yet)."""
        self.map_version = 0
        """Counts the chunk maps received, so that a reader can tell a new one."""
        self.last_map_at = 0.0
        """When the last chunk map arrived (the caller's clock)."""
        self.advertised_rate: float | None = None
        """The upload rate the peer advertised (bytes per second), untrusted."""

    def __repr__(self) -> str:
        return (
            f"PeerStanding({self.peer_id!r}, failures={self.failures}, banned={self.banned}, "
            f"connected={self.connected})"
        )

    def fail(self) -> bool:
        """Count one failure; True when it bans the peer (the :data:`MAX_FAILURES`-th)."""
        self.failures += 1
        if self.failures >= MAX_FAILURES and not self.banned:
            self.banned = True
            return True
        return False

    def ban(self) -> bool:
        """Ban the peer at once (it sent forged bytes); True when it was not banned yet."""
        if self.banned:
            return False
        self.banned = True
        return True

    @property
    def connectable(self) -> bool:
        """Whether a connection may be tried: none made or being made, not banned."""
        return not (self.connected or self.connecting or self.banned) and (
            self.failures < MAX_FAILURES
        )

    @property
    def usable(self) -> bool:
        """Whether chunks may be asked of the peer: connected and not banned."""
        return self.connected and not self.banned

    def set_map(self, chunks: ChunkBitmap, now: float) -> None:
        """Record a chunk map the peer announced at ``now``."""
        self.chunks = chunks
        self.map_version += 1
        self.last_map_at = now


class PeerBook:
    """The standings of a swarm session's remote peers, in the order they became known."""

    __slots__ = ("_peers",)

    def __init__(self) -> None:
        self._peers: dict[str, PeerStanding] = {}

    def add(self, peer_id: str) -> PeerStanding:
        """The standing of ``peer_id``, created when the peer is new."""
        standing = self._peers.get(peer_id)
        if standing is None:
            standing = self._peers[peer_id] = PeerStanding(peer_id)
        return standing

    def get(self, peer_id: str) -> PeerStanding | None:
        """The standing of ``peer_id``, None when the peer is unknown."""
        return self._peers.get(peer_id)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    def __iter__(self) -> Iterator[PeerStanding]:
        return iter(self._peers.values())

    def __len__(self) -> int:
        return len(self._peers)

    def usable(self) -> list[PeerStanding]:
        """Peers chunks may be asked of (connected, not banned)."""
        return [standing for standing in self._peers.values() if standing.usable]
