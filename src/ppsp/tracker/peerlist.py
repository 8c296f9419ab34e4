"""Peer-list selection: pure functions over swarm members, with an injected random source.

The order of preference (PROFILE.md and the drafts' "peer status and network location"):

1. for a chunk-scoped request, peers holding more chunks of the scope (a SEED holds all);
2. peers speaking the requester's peer protocol (``peer_protocol`` of its addresses);
3. peers in the requester's autonomous system (``asn``);
4. random among equals, so that the load spreads over the swarm.

An address's ``priority`` ranks nothing here: it orders one peer's own addresses (which to try
first), and as a rank between peers it would let any member claiming the highest value come
first in every list (twenty attacker networks doing so filled every list of a lab swarm).

The requester itself is never listed.

Every step but the last ranks by what a peer says of itself, which any host can claim.  So a
list is filled in rounds (the *share* policy, docs/PROTOCOL.md "Tracker behaviour"): the first
round takes peers in the order above but at most ``share`` of one network prefix (IPv4 /24,
IPv6 /64, of the member's observed REFLEXIVE address: :func:`member_prefix`), passing over the
rest while peers of other prefixes are left to list; only then are the places left filled from
the prefixes that had their share: the members passed over, by round (each allows ``share``
more of each prefix) and in order, then members not looked at yet, in order.  Where no prefix
has more than ``share`` peers among the best, the list is the ranked one; when every member
sits on one prefix (a lab on 127.0.0.1) it is the ranked one too, round after round.  No host
can take more than ``share`` places of a list from the peers of other prefixes, whatever it
claims or however many peers it registers.
"""

from __future__ import annotations

import random
import sys
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from ppsp.tracker.chunk_scope import ChunkScope, holdings
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.storage.base import (
    MemberGroup,
    SwarmMember,
    member_prefix,
)
from ppsp.wire.builder import keyword_builder
from ppsp.wire.fields import MAX_PEER_ADDRESSES
from ppsp.wire.packed import LISTED_PACKED_BYTES, packed_peer_info
from ppsp.wire.tracker import (
    AddressType,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    RepresentationScope,
)

__all__ = [
    "DRAW_BUDGET",
    "LISTED",
    "LISTED_KEPT",
    "MAX_PEER_LIST",
    "ChunkScope",
    "ListedEntries",
    "holdings",
    "listed_first",
    "member_prefix",
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

DEFAULT_SHARE: int | None = DEFAULT_LIMITS.list_share_per_prefix
"""Entries of one prefix per round of a list, unless the caller says otherwise."""

DRAW_BUDGET = 4096
"""The most members one grouped list draws (:func:`select_from_groups`) looking for peers of
other prefixes.  A list normally draws about as many members as it lists; it draws more only
while the members drawn are of prefixes that already have their share, and stops at this
bound, so that a list costs a bounded time whatever the swarm holds (with the default limits,
more than 16 hosts' worth of registrations, all ranked above the rest, are needed to use it up)."""

_REFLEXIVE = AddressType.REFLEXIVE


def _later_round(item: tuple[int, SwarmMember]) -> int:
    return item[0]


def _share_rounds(ranked: Iterable[SwarmMember], count: int, share: int) -> list[SwarmMember]:
    """The first ``count`` of ``ranked`` (best first) under the share policy."""
    chosen: list[SwarmMember] = []
    later: list[tuple[int, SwarmMember]] = []
    taken: dict[str, int] = {}
    for member in ranked:
        try:
            prefix = member._prefix  # kept by the memory backend
        except AttributeError:
            prefix = member_prefix(member)
        if prefix is not None:
            seen = taken.get(prefix, 0)
            taken[prefix] = seen + 1
            if seen >= share:
                later.append((seen // share, member))
                continue
        chosen.append(member)
        if len(chosen) >= count:
            return chosen
    return _fill_later(chosen, later, count)


def _fill_later(
    chosen: list[SwarmMember], later: list[tuple[int, SwarmMember]], count: int
) -> list[SwarmMember]:
    """``chosen`` (the first round) then members passed over, by round, then rank."""
    if later and len(chosen) < count:
        later.sort(key=_later_round)  # stable: the rank order within each round
        chosen.extend(member for _, member in later[: count - len(chosen)])
    return chosen


def listed_first(
    first: Sequence[SwarmMember],
    ranked: Sequence[SwarmMember],
    count: int,
    share: int | None = DEFAULT_SHARE,
) -> list[SwarmMember]:
    """The first ``count`` of ``first`` then ``ranked`` (a selection's list, drawn with twice
    ``len(first)`` more than ``count``), each member once, under the share policy.

    ``first`` (at most ``share`` of a prefix) counts in its prefix as the first places of
    the list; a ranked member of a prefix that so reached its share waits for a later round
    (the places it leaves go to the ranked members of other prefixes drawn in excess).
    """
    listed = {member.peer_id for member in first}
    rest = [member for member in ranked if member.peer_id not in listed]
    if share is None:
        return [*first, *rest][:count]
    return _share_rounds([*first, *rest], count, max(1, share))


def peer_count(peer_num: PeerNum | None, default: int) -> int:
    """How many peers to return: ``PeerNum`` count, else ``default``, capped at 200."""
    wanted = peer_num.count if peer_num is not None and peer_num.count is not None else default
    return max(0, min(wanted, MAX_PEER_LIST))


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
    share: int | None = DEFAULT_SHARE,
) -> list[SwarmMember]:
    """Pick at most ``count`` of ``candidates`` for ``requester_id``, best first.

    With a ``scope``, peers holding more of it rank first; with ``require_scope`` as well, only
    SEEDs and peers holding at least one chunk of the scope are eligible (chunk-scoped FIND).
    ``share``: entries of one prefix per round (the module's share policy; None: no rounds).
    """
    if count <= 0:
        return []
    protocols = _protocols(requester_addresses)
    asns = _asns(requester_addresses)
    rand = rng.random
    chunks = ChunkScope(scope) if scope else None
    # (-held, protocol mismatch, AS mismatch, random, position): the position makes every key
    # distinct, so the keys sort without ever comparing members.
    ranked: list[tuple[int, int, int, float, int]] = []
    for index, member in enumerate(candidates):
        if member.peer_id == requester_id:
            continue
        held = 0
        if chunks is not None:
            held = _ALL if member.mode is PeerMode.SEED else chunks.held(member.content_map)
            if require_scope and held == 0:
                continue
        # One pass over the addresses: shared protocol, shared AS.
        same_protocol = 1
        same_asn = 1
        for address in member.addresses:
            if address.peer_protocol in protocols:
                same_protocol = 0
            if address.asn in asns:
                same_asn = 0
        ranked.append((-held, same_protocol, same_asn, rand(), index))
    ranked.sort()
    if share is None:
        return [candidates[key[4]] for key in ranked[:count]]
    return _share_rounds((candidates[key[4]] for key in ranked), count, max(1, share))


def select_from_groups(
    groups: Sequence[MemberGroup],
    *,
    exclude: str | None,
    requester_addresses: Sequence[PeerAddress],
    count: int,
    rng: random.Random,
    share: int | None = DEFAULT_SHARE,
    budget: int = DRAW_BUDGET,
) -> list[SwarmMember]:
    """:func:`select_peers` without a scope, over members grouped by rank profile.

    ``exclude`` (the requester's ID) is never listed, wherever it is in ``groups``
    (see :meth:`~ppsp.tracker.storage.Storage.member_groups`).  Each group is ranked once, not
    each member: groups that rank alike for this requester are pooled, pools are taken best
    first, and each pool taken gives a uniform random sample (all of it when it is small enough)
    in a uniformly random order: the ranks of :func:`select_peers`, and as there a uniform choice
    and order among equals.  The groups are read, never copied: the cost is the number of groups
    plus ``count``, whatever the size of the swarm.

    With a ``share`` (the module's share policy) the first round is drawn pool after pool, each
    pool lazily in that random order, a member of a prefix that has its share waiting for its
    round; a pool is left when the round is full, when it is drawn, or when it is known that no
    member left in it can take a place of the round (its groups' ``prefix_counts``, see
    :class:`~ppsp.tracker.storage.base.MemberList`).  The places left go to the members that
    waited, by round then in order, then to members not drawn yet, pool after pool.  At most
    ``budget`` members are drawn for the first round (then the rest of the swarm is not
    considered for it, as with a sampled swarm).  The cost is the number of groups plus the
    members drawn: about ``count`` unless the best pools are crowded by a few prefixes that
    their groups do not count.
    """
    if count <= 0:
        return []
    protocols = _protocols(requester_addresses)
    asns = _asns(requester_addresses)
    pools: dict[tuple[int, int], list[Sequence[SwarmMember]]] = {}
    # A group's best priority ranks nothing (see the module docstring): groups that differ
    # only by it share a pool.
    for (group_protocols, group_asns, _best), members in groups:
        key = (
            1 if protocols.isdisjoint(group_protocols) else 0,
            1 if asns.isdisjoint(group_asns) else 0,
        )
        pool = pools.get(key)
        if pool is None:
            pools[key] = [members]
        else:
            pool.append(members)
    chosen: list[SwarmMember] = []
    ordered = [pools[key] for key in sorted(pools)]
    if share is None:
        for pool in ordered:
            chosen.extend(_random_pick(pool, count - len(chosen), exclude, rng))
            if len(chosen) >= count:
                break
        return chosen
    share = max(1, share)
    later: list[tuple[int, SwarmMember]] = []
    taken: dict[str, int] = {}
    draws: list[_Draw | None] = []
    left = budget
    for pool in ordered:
        if len(chosen) >= count or left <= 0:
            break
        counts = _pool_counts(pool)
        if counts is not None and _open_places(counts, taken, share) <= 0:
            draws.append(None)  # no member here can take a first-round place
            continue
        draw = _Draw(pool, rng)
        draws.append(draw)
        left = draw.first_round(count, exclude, share, taken, chosen, later, left, counts)
    if len(chosen) < count:
        _fill_later(chosen, later, count)
        # Still short: members not drawn yet, in the order of the pools (every prefix has had
        # its share of the places, or there was no one else to list).
        for at, pool in enumerate(ordered):
            if len(chosen) >= count:
                break
            known = draws[at] if at < len(draws) else None
            (known or _Draw(pool, rng)).rest(count, exclude, chosen)
    return chosen


def _pool_counts(pool: list[Sequence[SwarmMember]]) -> dict[str | None, int] | None:
    """The pool's members per prefix (a fresh dictionary), when all its groups count them."""
    counts: dict[str | None, int] | None = None
    for members in pool:
        found: dict[str | None, int] | None = getattr(members, "prefix_counts", None)
        if found is None:
            return None
        if counts is None:
            counts = dict(found)
        else:
            for key, held in found.items():
                counts[key] = counts.get(key, 0) + held
    return counts


def _open_places(counts: dict[str | None, int], taken: dict[str, int], share: int) -> int:
    """How many members counted in ``counts`` (not drawn yet) can take a first-round place:
    all those counted in no prefix, and of each prefix as many as it has places left."""
    places = 0
    for key, held in counts.items():
        if key is None:
            places += held
        else:
            room = share - taken.get(key, 0)
            if room > 0:
                places += held if held < room else room
    return places


class _Draw:
    """The members of one pool (a list of sequences) in a uniformly random order, drawn lazily.

    Indices into the pool's concatenation are drawn without copying it, one by one, rejecting
    indices already drawn, while less than half the pool is drawn; then the rest of the pool
    comes shuffled at once.  Every index drawn next is uniform among those not drawn yet (the
    order of a uniformly random permutation, as :func:`_random_pick` draws).  Indices drawn but not
    used are put back in front (``pending``), so a later pass goes on in the same order.
    """

    __slots__ = ("drawn", "pending", "pool", "rng", "single", "size", "starts")

    def __init__(self, pool: list[Sequence[SwarmMember]], rng: random.Random) -> None:
        self.pool = pool
        self.rng = rng
        if len(pool) == 1:
            self.single: Sequence[SwarmMember] | None = pool[0]
            self.size = len(pool[0])
            self.starts: list[int] = [0]
        else:
            self.single = None
            self.starts = []
            size = 0
            for members in pool:
                self.starts.append(size)
                size += len(members)
            self.size = size
        self.drawn: set[int] | None = None
        self.pending: list[int] = []

    def indices(self, wanted: int) -> list[int]:
        """Up to ``wanted`` indices not handed out yet, in the random order."""
        pending = self.pending
        if pending:
            batch = pending[:wanted]
            del pending[:wanted]
            wanted -= len(batch)
            if wanted <= 0:
                return batch
        else:
            batch = []
        size = self.size
        drawn = self.drawn
        if drawn is None:
            drawn = self.drawn = set()
        remaining = size - len(drawn)
        if remaining <= 0:
            return batch
        wanted = min(wanted, remaining)
        if 2 * (len(drawn) + wanted) <= size:
            # Less than half the pool drawn: uniform indices, rejecting those drawn (each draw
            # is rejected with probability under 1/2).  random() * size, floored, is uniform
            # over the pool within 2**-53 of each index's probability, and several times
            # cheaper than randrange().
            rand = self.rng.random
            while wanted:
                index = int(rand() * size)
                if index not in drawn:
                    drawn.add(index)
                    batch.append(index)
                    wanted -= 1
        else:
            rest = [index for index in range(size) if index not in drawn]
            self.rng.shuffle(rest)
            drawn.update(rest)
            batch.extend(rest[:wanted])
            pending.extend(rest[wanted:])
        return batch

    def members(self, batch: list[int]) -> list[SwarmMember]:
        """The pool's members at the indices of ``batch``."""
        single = self.single
        if single is not None:
            return [single[index] for index in batch]
        pool, starts = self.pool, self.starts
        found = []
        for index in batch:
            which = bisect_right(starts, index) - 1
            found.append(pool[which][index - starts[which]])
        return found

    def first_round(
        self,
        count: int,
        exclude: str | None,
        share: int,
        taken: dict[str, int],
        chosen: list[SwarmMember],
        later: list[tuple[int, SwarmMember]],
        left: int,
        counts: dict[str | None, int] | None,
    ) -> int:
        """Draw members into ``chosen`` (first round) or ``later`` (their round) until
        ``chosen`` holds ``count``, no member left here can join the round, the pool is drawn
        or ``left`` draws are made; return the draws left.

        ``counts``: the pool's members per prefix when known (:func:`_pool_counts`; changed
        here), from which the members not drawn yet that can take a place are known exactly.
        """
        if counts is None:
            return self._first_round_uncounted(count, exclude, share, taken, chosen, later, left)
        open_places = _open_places(counts, taken, share)
        while len(chosen) < count and left > 0:
            wanted = count - len(chosen) + (1 if exclude is not None else 0)
            batch = self.indices(min(wanted, left))
            if not batch:
                return left
            for at, member in enumerate(self.members(batch)):
                # member_prefix(), kept in the member by the memory backend (read without
                # reading its addresses: this loop runs for every member drawn).
                try:
                    prefix = member._prefix
                except AttributeError:
                    prefix = member_prefix(member)
                if member.peer_id == exclude:
                    exclude = None
                    if counts is not None:
                        # One member fewer to draw: one open place fewer when its prefix had
                        # more places left than members.
                        held = counts.get(prefix, 0)
                        counts[prefix] = held - 1
                        if prefix is None or 0 < held <= share - taken.get(prefix, 0):
                            open_places -= 1
                elif prefix is None:
                    chosen.append(member)
                    if counts is not None:
                        counts[None] = counts.get(None, 0) - 1
                        open_places -= 1
                else:
                    seen = taken.get(prefix, 0)
                    taken[prefix] = seen + 1
                    if counts is not None:
                        counts[prefix] = counts.get(prefix, 0) - 1
                    if seen < share:
                        chosen.append(member)
                        if counts is not None:
                            open_places -= 1  # a place taken, a member fewer: one less open
                    else:
                        later.append((seen // share, member))
                if counts is not None and open_places <= 0:
                    self.pending[:0] = batch[at + 1 :]
                    return left - at - 1
                if len(chosen) >= count:
                    self.pending[:0] = batch[at + 1 :]
                    return left - at - 1
            left -= len(batch)
        return left

    def _first_round_uncounted(
        self,
        count: int,
        exclude: str | None,
        share: int,
        taken: dict[str, int],
        chosen: list[SwarmMember],
        later: list[tuple[int, SwarmMember]],
        left: int,
    ) -> int:
        """:meth:`first_round` of a pool whose prefixes are not counted (the common case: a
        large swarm spread over many prefixes), as one tight loop."""
        append = chosen.append
        missing = count - len(chosen)
        while missing > 0 and left > 0:
            batch = self.indices(min(missing + (1 if exclude is not None else 0), left))
            if not batch:
                return left
            for at, member in enumerate(self.members(batch)):
                try:
                    prefix = member._prefix  # kept by the memory backend
                except AttributeError:
                    prefix = member_prefix(member)
                if member.peer_id == exclude:
                    exclude = None
                    continue
                if prefix is not None:
                    seen = taken.get(prefix, 0)
                    taken[prefix] = seen + 1
                    if seen >= share:
                        later.append((seen // share, member))
                        continue
                append(member)
                missing -= 1
                if not missing:
                    self.pending[:0] = batch[at + 1 :]
                    return left - at - 1
            left -= len(batch)
        return left

    def rest(self, count: int, exclude: str | None, chosen: list[SwarmMember]) -> None:
        """Append members not drawn yet, in the random order, until ``chosen`` holds
        ``count`` or the pool is drawn."""
        while len(chosen) < count:
            batch = self.indices(count - len(chosen) + (1 if exclude is not None else 0))
            if not batch:
                return
            for at, member in enumerate(self.members(batch)):
                if member.peer_id == exclude:
                    exclude = None
                    continue
                chosen.append(member)
                if len(chosen) >= count:
                    self.pending[:0] = batch[at + 1 :]
                    return


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
    random itself.  A single sequence of at most twice the draw is ordered whole by random keys
    instead (cheaper than sampling there, and as uniform).
    """
    wanted = count + 1 if exclude is not None else count
    if len(pool) == 1:
        only = pool[0]
        size = len(only)
        if 2 * wanted >= size:
            # Half of it or more (a swarm not much larger than a list): the first ``wanted``
            # in the order of independent random keys, a uniform choice in a uniform order at
            # a third of the cost of sampling (one C call per member instead of Python-level
            # draws).  Two equal keys (about size² / 2⁵⁴) keep the swarm's order, nothing a
            # list would show.
            rand = rng.random
            keys = [rand() for _ in range(size)]
            order = sorted(range(size), key=keys.__getitem__)
            picked = [only[index] for index in order[:wanted]]
        else:
            picked = [only[index] for index in rng.sample(range(size), wanted)]
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


_build_info = keyword_builder(PeerInfo)
"""PeerInfo(...) from the same keyword arguments, at half the cost (ppsp.wire.builder)."""
_packed_info = packed_peer_info


LISTED_KEPT = 8192
"""Peer-list entries kept per generation of :data:`LISTED` (at most twice as many in all).

A kept entry carries what the codecs wrote for it (about 300 bytes of XML, as much of JSON),
so entries are kept for the members listed last, not for every member: at most 16,384 entries,
some 8 MiB whatever the number of peers (issue 16: a tracker of a million peers keeps no
encoded form per peer).  That is the lists of the last 400 to 800 answers of 20; a swarm of a
few thousand members listed again and again (the common case, and every benchmark of
``bench.tracker_instructions``) is listed from kept entries, and an entry not kept is written
again by the codecs' templates."""


class ListedEntries:
    """The peer-list entries of the members listed last, by member (bounded, see
    :data:`LISTED_KEPT`).

    Two generations: a member listed is looked up in the young one, then in the old one (and
    moved to the young one); when the young one holds ``limit`` entries it becomes the old one
    and the old one is dropped.  So an entry listed at least once every ``limit`` listings is
    kept, and memory is bounded by ``2 * limit`` entries.  Entries are keyed by the member's
    identity, and each generation holds its members (``young_members``), so no other object
    can have that identity while its entry is kept.  A storage that changes a member in place
    (the memory backend writes the port of a peer seen from another port into its member: often
    every request) forgets the member's entry first (:meth:`forget`), so a kept entry says what
    a new one would.
    """

    __slots__ = ("limit", "old", "old_members", "young", "young_members")

    def __init__(self, limit: int = LISTED_KEPT) -> None:
        if limit < 1:
            raise ValueError("a table of entries holds at least one")
        self.limit = limit
        self.young: dict[int, PeerInfo] = {}
        self.young_members: list[SwarmMember] = []
        self.old: dict[int, PeerInfo] = {}
        self.old_members: list[SwarmMember] = []

    def get(self, member: SwarmMember, swarm_id: str) -> PeerInfo | None:
        """The entry kept for ``member`` listed for ``swarm_id``, or None."""
        key = id(member)
        info = self.young.get(key)
        if info is None:
            info = self.old.get(key)
            if info is None:
                return None
            self.put(member, info)
        return info if info.swarm_id == swarm_id else None

    def put(self, member: SwarmMember, info: PeerInfo) -> None:
        """Keep ``info`` as the entry of ``member``."""
        if len(self.young) >= self.limit:
            self.old, self.old_members = self.young, self.young_members
            self.young, self.young_members = {}, []
        self.young[id(member)] = info
        self.young_members.append(member)

    def forget(self, member: SwarmMember) -> None:
        """Drop the entry kept for ``member``, which is about to change in place."""
        key = id(member)
        self.young.pop(key, None)
        self.old.pop(key, None)

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def clear(self) -> None:
        """Forget every kept entry."""
        self.young, self.young_members = {}, []
        self.old, self.old_members = {}, []


LISTED = ListedEntries()
"""The entries of the members this process listed last (one table per process: the event loop
is its only writer)."""


def to_peer_infos(members: Iterable[SwarmMember], swarm_id: str) -> tuple[PeerInfo, ...]:
    """The wire form of a peer list: each member's addresses, tagged with the swarm.

    The entries of the members listed last are kept (:data:`LISTED`), and with them what the
    codecs wrote for them; an entry is used again while it was built for the same swarm.
    Entries are immutable, and a member changed in place has its entry forgotten
    (:meth:`ListedEntries.forget`), so a kept entry says what a new one would.
    """
    infos: list[PeerInfo] = []
    append = infos.append
    listed = LISTED
    put = listed.put
    limit = listed.limit
    # A kept entry outlives the request whose swarm ID it was built with: every entry of
    # the swarm holds one shared copy of the ID, not one per listing request (issue 16).
    if type(swarm_id) is str:
        swarm_id = sys.intern(swarm_id)
    for member in members:
        # The generations inline (this loop runs for every listed peer; at 100,000 peers
        # most of them miss both).
        key = id(member)
        info = listed.young.get(key)
        if info is None:
            info = listed.old.get(key)
            if info is not None:
                put(member, info)
        if info is not None and info.swarm_id == swarm_id:
            append(info)
            continue
        packed = member.packed
        if packed and len(packed) <= LISTED_PACKED_BYTES:
            # Written by the codecs from the bytes (ppsp.wire.packed): no address object.
            info = _packed_info(member.peer_id, packed, swarm_id)
            young = listed.young
            if len(young) < limit:  # put() inline, but for a turn of the generations
                young[key] = info
                listed.young_members.append(member)
            else:
                put(member, info)
            append(info)
            continue
        addresses = member.addresses
        if len(addresses) > MAX_PEER_ADDRESSES:
            # A record written before the bound (e.g. kept in Redis by an older release).
            addresses = addresses[:MAX_PEER_ADDRESSES]
        info = _build_info(peer_id=member.peer_id, addresses=addresses, swarm_id=swarm_id)
        put(member, info)
        append(info)
    return tuple(infos)


def requester_info(peer_id: str, reflexive: PeerAddress) -> PeerInfo:
    """The requester's entry of an answer: its ID and the address it was seen at."""
    return _build_info(peer_id=peer_id, addresses=(reflexive,))
