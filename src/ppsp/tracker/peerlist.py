"""Peer-list selection: pure functions over swarm members, with an injected random source.

The order of preference (PROFILE.md and the drafts' "peer status and network location"):

1. for a chunk-scoped request, peers holding more chunks of the scope (a SEED holds all);
2. peers speaking the requester's peer protocol (``peer_protocol`` of its addresses);
3. peers in the requester's autonomous system (``asn``);
4. peers with a higher address ``priority``;
5. random among equals, so that the load spreads over the swarm.

The requester itself is never listed.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from ppsp.core.fields import MAX_PEER_ADDRESSES
from ppsp.tracker.messages import (
    ContentMap,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    RepresentationScope,
    positional_builder,
)
from ppsp.tracker.storage.base import MemberGroup, MemberSlots, SwarmMember

__all__ = [
    "MAX_PEER_LIST",
    "holdings",
    "peer_count",
    "requester_info",
    "select_from_groups",
    "select_peers",
    "to_peer_infos",
]

MAX_PEER_LIST = 200
"""The most peers one list holds, whatever the request asks for."""

_ALL = 1 << 62
"""Holding score of a SEED: more than any content map can hold."""


def peer_count(peer_num: PeerNum | None, default: int) -> int:
    """How many peers to return: ``PeerNum`` count, else ``default``, capped at 200."""
    wanted = peer_num.count if peer_num is not None and peer_num.count is not None else default
    return max(0, min(wanted, MAX_PEER_LIST))


def _count_bits(bitmap: bytes, first: int, last: int) -> int:
    """Set bits at positions ``first..last`` (bit 0 = most significant bit of byte 0)."""
    total = len(bitmap) * 8
    last = min(last, total - 1)
    if first > last:
        return 0
    value = int.from_bytes(bitmap, "big") >> (total - 1 - last)
    return (value & ((1 << (last - first + 1)) - 1)).bit_count()


def holdings(content_map: ContentMap | None, scope: Iterable[RepresentationScope]) -> int:
    """How many chunks of ``scope`` the content map says are held."""
    if content_map is None:
        return 0
    by_rep: dict[str, list[RepresentationScope]] = {}
    for item in scope:
        by_rep.setdefault(item.representation_id, []).append(item)
    held = 0
    for rep in content_map.representations:
        wanted = by_rep.get(rep.representation_id)
        if not wanted:
            continue
        for seg in rep.segments:
            seg_last = min(seg.end_index, seg.start_index + seg.chunkmap_size - 1)
            for item in wanted:
                lo = max(item.start_index, seg.start_index)
                hi = seg_last if item.end_index is None else min(item.end_index, seg_last)
                if lo <= hi:
                    held += _count_bits(seg.bitmap, lo - seg.start_index, hi - seg.start_index)
    return held


def _protocols(addresses: Iterable[PeerAddress]) -> set[str]:
    return {a.peer_protocol for a in addresses if a.peer_protocol is not None}


def _asns(addresses: Iterable[PeerAddress]) -> set[str]:
    return {a.asn for a in addresses if a.asn is not None}


def select_peers(
    candidates: Sequence[SwarmMember],
    *,
    requester_id: str,
    requester_addresses: Sequence[PeerAddress],
    count: int,
    rng: random.Random,
    scope: Sequence[RepresentationScope] = (),
    require_scope: bool = False,
) -> list[SwarmMember]:
    """Pick at most ``count`` of ``candidates`` for ``requester_id``, best first.

    With a ``scope``, peers holding more of it rank first; with ``require_scope`` as well, only
    SEEDs and peers holding at least one chunk of the scope are eligible (chunk-scoped FIND).
    """
    if count <= 0:
        return []
    protocols = _protocols(requester_addresses)
    asns = _asns(requester_addresses)
    rand = rng.random
    # (-held, protocol mismatch, AS mismatch, -priority, random, position): the position makes
    # every key distinct, so the keys sort without ever comparing members.
    ranked: list[tuple[int, int, int, int, float, int]] = []
    for index, member in enumerate(candidates):
        if member.peer_id == requester_id:
            continue
        held = 0
        if scope:
            held = _ALL if member.mode is PeerMode.SEED else holdings(member.content_map, scope)
            if require_scope and held == 0:
                continue
        # One pass over the addresses: shared protocol, shared AS, best priority.
        same_protocol = 1
        same_asn = 1
        best: int | None = None
        for address in member.addresses:
            if address.peer_protocol in protocols:
                same_protocol = 0
            if address.asn in asns:
                same_asn = 0
            priority = address.priority
            if priority is not None and (best is None or priority > best):
                best = priority
        ranked.append((-held, same_protocol, same_asn, 1 if best is None else -best, rand(), index))
    ranked.sort()
    return [candidates[key[5]] for key in ranked[:count]]


def select_from_groups(
    groups: Sequence[MemberGroup],
    *,
    exclude: str | None,
    requester_addresses: Sequence[PeerAddress],
    count: int,
    rng: random.Random,
) -> list[SwarmMember]:
    """:func:`select_peers` without a scope, over members grouped by rank profile.

    ``exclude`` (the requester's ID) is never listed, wherever it is in ``groups``
    (see :meth:`~ppsp.tracker.storage.Storage.member_groups`).  Each group is ranked once, not
    each member: groups that rank alike for this requester are pooled, pools are taken best
    first, and each pool taken gives a uniform random sample (all of it when it is small enough)
    in a uniformly random order: the ranks of :func:`select_peers`, and as there a uniform choice
    and order among equals.  The groups are read, never copied: the cost is the number of groups
    plus ``count``, whatever the size of the swarm.
    """
    if count <= 0:
        return []
    protocols = _protocols(requester_addresses)
    asns = _asns(requester_addresses)
    pools: dict[tuple[int, int, int], list[Sequence[SwarmMember]]] = {}
    for (group_protocols, group_asns, best), members in groups:
        key = (
            1 if protocols.isdisjoint(group_protocols) else 0,
            1 if asns.isdisjoint(group_asns) else 0,
            1 if best is None else -best,
        )
        pool = pools.get(key)
        if pool is None:
            pools[key] = [members]
        else:
            pool.append(members)
    chosen: list[SwarmMember] = []
    for key in sorted(pools):
        chosen.extend(_random_pick(pools[key], count - len(chosen), exclude, rng))
        if len(chosen) >= count:
            break
    return chosen


def _random_pick(
    pool: list[Sequence[SwarmMember]], count: int, exclude: str | None, rng: random.Random
) -> list[SwarmMember]:
    """``count`` members of the pool's sequences but ``exclude`` (all when fewer), chosen
    uniformly, in a uniformly random order, in O(``count`` + number of sequences) time.

    The pool is never concatenated: distinct indices into it are drawn (``random.sample`` of a
    ``range`` costs the size of the sample, not of the range) and mapped to (sequence, offset)
    through the cumulative sizes.  One index more than needed is drawn when there is a member to
    leave out, and the excluded member is dropped if drawn, else the last draw: the first
    ``count`` of a uniformly random order of the pool without ``exclude``, which is uniformly
    random itself.
    """
    wanted = count + 1 if exclude is not None else count
    if len(pool) == 1:
        only = pool[0]
        size = len(only)
        picked = [only[index] for index in rng.sample(range(size), min(size, wanted))]
    else:
        starts: list[int] = []
        size = 0
        for members in pool:
            starts.append(size)
            size += len(members)
        picked = []
        for index in rng.sample(range(size), min(size, wanted)):
            which = bisect_right(starts, index) - 1
            picked.append(pool[which][index - starts[which]])
    if exclude is not None:
        for position, member in enumerate(picked):
            if member.peer_id == exclude:
                del picked[position]
                break
    del picked[count:]
    return picked


_build_info = positional_builder(PeerInfo)
"""PeerInfo(peer_id=..., addresses=..., swarm_id=...), at half the cost."""


_SET_LISTED = MemberSlots._listed.__set__  # type: ignore[attr-defined]
"""Writes a member's ``_listed`` slot (a frozen dataclass refuses ``setattr``)."""


def to_peer_infos(members: Iterable[SwarmMember], swarm_id: str) -> tuple[PeerInfo, ...]:
    """The wire form of a peer list: each member's addresses, tagged with the swarm.

    Each member's entry is built once and kept in the member (see :class:`SwarmMember`); it is
    used again while it was built for the same swarm.  Members and entries are immutable, so a
    kept entry always says what a new one would.
    """
    infos: list[PeerInfo] = []
    append = infos.append
    for member in members:
        try:
            info: PeerInfo = member._listed  # type: ignore[attr-defined]
            if info.swarm_id == swarm_id:
                append(info)
                continue
        except AttributeError:
            pass
        addresses = member.addresses
        if len(addresses) > MAX_PEER_ADDRESSES:
            # A record written before the bound (e.g. kept in Redis by an older release).
            addresses = addresses[:MAX_PEER_ADDRESSES]
        info = _build_info(member.peer_id, addresses, swarm_id)
        if isinstance(member, MemberSlots):
            _SET_LISTED(member, info)
        append(info)
    return tuple(infos)


def requester_info(peer_id: str, reflexive: PeerAddress) -> PeerInfo:
    """The requester's entry of an answer: its ID and the address it was seen at."""
    return _build_info(peer_id, (reflexive,), None)
