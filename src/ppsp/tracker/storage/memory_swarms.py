"""The memory backend's swarms and peers: a swarm's members by rank group, a peer's state.

:class:`~ppsp.tracker.storage.memory.MemoryStorage` keeps per peer one :class:`PeerEntry`
(its record's fields, not the record object, and its memberships; for a peer in one swarm, its
member there as well) and per swarm one :class:`SwarmEntry`: its members grouped by rank profile
(:class:`RankGroup`, a plain list used as an indexable set, each member knowing its position in
it, so that listing a swarm builds nothing and a removal moves the group's last member into the
hole).  A member is found through its peer (:meth:`PeerEntry.member_in`), so a swarm keeps no
table of its members by ID: a peer in one swarm costs its entry in the peer table, its
:class:`PeerEntry` (which is its member) and one slot of a group's list.  Kept apart from the
backend's module: containers with no I/O and no clock.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

from ppsp.tracker.limits import Limits
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import (
    MemberList,
    MemberSlots,
    MemberView,
    RankProfile,
    ReportOutcome,
    SwarmMember,
    SwarmView,
)
from ppsp.tracker.storage.memory_reports import KeptMap, KeptStats, kept_weight, map_of, stats_of
from ppsp.wire.packed import pack, packed_host, unpack
from ppsp.wire.tracker import CorruptPeerReport, PeerAddress, PeerMode, ProtocolVersion

__all__ = [
    "COUNTED_PREFIXES",
    "COUNT_FROM",
    "COUNT_UNTIL",
    "KINDS",
    "KINDS_KEPT",
    "Held",
    "Joined",
    "Kind",
    "PackedMember",
    "PeerEntry",
    "RankGroup",
    "Stored",
    "SwarmEntry",
    "addresses_of",
    "become_member",
    "entry_stored",
    "kind_with_host",
    "kind_with_mode",
    "new_entry",
    "new_member",
    "pack_deadline",
    "read_deadline",
    "read_held",
    "read_joined",
    "set_deadline",
    "set_held",
    "set_joined",
    "set_kind",
    "set_stored",
    "shared_kind",
    "stored_of",
    "with_mode",
]

COUNT_FROM = 64
"""Size from which a group counts its members per prefix (smaller ones are cheap to draw)."""

COUNT_UNTIL = 32
"""Size under which a group forgets its counts (and whether it was spread)."""

COUNTED_PREFIXES = 16
"""Most prefixes a group counts; a group spread over more is marked spread, not counted."""

_SET_POSITION: Callable[[SwarmMember, int], None] = vars(MemberSlots)["_position"].__set__
"""Writes a member's ``_position`` slot (a frozen dataclass refuses ``setattr``)."""

Kind = (
    tuple[ProtocolVersion, PeerState, bool, RankProfile, PeerMode]
    | tuple[ProtocolVersion, PeerState, bool, RankProfile, PeerMode, str]
)
"""A peer's version, state, ``grace_used``, rank profile and mode (its member's, in its one
swarm): one shared tuple per distinct combination (a handful of states times the profiles,
which are few, times two modes; :func:`shared_kind`).  A sixth item, the peer's host, is there
only when the host is not the one its addresses tell (:func:`packed_host`): then the tuple is
the peer's own."""

KINDS: dict[Kind, Kind] = {}
"""One shared tuple per kind a peer entry holds (bounded by :data:`KINDS_KEPT`)."""

KINDS_KEPT = 65_536


def shared_kind(kind: Kind) -> Kind:
    """The shared tuple equal to ``kind`` (``kind`` itself when new, kept while the table has
    room)."""
    found = KINDS.get(kind)
    if found is None:
        found = kind
        if len(KINDS) < KINDS_KEPT:
            KINDS[kind] = kind
    return found


Stored = bytes | tuple[PeerAddress, ...]
"""A peer's addresses as the backend keeps them: packed (:mod:`ppsp.wire.packed`),
or the tuple itself when they cannot be packed (IPv6, say)."""


def addresses_of(stored: Stored) -> tuple[PeerAddress, ...]:
    """The addresses kept as ``stored``."""
    return unpack(stored) if isinstance(stored, bytes) else stored


_NEW = object.__new__
# The slots' own accessors (a frozen dataclass refuses setattr): a member is built by writing
# them.  The ``addresses`` slot of the members built here holds the addresses as kept
# (:data:`Stored`); the ``content_map`` slot of a peer entry in several swarms holds its members.
_READ_STORED: Callable[[SwarmMember], Stored] = vars(SwarmMember)["addresses"].__get__
_READ_MAP: Callable[[SwarmMember], object] = vars(SwarmMember)["content_map"].__get__
_SET_PEER_ID: Callable[[SwarmMember, str], None] = vars(SwarmMember)["peer_id"].__set__
_SET_MODE: Callable[[SwarmMember, PeerMode], None] = vars(SwarmMember)["mode"].__set__
_SET_MAP: Callable[[SwarmMember, object], None] = vars(SwarmMember)["content_map"].__set__
_SET_STORED: Callable[[SwarmMember, Stored], None] = vars(SwarmMember)["addresses"].__set__
# A peer entry's ``addresses`` slot holds :data:`Held` (read as Any: a bytes or a pair).
_READ_HELD: Callable[[SwarmMember], Any] = vars(SwarmMember)["addresses"].__get__
_SET_HELD: Callable[[SwarmMember, Held], None] = vars(SwarmMember)["addresses"].__set__
_SET_PREFIX: Callable[[SwarmMember, str | None], None] = vars(MemberSlots)["_prefix"].__set__
# A peer entry's ``mode`` slot holds its :data:`Kind` (PeerEntry.kind; PeerEntry.mode reads the
# mode there).
_SET_KIND: Callable[[SwarmMember, Kind], None] = vars(SwarmMember)["mode"].__set__


def stored_of(member: SwarmMember) -> Stored:
    """The addresses as a member built by this backend (or a peer entry) keeps them."""
    if type(member) is PeerEntry:
        return entry_stored(member)
    return _READ_STORED(member)


class PackedMember(SwarmMember):
    """A member whose ``addresses`` slot holds them as kept (:data:`Stored`, most often packed
    bytes): :attr:`addresses` unpacks them.

    Equal to (and hashed as) the :class:`SwarmMember` of the same fields.  The inherited slot
    ``addresses`` stands behind this class's property; the dataclass's ``__init__`` and
    ``__setstate__`` (``dataclasses.replace``, copies) write it through the property's setter,
    which packs what can be packed; the backend builds its members with :func:`new_member`.
    """

    __slots__ = ()

    @property
    def addresses(self) -> tuple[PeerAddress, ...]:
        """The member's addresses, unpacked (a kept tuple when read lately)."""
        held = _READ_STORED(self)
        return unpack(held) if type(held) is bytes else held  # type: ignore[return-value]

    @addresses.setter
    def addresses(self, value: tuple[PeerAddress, ...]) -> None:
        packed = pack(value)
        _SET_STORED(self, value if packed is None else packed)

    @property
    def packed(self) -> bytes | None:
        """The member's addresses packed, or None when they are kept as a tuple."""
        held = _READ_STORED(self)
        return held if type(held) is bytes else None

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


def new_member(peer_id: str, mode: PeerMode, stored: Stored, prefix: str | None) -> PackedMember:
    """A member as the memory backend keeps it (for a peer in several swarms): its addresses
    as kept, no content map, its prefix kept in it."""
    member: PackedMember = _NEW(PackedMember)
    _SET_STORED(member, stored)
    _SET_PEER_ID(member, peer_id)
    _SET_MODE(member, mode)
    _SET_MAP(member, None)
    _SET_PREFIX(member, prefix)
    return member


_DEADLINE = struct.Struct("<d")
_pack_deadline = _DEADLINE.pack
_read_deadline = _DEADLINE.unpack_from
read_deadline = _read_deadline
"""The deadline at the start of a peer entry's :data:`Held` bytes (a one-element tuple)."""
pack_deadline = _pack_deadline
"""The 8 bytes of a deadline at the start of a peer entry's :data:`Held` bytes."""
read_held = _READ_HELD
"""What a peer entry's ``addresses`` slot holds (:data:`Held`)."""
set_held = _SET_HELD
"""Write a peer entry's ``addresses`` slot (:data:`Held`)."""
read_joined = _READ_MAP
"""What a peer entry's ``content_map`` slot holds: its swarms' IDs, or a :class:`Joined`."""

Held = bytes | tuple[tuple[PeerAddress, ...], float]
"""What a peer entry's ``addresses`` slot holds: its deadline (8 bytes, a double) followed by
its packed addresses, or, when they cannot be packed, the pair of its addresses and deadline.
A packed peer's deadline costs no ``float`` object (32 bytes) and its entry no slot."""


class Joined:
    """The memberships of a peer in several swarms: their IDs and its member in each."""

    __slots__ = ("ids", "members")

    def __init__(self, ids: tuple[str, ...], members: tuple[SwarmMember, ...]) -> None:
        self.ids = ids
        self.members = members


class PeerEntry(PackedMember):
    """A registered peer: the fields of its record, its memberships, and for a peer in one
    swarm (the common case) its member there: the entry *is* that member.

    The record handed to the storage is not kept (a new one is built when it is read): its
    fields are, each object the one already held when an equal one is written again.  The
    entry has no slot of its own: a member's six, 80 bytes in all.  The member's ``addresses``
    slot holds the deadline and the addresses (:data:`Held`; :attr:`deadline`,
    :func:`entry_stored`); its ``content_map`` slot the memberships (:attr:`swarms`): a tuple of
    swarm IDs (a peer in one swarm shares that swarm's one-element tuple,
    :attr:`SwarmEntry.solo`; none: empty), or a :class:`Joined` for several swarms
    (:attr:`content_map` reads None); its ``mode`` slot the :attr:`kind`, one of a few shared
    tuples (version, state, ``grace_used``, rank profile: the group of every one of the peer's
    members, and the mode: :attr:`mode` reads it there).  The :attr:`host` is not kept: it is
    the REFLEXIVE address the packed addresses end with (:func:`packed_host`), which in open
    mode it always is (a PeerID answers to the host that registered it); only a peer whose
    host is another (a bearer token moved it, addresses that cannot be packed) keeps it, in
    its own kind tuple.

    In one swarm, the entry is listed as its member there (``mode``, ``_position``,
    ``_prefix``: a member's fields), saving a member object per peer.  In none, or in several,
    it is no member (its members are :class:`PackedMember` objects, one per swarm, in the
    order of :attr:`swarms`), and ``mode`` means nothing.  A member handed out never changes
    (peer lists keep entries by member identity, ``peerlist.LISTED``): whenever an entry that
    is a member would change a member's field (mode, addresses) or stop being a member, the
    peer gets a new entry (:meth:`copy`) and the old object is left as it was.  The record's
    fields (deadline, host, the kind but its mode) are no member's: they are written in place.
    An entry is only built by the backend: its constructor (``dataclasses.replace``, copies,
    pickling) builds a plain :class:`PackedMember` of the same fields.
    """

    __slots__ = ()

    kind: Kind
    """The peer's version, state, ``grace_used``, rank profile and mode (see the class): the
    ``mode`` slot, read through that slot's own descriptor (set below), as fast as a slot."""

    # Every slot is written by its descriptor's setter (set_kind and those above): an
    # assignment would run the frozen dataclass's __setattr__, a Python function (some 600 ns,
    # eight times a slot's setter).

    def __new__(cls, **fields: Any) -> PackedMember:  # type: ignore[misc]
        """The member's plain form, not an entry (``replace()``, copies: see the class)."""
        return PackedMember(**fields) if fields else _NEW(PackedMember)

    # Read-only: an entry is never built by the dataclass's __init__ (see __new__).
    @property  # type: ignore[misc]
    def addresses(self) -> tuple[PeerAddress, ...]:
        """The peer's addresses, unpacked (a kept tuple when read lately)."""
        held = _READ_HELD(self)
        if type(held) is bytes:
            return unpack(held[8:])
        addresses: tuple[PeerAddress, ...] = held[0]
        return addresses

    @property
    def packed(self) -> bytes | None:
        """The peer's addresses packed, or None when they are kept as a tuple."""
        held = _READ_HELD(self)
        return held[8:] if type(held) is bytes else None

    @property
    def content_map(self) -> None:
        """No content map (the storage keeps maps per swarm)."""
        return None

    @property
    def deadline(self) -> float:
        """When the peer's running timer runs out."""
        held = _READ_HELD(self)
        if type(held) is bytes:
            deadline: float = _read_deadline(held)[0]
        else:
            deadline = held[1]
        return deadline

    @property
    def swarms(self) -> tuple[str, ...]:
        """The IDs of the swarms the peer joined, in the order it joined them."""
        held = _READ_MAP(self)
        if type(held) is tuple:
            return held
        assert isinstance(held, Joined)
        return held.ids

    @property
    def mode(self) -> PeerMode:
        """The peer's mode in its one swarm (when it is in one: see the class)."""
        return self.kind[4]

    @property
    def host(self) -> str:
        """The host address the peer is counted for (see the class)."""
        kind = self.kind
        if len(kind) == 6:
            return kind[5]
        held = _READ_HELD(self)
        host = packed_host(held[8:]) if type(held) is bytes else None
        assert host is not None  # else the kind holds the host
        return host

    @property
    def profile(self) -> RankProfile:
        """The rank profile of the peer's addresses (the group of each of its members)."""
        return self.kind[3]

    def copy(self) -> PeerEntry:
        """A new entry with the same fields and memberships (the member fields included)."""
        entry: PeerEntry = _NEW(PeerEntry)
        _SET_HELD(entry, _READ_HELD(self))
        _SET_PEER_ID(entry, self.peer_id)
        _SET_KIND(entry, self.kind)
        _SET_MAP(entry, _READ_MAP(self))
        _SET_PREFIX(entry, self._prefix)
        return entry

    def members(self) -> tuple[SwarmMember, ...]:
        """The peer's member in each of its swarms, in the order of :attr:`swarms`."""
        held = _READ_MAP(self)
        if type(held) is tuple:
            return (self,) if held else ()
        assert isinstance(held, Joined)
        return held.members

    def member_in(self, swarm_id: str) -> SwarmMember | None:
        """The peer's member in the swarm, or None when it is not in it."""
        held = _READ_MAP(self)
        if type(held) is tuple:
            return self if held and held[0] == swarm_id else None
        assert isinstance(held, Joined)
        try:
            at = held.ids.index(swarm_id)
        except ValueError:
            return None
        return held.members[at]


# A peer entry's kind is its ``mode`` slot under another name: ``entry.kind`` reads the slot
# as directly as ``entry.mode`` reads a member's (PeerEntry.mode is a property).
PeerEntry.kind = vars(SwarmMember)["mode"]
set_kind = _SET_KIND
"""Write a peer entry's kind in place (its mode is a member's field: an entry handed out as a
member gets a new mode in a copy, :func:`with_mode`)."""


def kind_with_host(kind: Kind, host: str) -> Kind:
    """``kind`` (its first five items) with ``host``: the kind of a peer entry whose addresses
    do not tell the host it is counted for (a tuple of its own)."""
    version, state, grace_used, profile, mode = kind[:5]
    return (version, state, grace_used, profile, mode, host)


def kind_with_mode(kind: Kind, mode: PeerMode) -> Kind:
    """``kind`` with another mode (the host it holds, if any, kept)."""
    if kind[4] is mode:
        return kind
    version, state, grace_used, profile = kind[:4]
    base = shared_kind((version, state, grace_used, profile, mode))
    return base if len(kind) == 5 else kind_with_host(base, kind[5])


def _held(stored: Stored, deadline: float) -> Held:
    if isinstance(stored, bytes):
        return _pack_deadline(deadline) + stored
    return (stored, deadline)


def entry_stored(entry: PeerEntry) -> Stored:
    """The entry's addresses as kept (:data:`Stored`: packed bytes, or the tuple)."""
    held = _READ_HELD(entry)
    if type(held) is bytes:
        return held[8:]
    addresses: tuple[PeerAddress, ...] = held[0]
    return addresses


def set_deadline(entry: PeerEntry, deadline: float) -> None:
    """Write the entry's deadline (it is no member's field: in place)."""
    held = _READ_HELD(entry)
    if type(held) is bytes:
        _SET_HELD(entry, _pack_deadline(deadline) + held[8:])
    else:
        _SET_HELD(entry, (held[0], deadline))


def new_entry(
    peer_id: str, kind: Kind, stored: Stored, prefix: str | None, deadline: float
) -> PeerEntry:
    """A peer's entry, in no swarm yet (``prefix``: its addresses', kept for its members;
    ``kind``: with the host when ``stored`` does not tell it, :func:`kind_with_host`; its mode
    means nothing until the peer joins its first swarm)."""
    entry: PeerEntry = _NEW(PeerEntry)
    _SET_HELD(entry, _held(stored, deadline))
    _SET_PEER_ID(entry, peer_id)
    _SET_KIND(entry, kind)
    _SET_MAP(entry, ())
    _SET_PREFIX(entry, prefix)
    return entry


def become_member(entry: PeerEntry, mode: PeerMode, swarms: tuple[str]) -> None:
    """Make an entry that is no member (and never was handed out as one) the peer's member in
    its one swarm ``swarms`` (the swarm's shared tuple)."""
    _SET_KIND(entry, kind_with_mode(entry.kind, mode))
    _SET_MAP(entry, swarms)


def set_joined(entry: PeerEntry, swarms: tuple[str, ...], members: tuple[SwarmMember, ...]) -> None:
    """Give an entry that is no member its memberships in several swarms (or none)."""
    _SET_MAP(entry, Joined(swarms, members) if members else ())


def set_stored(entry: PeerEntry, stored: Stored, prefix: str | None, deadline: float) -> None:
    """Write new addresses (with their prefix) and deadline into an entry no one was handed as
    a member."""
    _SET_HELD(entry, _held(stored, deadline))
    _SET_PREFIX(entry, prefix)


def with_mode(entry: PeerEntry, mode: PeerMode) -> PeerEntry:
    """A copy of an entry with another mode (its member's in its one swarm)."""
    fresh = entry.copy()
    _SET_KIND(fresh, kind_with_mode(fresh.kind, mode))
    return fresh


class RankGroup(MemberList):
    """A rank group's members (an indexable set) with their counts per prefix when few, and
    the rank profile they share."""

    __slots__ = ("profile", "spread")

    def __init__(self, profile: RankProfile) -> None:
        super().__init__()
        self.profile = profile
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
    ``member._position`` of its group's list; a group is never empty.  ``groups`` is the one
    group of a swarm whose members share one rank profile (the common case: a dictionary of
    one entry costs 224 bytes, some 20 bytes a peer in swarms of 10), else a dictionary of
    its groups by profile (None for no group, until the first member is placed).
    """

    __slots__ = ("count", "groups", "maps", "reports", "solo", "suspects")

    def __init__(self, swarm_id: str) -> None:
        # The swarms of every peer that is in this swarm alone: one tuple shared by them all.
        self.solo = (swarm_id,)
        self.count = 0
        self.groups: RankGroup | dict[RankProfile, RankGroup] | None = None
        self.maps: dict[str, KeptMap] | None = None
        # Corrupt-peer reports: reported member -> reporter host -> corrupt chunks (None: none),
        # and the members reported by enough hosts (an immutable set, handed out as it is).
        self.reports: dict[str, dict[str, int]] | None = None
        self.suspects: frozenset[str] = _NO_SUSPECTS

    def group_items(self) -> list[tuple[RankProfile, RankGroup]]:
        """The groups with their profiles, in a stable order."""
        groups = self.groups
        if groups is None:
            return []
        if type(groups) is RankGroup:
            return [(groups.profile, groups)]
        assert isinstance(groups, dict)
        return list(groups.items())

    def _lists(self) -> list[RankGroup]:
        groups = self.groups
        if groups is None:
            return []
        if type(groups) is RankGroup:
            return [groups]
        assert isinstance(groups, dict)
        return list(groups.values())

    def group_of(self, profile: RankProfile) -> RankGroup:
        """The group of ``profile`` (which exists)."""
        groups = self.groups
        if type(groups) is RankGroup:
            assert groups.profile == profile
            return groups
        assert isinstance(groups, dict)
        return groups[profile]

    def _new_place(self, profile: RankProfile) -> RankGroup:
        """The group of ``profile``, made when there is none."""
        groups = self.groups
        if groups is None:
            group = self.groups = RankGroup(profile)
            return group
        if type(groups) is RankGroup:
            if groups.profile is profile or groups.profile == profile:
                return groups
            group = RankGroup(profile)
            self.groups = {groups.profile: groups, profile: group}
            return group
        assert isinstance(groups, dict)
        found = groups.get(profile)
        if found is None:
            found = groups[profile] = RankGroup(profile)
        return found

    def _drop_group(self, profile: RankProfile) -> None:
        """Forget the (empty) group of ``profile``; one group left is held alone."""
        groups = self.groups
        if type(groups) is RankGroup:
            self.groups = None
            return
        assert isinstance(groups, dict)
        del groups[profile]
        if len(groups) == 1:
            self.groups = next(iter(groups.values()))

    def place(self, profile: RankProfile, member: SwarmMember, old: SwarmMember | None) -> None:
        """Add ``member`` (``old`` None), or put it in the place of ``old``, its predecessor.

        ``old`` must be in the group of ``profile`` (a member that changes group is
        :meth:`unplace`-d first and placed with ``old`` None).
        """
        if old is None:
            group = self._new_place(profile)
            _SET_POSITION(member, len(group))
            group.append(member)
            self.count += 1
            group.tally(member, 1)
        else:
            position = old._position
            _SET_POSITION(member, position)
            group = self.group_of(profile)
            group[position] = member
            if group.prefix_counts is not None and old._prefix != member._prefix:
                group.tally(old, -1)
                group.tally(member, 1)

    def unplace(self, profile: RankProfile, member: SwarmMember) -> None:
        """Remove ``member`` (held in the group of ``profile``): the group's last takes the hole."""
        self.count -= 1
        group = self.group_of(profile)
        last = group.pop()
        if last is not member:
            position = member._position
            _SET_POSITION(last, position)
            group[position] = last
        elif not group:
            self._drop_group(profile)
            return
        group.tally(member, -1)

    def at_ranks(self, ranks: list[int]) -> list[SwarmMember]:
        """The members at these ranks (ascending, each below :attr:`count`), groups in order."""
        groups = self._lists()
        chosen: list[SwarmMember] = []
        group, base = 0, 0
        for rank in ranks:
            while rank >= base + len(groups[group]):
                base += len(groups[group])
                group += 1
            chosen.append(groups[group][rank - base])
        return chosen

    def sample(self, limit: int | None, rng: random.Random) -> list[SwarmMember]:
        """Every member (``limit`` None or not below :attr:`count`), else a uniform sample of
        ``limit`` of them, in rank order: by rank among the groups' lists, no list of every
        member made."""
        if limit is None or self.count <= limit:
            return self.every_member()
        return self.at_ranks(sorted(rng.sample(range(self.count), limit)))

    def every_member(self) -> list[SwarmMember]:
        """Every member, group after group."""
        out: list[SwarmMember] = []
        for group in self._lists():
            out.extend(group)
        return out

    def map_weight(self, peer_id: str) -> int:
        """The weight of the member's content map here (0: none kept)."""
        found = None if self.maps is None else self.maps.get(peer_id)
        return 0 if found is None else kept_weight(found)

    def drop_map(self, peer_id: str) -> int:
        """Forget the member's content map here; its weight (0: none was kept)."""
        maps = self.maps
        found = None if maps is None else maps.pop(peer_id, None)
        if not maps:
            self.maps = None
        return 0 if found is None else kept_weight(found)

    def with_maps(self, chosen: list[SwarmMember]) -> list[SwarmMember]:
        """The members ``chosen`` with their content maps here, where one is kept."""
        maps = self.maps
        if not maps:
            return chosen
        return [
            member
            if (found := maps.get(member.peer_id)) is None
            else SwarmMember(
                peer_id=member.peer_id,
                mode=member.mode,
                addresses=member.addresses,
                content_map=map_of(found),
            )
            for member in chosen
        ]

    def mapped(self, member: SwarmMember) -> SwarmMember:
        """``member`` with its content map here when one is kept, else ``member`` itself."""
        found = None if self.maps is None else self.maps.get(member.peer_id)
        if found is None:
            return member
        return SwarmMember(
            peer_id=member.peer_id,
            mode=member.mode,
            addresses=member.addresses,
            content_map=map_of(found),
        )

    def view(
        self,
        swarm_id: str,
        chosen: list[SwarmMember],
        maps: int,
        stats: dict[str, dict[str, KeptStats]],
    ) -> SwarmView:
        """The dashboard's view of the members ``chosen`` (the first ``maps`` with their
        content maps), with their statistics for the swarm (``stats``: peer -> swarm ->
        statistics kept)."""
        sample: list[MemberView] = []
        for at, member in enumerate(chosen):
            held = stats.get(member.peer_id)
            kept = held.get(swarm_id) if held else None
            sample.append(
                MemberView(
                    member=self.mapped(member) if at < maps else member,
                    stats=None if kept is None else stats_of(kept),
                )
            )
        return SwarmView(swarm_id=swarm_id, members=self.count, sample=tuple(sample))

    def count_report(
        self, report: CorruptPeerReport, reporter_host: str, limits: Limits
    ) -> tuple[ReportOutcome, int, int]:
        """Count a believed corrupt-peer report about a member (obligation 13): its outcome,
        and how many more reported members and suspects the swarm has."""
        reported = suspects = 0
        if self.reports is None:
            self.reports = {}
        hosts = self.reports.get(report.peer_id)
        if hosts is None:
            hosts = self.reports[report.peer_id] = {}
            reported = 1
        if reporter_host in hosts:
            hosts[reporter_host] = report.corrupt_chunks
            return ReportOutcome.REPEATED, reported, suspects
        if len(hosts) >= limits.reporters_kept:
            return ReportOutcome.REPEATED, reported, suspects
        hosts[reporter_host] = report.corrupt_chunks
        if len(hosts) >= limits.suspect_reporters and report.peer_id not in self.suspects:
            self.suspects = self.suspects | {report.peer_id}
            suspects = 1
        return ReportOutcome.COUNTED, reported, suspects
