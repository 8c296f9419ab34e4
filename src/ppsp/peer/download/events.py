"""What the I/O layer tells a download policy (events) and what the policy asks of it (actions).

Sans-I/O.  A policy (:class:`Policy`; :class:`~ppsp.peer.download.stored.StoredDownload` for
stored content) is fed events with the current time, is asked for the actions due with
:meth:`Policy.poll`, and says with :meth:`Policy.next_deadline` when it must be asked again
if nothing happens: the I/O layer only moves bytes and waits for the next event or deadline
(``ppsp.peer.net.loop``).  Peers are named by their PeerID and chunks by their index; which
transport moves a chunk is the I/O layer's business (chosen by TRANSPORT_NEGOTIATION), so a new
transport changes nothing here.
"""

from __future__ import annotations

from typing import Any, Protocol

from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import RepresentationMap

__all__ = [
    "Action",
    "BanPeer",
    "CancelChunk",
    "CancelDescription",
    "ChunkAbandoned",
    "ChunkDelivered",
    "ChunkFailed",
    "ChunkProgress",
    "ChunkStored",
    "Connect",
    "DescriptionArrived",
    "DescriptionRefused",
    "Done",
    "Event",
    "Failed",
    "FetchChunk",
    "FetchDescription",
    "FindAnswered",
    "FindHolders",
    "FindPeers",
    "LiveChunkArrived",
    "MapUpdated",
    "OpenStore",
    "PeerBanned",
    "PeerConnected",
    "PeerUnreachable",
    "PlayChunk",
    "Policy",
    "PullMap",
    "PushMap",
    "Seek",
    "StoreOpened",
]

# -- the records ------------------------------------------------------------------------------


class _Record:
    """An event or an action: immutable, equal to another of its kind with the same fields.

    Plain classes with ``__slots__`` rather than frozen dataclasses: a command builds these
    classes at start-up, where a frozen dataclass costs about 50 times as much as this.
    """

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


# -- events: what happened -------------------------------------------------------------------


class PeerConnected(_Record):
    """A transport was negotiated with ``peer`` and its properties are known."""

    __slots__ = ("advertised_rate", "peer", "source")
    peer: str
    advertised_rate: float | None
    """The upload rate it advertised (``Bandwidth`` in PROPERTY_QUERY), bytes per second."""
    source: bool
    """It said it is the live stream's source (``LiveSource=1`` in PROPERTY_QUERY)."""

    def __init__(
        self, peer: str, advertised_rate: float | None = None, source: bool = False
    ) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "advertised_rate", advertised_rate)
        object.__setattr__(self, "source", source)


class PeerUnreachable(_Record):
    """A connection to ``peer`` or an exchange with it (PULL) failed (the peer is benched)."""

    __slots__ = ("peer",)
    peer: str

    def __init__(self, peer: str) -> None:
        object.__setattr__(self, "peer", peer)


class PeerBanned(_Record):
    """``peer`` was banned by another part of the peer."""

    __slots__ = ("peer",)
    peer: str

    def __init__(self, peer: str) -> None:
        object.__setattr__(self, "peer", peer)


class MapUpdated(_Record):
    """``peer`` announced its chunk map (its PUSH, or its answer to a PULL), in wire form."""

    __slots__ = ("chunk_map", "peer")
    peer: str
    chunk_map: tuple[RepresentationMap, ...]

    def __init__(self, peer: str, chunk_map: tuple[RepresentationMap, ...]) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "chunk_map", chunk_map)


class FindAnswered(_Record):
    """A FIND (at the tracker or at peers) ended; ``peers`` are the peers it made known."""

    __slots__ = ("peers",)
    peers: tuple[str, ...]

    def __init__(self, peers: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "peers", peers)


class DescriptionArrived(_Record):
    """``peer`` sent a content description that its swarm ID certifies.

    ``description`` is a :class:`~ppsp.peer.content.description.ContentDescription`, or a
    :class:`~ppsp.peer.live.LiveDescription` for a live stream.
    """

    __slots__ = ("description", "peer")
    peer: str
    description: object

    def __init__(self, peer: str, description: object) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "description", description)


class DescriptionRefused(_Record):
    """``peer`` did not send a usable description.

    ``forged``: it sent one that fails the swarm ID (the peer is banned); ``unreachable``: the
    exchange failed (a failure is counted); neither: it has none (yet), which costs nothing.
    """

    __slots__ = ("forged", "peer", "unreachable")
    peer: str
    forged: bool
    unreachable: bool

    def __init__(self, peer: str, forged: bool = False, unreachable: bool = False) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "forged", forged)
        object.__setattr__(self, "unreachable", unreachable)


class StoreOpened(_Record):
    """The store is open; ``held`` are the chunks found intact in it (a resumed download)."""

    __slots__ = ("held",)
    held: ChunkBitmap

    def __init__(self, held: ChunkBitmap) -> None:
        object.__setattr__(self, "held", held)


class ChunkProgress(_Record):
    """``nbytes`` bytes of chunk ``index`` have arrived from ``peer`` so far."""

    __slots__ = ("index", "nbytes", "peer")
    peer: str
    index: int
    nbytes: int

    def __init__(self, peer: str, index: int, nbytes: int) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "nbytes", nbytes)


class ChunkDelivered(_Record):
    """Every byte of chunk ``index`` arrived from ``peer``; it is being verified and written."""

    __slots__ = ("index", "nbytes", "peer")
    peer: str
    index: int
    nbytes: int

    def __init__(self, peer: str, index: int, nbytes: int) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "nbytes", nbytes)


class ChunkStored(_Record):
    """Chunk ``index`` from ``peer`` was verified and written to the store."""

    __slots__ = ("index", "nbytes", "peer")
    peer: str
    index: int
    nbytes: int

    def __init__(self, peer: str, index: int, nbytes: int) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "nbytes", nbytes)


class ChunkFailed(_Record):
    """The transfer of chunk ``index`` from ``peer`` failed after ``nbytes`` bytes.

    ``corrupt``: the bytes failed verification (the peer is banned); otherwise the transfer
    itself failed (an error answer, a cut connection, a transport timeout).  ``stalled``: it
    failed by a timeout (no connection, no first byte, no progress): a silent peer is benched.
    ``busy``: the peer answered that it serves others first (503, 429), ``retry_after`` seconds
    being the wait it asked for (None: none given): left alone that long, no fault counted.
    """

    __slots__ = ("busy", "corrupt", "index", "nbytes", "peer", "retry_after", "stalled")
    peer: str
    index: int
    nbytes: int
    corrupt: bool
    stalled: bool
    busy: bool
    retry_after: float | None

    def __init__(
        self,
        peer: str,
        index: int,
        nbytes: int = 0,
        corrupt: bool = False,
        stalled: bool = False,
        busy: bool = False,
        retry_after: float | None = None,
    ) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "nbytes", nbytes)
        object.__setattr__(self, "corrupt", corrupt)
        object.__setattr__(self, "stalled", stalled)
        object.__setattr__(self, "busy", busy)
        object.__setattr__(self, "retry_after", retry_after)


class ChunkAbandoned(_Record):
    """The verification of ``peer``'s copy of chunk ``index`` did not finish (cancelled)."""

    __slots__ = ("index", "peer")
    peer: str
    index: int

    def __init__(self, peer: str, index: int) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)


class LiveChunkArrived(_Record):
    """The envelope of live chunk ``index`` arrived from ``peer`` (``data``: its wire bytes,
    not verified yet: the live viewer's policy verifies it)."""

    __slots__ = ("data", "index", "peer")
    peer: str
    index: int
    data: bytes

    def __init__(self, peer: str, index: int, data: bytes) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "data", data)


class Seek(_Record):
    """Fetch in playback order from chunk ``index`` on (a player's position)."""

    __slots__ = ("index",)
    index: int

    def __init__(self, index: int) -> None:
        object.__setattr__(self, "index", index)


Event = (
    PeerConnected
    | PeerUnreachable
    | PeerBanned
    | MapUpdated
    | FindAnswered
    | DescriptionArrived
    | DescriptionRefused
    | StoreOpened
    | ChunkProgress
    | ChunkDelivered
    | ChunkStored
    | ChunkFailed
    | ChunkAbandoned
    | LiveChunkArrived
    | Seek
)
"""Everything a download policy is told."""

# -- actions: what to do ---------------------------------------------------------------------


class Connect(_Record):
    """Connect to ``peer``: TRANSPORT_NEGOTIATION, PROPERTY_QUERY, then PULL its chunk map.

    Answered by :class:`PeerConnected` then :class:`MapUpdated`, or :class:`PeerUnreachable`.
    """

    __slots__ = ("peer",)
    peer: str

    def __init__(self, peer: str) -> None:
        object.__setattr__(self, "peer", peer)


class FetchChunk(_Record):
    """Fetch chunk ``index`` from ``peer`` over its transport, verify it and store it.

    Answered by :class:`ChunkProgress` and :class:`ChunkDelivered` while it runs, then
    :class:`ChunkStored` or :class:`ChunkFailed`.
    """

    __slots__ = ("index", "peer")
    peer: str
    index: int

    def __init__(self, peer: str, index: int) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)


class CancelChunk(_Record):
    """Stop fetching chunk ``index`` from ``peer`` (``reason``: timeout, duplicate, banned)."""

    __slots__ = ("index", "peer", "reason")
    peer: str
    index: int
    reason: str

    def __init__(self, peer: str, index: int, reason: str) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "reason", reason)


class BanPeer(_Record):
    """``peer`` is banned from now on (``reason``: corrupt, forged, failures, or host: another
    PeerID at its host sent corrupt bytes); its standing says so."""

    __slots__ = ("peer", "reason")
    peer: str
    reason: str

    def __init__(self, peer: str, reason: str) -> None:
        object.__setattr__(self, "peer", peer)
        object.__setattr__(self, "reason", reason)


class FindPeers(_Record):
    """Ask the tracker for the swarm's peers (FIND), and the connected peers too when
    ``via_peers``.  Answered by :class:`FindAnswered`."""

    __slots__ = ("via_peers",)
    via_peers: bool

    def __init__(self, via_peers: bool = True) -> None:
        object.__setattr__(self, "via_peers", via_peers)


class PushMap(_Record):
    """CHUNK_AVAILABILITY PUSH of this peer's chunk map to ``peers`` (None: every connected
    peer)."""

    __slots__ = ("peers",)
    peers: tuple[str, ...] | None

    def __init__(self, peers: tuple[str, ...] | None = None) -> None:
        object.__setattr__(self, "peers", peers)


class PullMap(_Record):
    """CHUNK_AVAILABILITY PULL of ``peer``'s chunk map.

    Answered by :class:`MapUpdated` or :class:`PeerUnreachable`.
    """

    __slots__ = ("peer",)
    peer: str

    def __init__(self, peer: str) -> None:
        object.__setattr__(self, "peer", peer)


class FindHolders(_Record):
    """A chunk-scoped FIND at the tracker: the peers holding the live stream from chunk
    ``start_index`` on.  Answered by :class:`FindAnswered`."""

    __slots__ = ("start_index",)
    start_index: int

    def __init__(self, start_index: int) -> None:
        object.__setattr__(self, "start_index", start_index)


class PlayChunk(_Record):
    """Hand live chunk ``index`` (``payload``; ``start``: a player can start with it) to the
    outputs, in playback order."""

    __slots__ = ("index", "payload", "start")
    index: int
    payload: bytes
    start: bool

    def __init__(self, index: int, payload: bytes, start: bool) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "start", start)


class FetchDescription(_Record):
    """GET the content description from ``peer`` and check it against the swarm ID.

    Answered by :class:`DescriptionArrived` or :class:`DescriptionRefused`.
    """

    __slots__ = ("peer",)
    peer: str

    def __init__(self, peer: str) -> None:
        object.__setattr__(self, "peer", peer)


class CancelDescription(_Record):
    """Stop asking ``peer`` for the description: another peer's answer won."""

    __slots__ = ("peer",)
    peer: str

    def __init__(self, peer: str) -> None:
        object.__setattr__(self, "peer", peer)


class OpenStore(_Record):
    """Open the store the content goes to (resuming what it holds); answered by
    :class:`StoreOpened`.  ``description`` is the content's
    :class:`~ppsp.peer.content.description.ContentDescription`."""

    __slots__ = ("description",)
    description: object

    def __init__(self, description: object) -> None:
        object.__setattr__(self, "description", description)


class Done(_Record):
    """Every chunk is held: the download is complete."""

    __slots__ = ()


class Failed(_Record):
    """The download cannot finish; ``reason`` is one line for the user."""

    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        object.__setattr__(self, "reason", reason)


Action = (
    Connect
    | FetchChunk
    | CancelChunk
    | BanPeer
    | FindPeers
    | FindHolders
    | PlayChunk
    | PushMap
    | PullMap
    | FetchDescription
    | CancelDescription
    | OpenStore
    | Done
    | Failed
)
"""Everything a download policy asks of the I/O layer."""


class Policy(Protocol):
    """A sans-I/O session policy: events in, actions out, and when to ask again.

    The I/O loop (``ppsp.peer.net.loop.SessionLoop``) feeds every event with
    :meth:`handle`, then executes what :meth:`poll` returns and waits for the next event, at
    most until :meth:`next_deadline`.  A live viewer's policy has the same shape (its
    deadlines are the playback clock's).
    """

    def handle(self, event: Event, now: float) -> None:
        """Take note of ``event``, which happened at ``now``."""

    def poll(self, now: float) -> list[Action]:
        """The actions due at ``now`` (each is returned once)."""

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must be called again if no event comes (None: only on events)."""
