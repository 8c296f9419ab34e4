"""The memory backend's swarms and peers: a swarm's members by rank group, a peer's state.

:class:`~ppsp.tracker.storage.memory.MemoryStorage` keeps per peer one :class:`PeerEntry`
(its record's fields, not the record object, and its memberships) and per swarm one
:class:`SwarmEntry`: its members grouped by rank profile (:class:`RankGroup`, a plain list used
as an indexable set, each member knowing its position in it, so that listing a swarm builds
nothing and a removal moves the group's last member into the hole).  A member is found through
its peer (:attr:`PeerEntry.joined`), so a swarm keeps no table of its members by ID: a peer in
one swarm costs its entry in the peer table, its :class:`PeerEntry`, its member and one slot of
a group's list.  Kept apart from the backend's module: containers with no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Callable

from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import MemberList, MemberSlots, RankProfile, SwarmMember
from ppsp.tracker.storage.packed import pack, unpack
from ppsp.wire.tracker import ContentMap, PeerAddress, PeerMode, ProtocolVersion

__all__ = [
    "COUNTED_PREFIXES",
    "COUNT_FROM",
    "COUNT_UNTIL",
    "PackedMember",
    "PeerEntry",
    "RankGroup",
    "Stored",
    "SwarmEntry",
    "addresses_of",
    "new_member",
]

COUNT_FROM = 64
"""Size from which a group counts its members per prefix (smaller ones are cheap to draw)."""

COUNT_UNTIL = 32
"""Size under which a group forgets its counts (and whether it was spread)."""

COUNTED_PREFIXES = 16
"""Most prefixes a group counts; a group spread over more is marked spread, not counted."""

_SET_POSITION: Callable[[SwarmMember, int], None] = vars(MemberSlots)["_position"].__set__
"""Writes a member's ``_position`` slot (a frozen dataclass refuses ``setattr``)."""

Flags = tuple[ProtocolVersion, PeerState, bool]
"""A record's version, state and ``grace_used``: one shared tuple per distinct combination."""

Stored = bytes | tuple[PeerAddress, ...]
"""A peer's addresses as the backend keeps them: packed (:mod:`ppsp.tracker.storage.packed`),
or the tuple itself when they cannot be packed (IPv6, say)."""


def addresses_of(stored: Stored) -> tuple[PeerAddress, ...]:
    """The addresses kept as ``stored``."""
    return unpack(stored) if isinstance(stored, bytes) else stored


class PackedMember(SwarmMember):
    """A member whose addresses are kept packed (``_packed``): :attr:`addresses` unpacks them.

    Equal to (and hashed as) the :class:`SwarmMember` of the same fields.  The inherited slot
    ``addresses`` stands behind this class's property: it holds the addresses only when they
    cannot be packed (``_packed`` is then empty), which happens only to a member built by its
    constructor (``dataclasses.replace``, copies) with such addresses; the backend builds its
    members with :func:`new_member`.
    """

    __slots__ = ("_packed",)

    _packed: bytes

    @property
    def addresses(self) -> tuple[PeerAddress, ...]:
        """The member's addresses, unpacked (a kept tuple when read lately)."""
        packed = self._packed
        return unpack(packed) if packed else _READ_ADDRESSES(self)

    @addresses.setter
    def addresses(self, value: tuple[PeerAddress, ...]) -> None:
        # Only the dataclass's __init__ and __setstate__ write it (replace, copies).
        packed = pack(value)
        if packed is None or not packed:
            _SET_ADDRESSES(self, value)
            packed = b""
        _SET_PACKED(self, packed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SwarmMember):
            return NotImplemented
        return (
            self.peer_id == other.peer_id
            and self.mode is other.mode
            and self.content_map == other.content_map
            and self.addresses == other.addresses
        )

    def __hash__(self) -> int:
        return hash((self.peer_id, self.mode, self.addresses, self.content_map))


_NEW = object.__new__
# The slots' own setters (a frozen dataclass refuses setattr): a member is built by writing them.
_READ_ADDRESSES: Callable[[SwarmMember], tuple[PeerAddress, ...]] = vars(SwarmMember)[
    "addresses"
].__get__
_SET_PEER_ID: Callable[[SwarmMember, str], None] = vars(SwarmMember)["peer_id"].__set__
_SET_MODE: Callable[[SwarmMember, PeerMode], None] = vars(SwarmMember)["mode"].__set__
_SET_MAP: Callable[[SwarmMember, None], None] = vars(SwarmMember)["content_map"].__set__
_SET_ADDRESSES: Callable[[SwarmMember, tuple[PeerAddress, ...]], None] = vars(SwarmMember)[
    "addresses"
].__set__
_SET_PREFIX: Callable[[SwarmMember, str | None], None] = vars(MemberSlots)["_prefix"].__set__
_SET_PACKED: Callable[[PackedMember, bytes], None] = vars(PackedMember)["_packed"].__set__


def new_member(peer_id: str, mode: PeerMode, stored: Stored, prefix: str | None) -> SwarmMember:
    """A member as the memory backend keeps it: its addresses as kept (a
    :class:`PackedMember` when packed), no content map, its prefix kept in it."""
    member: SwarmMember
    if isinstance(stored, bytes):
        packed: PackedMember = _NEW(PackedMember)
        _SET_PACKED(packed, stored)
        member = packed
    else:
        member = _NEW(SwarmMember)
        _SET_ADDRESSES(member, stored)
    _SET_PEER_ID(member, peer_id)
    _SET_MODE(member, mode)
    _SET_MAP(member, None)
    _SET_PREFIX(member, prefix)
    return member


class PeerEntry:
    """A registered peer: the fields of its record and its memberships.

    The record handed to the storage is not kept (a new one is built when it is read): its
    fields are, each object the one already held when an equal one is written again.  ``flags``
    is one of a few shared tuples.  ``swarms`` are the IDs of the swarms it joined (a peer in one
    swarm shares that swarm's one-element tuple, :attr:`SwarmEntry.solo`) and ``joined`` its
    member in each, in the same order: the member itself when there is one swarm (no tuple), a
    tuple when several, None when none.  ``profile`` is the rank profile of its addresses, the
    group of every one of its members.  ``addresses`` are kept packed (:data:`Stored`), the
    bytes shared with its members.
    """

    __slots__ = ("addresses", "deadline", "flags", "host", "joined", "peer_id", "profile", "swarms")

    def __init__(
        self,
        peer_id: str,
        flags: Flags,
        addresses: Stored,
        deadline: float,
        host: str,
        profile: RankProfile,
    ) -> None:
        self.peer_id = peer_id
        self.flags = flags
        self.addresses = addresses
        self.deadline = deadline
        self.host = host
        self.profile = profile
        self.swarms: tuple[str, ...] = ()
        self.joined: SwarmMember | tuple[SwarmMember, ...] | None = None

    def members(self) -> tuple[SwarmMember, ...]:
        """The peer's member in each of its swarms, in the order of :attr:`swarms`."""
        joined = self.joined
        if joined is None:
            return ()
        if type(joined) is tuple:
            return joined
        assert isinstance(joined, SwarmMember)
        return (joined,)

    def member_in(self, swarm_id: str) -> SwarmMember | None:
        """The peer's member in the swarm, or None when it is not in it."""
        swarms = self.swarms
        if len(swarms) == 1:
            joined = self.joined
            return joined if swarms[0] == swarm_id and isinstance(joined, SwarmMember) else None
        try:
            at = swarms.index(swarm_id)
        except ValueError:
            return None
        return self.members()[at]

    def set_member(self, swarm_id: str, member: SwarmMember) -> None:
        """Replace the peer's member in the swarm (which it is in)."""
        if len(self.swarms) == 1:
            self.joined = member
            return
        at = self.swarms.index(swarm_id)
        held = self.members()
        self.joined = (*held[:at], member, *held[at + 1 :])

    def add(self, swarm: SwarmEntry, swarm_id: str, member: SwarmMember) -> None:
        """Record a new membership (the swarm's own ID string is kept)."""
        if not self.swarms:
            self.swarms = swarm.solo
            self.joined = member
        else:
            self.swarms = (*self.swarms, swarm_id)
            self.joined = (*self.members(), member)

    def remove(self, swarm_id: str, solo_of: Callable[[str], tuple[str]]) -> SwarmMember | None:
        """Forget the membership of the swarm; its member, or None when not a member.

        ``solo_of`` gives a swarm's shared one-element tuple, for a peer left in one swarm.
        """
        swarms = self.swarms
        if swarm_id not in swarms:
            return None
        at = swarms.index(swarm_id)
        held = self.members()
        member = held[at]
        rest = held[:at] + held[at + 1 :]
        if not rest:
            self.swarms, self.joined = (), None
        elif len(rest) == 1:
            # Back in one swarm: share that swarm's tuple (it exists: the peer is in it).
            others = swarms[:at] + swarms[at + 1 :]
            self.swarms, self.joined = solo_of(others[0]), rest[0]
        else:
            self.swarms, self.joined = swarms[:at] + swarms[at + 1 :], rest
        return member


class RankGroup(MemberList):
    """A rank group's members (an indexable set) with their counts per prefix when few."""

    __slots__ = ("spread",)

    def __init__(self) -> None:
        super().__init__()
        # Over COUNTED_PREFIXES prefixes when last counted: not counted again until small.
        self.spread = False

    def tally(self, member: SwarmMember, by: int) -> None:
        """Count ``member`` (just added: +1, just removed: -1) in its prefix, if counting."""
        counts = self.prefix_counts
        if by < 0 and len(self) < COUNT_UNTIL:
            self.prefix_counts = None
            self.spread = False
        elif counts is None:
            if by > 0 and not self.spread and len(self) >= COUNT_FROM:
                self._recount()
        else:
            prefix = member._prefix
            held = counts.get(prefix, 0) + by
            if held > 0:
                counts[prefix] = held
                if len(counts) > COUNTED_PREFIXES:
                    self.prefix_counts = None
                    self.spread = True
            else:
                counts.pop(prefix, None)

    def _recount(self) -> None:
        counts: dict[str | None, int] = {}
        for member in self:
            prefix = member._prefix
            counts[prefix] = counts.get(prefix, 0) + 1
            if len(counts) > COUNTED_PREFIXES:
                self.spread = True
                return
        self.prefix_counts = counts


_NO_SUSPECTS: frozenset[str] = frozenset()


class SwarmEntry:
    """A swarm with members: its members by rank group, its content maps and reports.

    ``count`` is its number of members (the groups' sizes summed).  A member is at index
    ``member._position`` of its group's list; a group is never empty.
    """

    __slots__ = ("count", "groups", "maps", "reports", "solo", "suspects")

    def __init__(self, swarm_id: str) -> None:
        # The swarms of every peer that is in this swarm alone: one tuple shared by them all.
        self.solo = (swarm_id,)
        self.count = 0
        self.groups: dict[RankProfile, RankGroup] = {}
        self.maps: dict[str, ContentMap] | None = None
        # Corrupt-peer reports: reported member -> reporter host -> corrupt chunks (None: none),
        # and the members reported by enough hosts (an immutable set, handed out as it is).
        self.reports: dict[str, dict[str, int]] | None = None
        self.suspects: frozenset[str] = _NO_SUSPECTS

    def place(self, profile: RankProfile, member: SwarmMember, old: SwarmMember | None) -> None:
        """Add ``member`` (``old`` None), or put it in the place of ``old``, its predecessor.

        ``old`` must be in the group of ``profile`` (a member that changes group is
        :meth:`unplace`-d first and placed with ``old`` None).
        """
        if old is None:
            group = self.groups.get(profile)
            if group is None:
                group = self.groups[profile] = RankGroup()
            _SET_POSITION(member, len(group))
            group.append(member)
            self.count += 1
            group.tally(member, 1)
        else:
            position = old._position
            _SET_POSITION(member, position)
            group = self.groups[profile]
            group[position] = member
            if group.prefix_counts is not None and old._prefix != member._prefix:
                group.tally(old, -1)
                group.tally(member, 1)

    def unplace(self, profile: RankProfile, member: SwarmMember) -> None:
        """Remove ``member`` (held in the group of ``profile``): the group's last takes the hole."""
        self.count -= 1
        group = self.groups[profile]
        last = group.pop()
        if last is not member:
            position = member._position
            _SET_POSITION(last, position)
            group[position] = last
        elif not group:
            del self.groups[profile]
            return
        group.tally(member, -1)

    def at_ranks(self, ranks: list[int]) -> list[SwarmMember]:
        """The members at these ranks (ascending, each below :attr:`count`), groups in order."""
        groups = list(self.groups.values())
        chosen: list[SwarmMember] = []
        group, base = 0, 0
        for rank in ranks:
            while rank >= base + len(groups[group]):
                base += len(groups[group])
                group += 1
            chosen.append(groups[group][rank - base])
        return chosen

    def every_member(self) -> list[SwarmMember]:
        """Every member, group after group."""
        out: list[SwarmMember] = []
        for group in self.groups.values():
            out.extend(group)
        return out
