"""A swarm's member as a storage hands it out, and what peer lists read of it.

:class:`SwarmMember` (with the slots the memory backend keeps in it, :class:`MemberSlots`), the
members of one swarm grouped by rank profile (:data:`RankProfile`, :data:`MemberGroup`,
:class:`MemberList`, :func:`rank_profile`, :func:`group_members`) and the network prefix a member
counts in (:func:`prefix_of`, :func:`member_prefix`).  Part of the storage interface: re-exported
by :mod:`ppsp.tracker.storage.base`, where the backends, the tracker core and peer lists import
them from.

Layer: sans-I/O (the tracker's core).  Imports only :mod:`ppsp.wire` and
:mod:`ppsp.tracker.limits`, never the rest of the storage package (which imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ppsp.tracker.limits import prefix_key
from ppsp.wire.tracker import AddressType, ContentMap, PeerAddress, PeerMode

__all__ = [
    "MemberGroup",
    "MemberList",
    "MemberSlots",
    "RankProfile",
    "SwarmMember",
    "group_members",
    "member_prefix",
    "prefix_of",
    "rank_profile",
]


class MemberSlots:
    """Slots where code around the storage keeps bookkeeping in a member (see :class:`SwarmMember`).

    ``_position``: where the memory backend keeps the member in its rank group's list.
    ``_prefix``: the member's :func:`member_prefix`, kept by the memory backend so that a peer
    list reads it without reading the member's addresses.
    Not dataclass fields: equality, hashing, ``repr``, ``replace`` and copies ignore them.
    """

    __slots__ = ("_position", "_prefix")

    _position: int
    _prefix: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmMember(MemberSlots):
    """A peer as a member of one swarm, with what peer-list selection needs.

    A backend that keeps its members as objects (the memory backend) hands out the same object
    until the member's mode or addresses change, so that
    :func:`ppsp.tracker.peerlist.to_peer_infos` lists an unchanged member it listed lately as
    the same entry, whose encoded forms the codecs keep in turn (for a bounded number of
    members, :data:`ppsp.tracker.peerlist.LISTED`).  The memory backend also keeps in it the
    member's position in its rank group (``_position``) and its network prefix (``_prefix``),
    and keeps the addresses of most members packed (a subclass whose ``addresses`` unpacks
    them, equal to the plain member: :class:`~ppsp.tracker.storage.memory_swarms.PackedMember`).
    """

    peer_id: str
    mode: PeerMode
    addresses: tuple[PeerAddress, ...]
    content_map: ContentMap | None = None

    @property
    def packed(self) -> bytes | None:
        """The member's addresses packed (:mod:`ppsp.wire.packed`) when the storage keeps them
        so, else None (read :attr:`addresses`): a peer list carries them packed to the codecs."""
        return None


RankProfile = tuple[tuple[str, ...], tuple[str, ...], int | None]
"""What peer-list ranking reads of a member's addresses: its peer protocols and its ASNs (each
sorted, without repeats) and its best priority (None when no address has one)."""

MemberGroup = tuple[RankProfile, Sequence[SwarmMember]]
"""Members of one swarm sharing a rank profile: every requester ranks them alike."""


class MemberList(list[SwarmMember]):
    """A group's members as a storage keeps them, with how many sit on each network prefix.

    ``prefix_counts``: :func:`member_prefix` -> members of the list with it (None for members
    counted in no prefix), exact whenever it is not None; None when the storage does not know
    (a small group, or one spread over many prefixes).  Peer-list selection uses it to stop
    drawing a crowded group once no member of it can take a first-round place.
    """

    __slots__ = ("prefix_counts",)

    def __init__(self) -> None:
        super().__init__()
        self.prefix_counts: dict[str | None, int] | None = None


_PREFIXES: dict[str, str] = {}
"""IPv6 (and odd) address text -> prefix key; IPv4 keys are cut from the text directly."""

_PREFIX_CACHE_SIZE = 65_536


def prefix_of(ip: str) -> str:
    """The key of the network prefix of an observed IP address, as peer lists count them.

    IPv4 (the /24): the text up to its last dot, as the tracker sees addresses in canonical
    form; IPv6 (the /64): :func:`~ppsp.tracker.limits.prefix_key`, an IPv4-mapped address
    as its IPv4 key.  Text that is no IP address is its own key.
    """
    if ":" not in ip:
        return ip[: ip.rfind(".")]
    found = _PREFIXES.get(ip)
    if found is None:
        try:
            key = prefix_key(ip)
        except ValueError:
            key = ip
        if "." in key:  # an IPv4-mapped address: the IPv4 form of the key
            key = key[: key.rfind(".")]
        if len(_PREFIXES) >= _PREFIX_CACHE_SIZE:
            _PREFIXES.clear()
        found = _PREFIXES[ip] = key
    return found


def member_prefix(member: SwarmMember) -> str | None:
    """The network prefix a member counts in for peer lists, or None (counted in none).

    The prefix of its observed address, the REFLEXIVE address the tracker puts last in every
    record; a member without one (written by other means) counts in no prefix.
    """
    addresses = member.addresses
    if not addresses:
        return None
    last = addresses[-1]
    if last.type is not AddressType.REFLEXIVE:
        return None
    return prefix_of(last.ip)


def rank_profile(addresses: Iterable[PeerAddress]) -> RankProfile:
    """The rank profile of a member with these addresses."""
    protocols: list[str] = []
    asns: list[str] = []
    best: int | None = None
    for address in addresses:
        if address.peer_protocol is not None:
            protocols.append(address.peer_protocol)
        if address.asn is not None:
            asns.append(address.asn)
        priority = address.priority
        if priority is not None and (best is None or priority > best):
            best = priority
    return _canonical(protocols), _canonical(asns), best


def _canonical(values: list[str]) -> tuple[str, ...]:
    if len(values) <= 1:
        return tuple(values)
    return tuple(sorted(set(values)))


def group_members(members: Iterable[SwarmMember]) -> list[MemberGroup]:
    """Members grouped by rank profile, groups in order of first appearance."""
    groups: dict[RankProfile, list[SwarmMember]] = {}
    for member in members:
        groups.setdefault(rank_profile(member.addresses), []).append(member)
    return list(groups.items())
