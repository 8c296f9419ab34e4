"""Checking what a PPSPP peer sends against a trusted root hash (RFC 7574 sections 5.5-5.6),
shared by the download over one channel (:mod:`.leecher`) and the chunk client
(:mod:`.client`).

Both keep their hashes in a :class:`TreeHashes`: two maps of tree nodes (bin numbers) to
hashes, ``verified``, trusted (the root at first), and ``pending``, received in INTEGRITY
messages but not checked yet (bounded: the oldest goes first).  The functions here move hashes
from ``pending`` to ``verified`` when they, with the chunk's own hash or the padding's empty
hashes, rebuild a trusted node; hashes that lead to a wrong result are dropped from
``pending``.  Sans-I/O.
"""

from __future__ import annotations

import bisect
import hmac

from ppsp.peer.content.merkle import parent_hash, tree_height
from ppsp.peer.ppspp.content import bin_level, bin_parent, bin_range, bin_sibling
from ppsp.wire.ppspp import ChunkRange

__all__ = [
    "NONE_ABOVE",
    "ChunkRanges",
    "TreeCheck",
    "TreeHashes",
    "verify_chunk",
    "verify_peaks",
]

NONE_ABOVE = 1 << 64
"""What :meth:`ChunkRanges.around` gives when no chunk of the set is above: past any chunk."""


class TreeCheck:
    """The shape of one content's tree: ``count`` chunks under a root hash, hashed with
    ``hash_name`` into ``digest_size``-byte hashes."""

    __slots__ = ("count", "digest_size", "empty", "hash_name", "root_bin", "root_hash")

    def __init__(self, count: int, root_hash: bytes, hash_name: str, digest_size: int) -> None:
        self.count = count
        self.root_hash = root_hash
        self.hash_name = hash_name
        self.digest_size = digest_size
        self.empty = bytes(digest_size)
        self.root_bin = (1 << tree_height(count)) - 1


def verify_peaks(
    tree: TreeCheck, verified: dict[int, bytes], pending: dict[int, bytes]
) -> bool | None:
    """Trust the peak hashes (section 5.6.1) once they, with the padding's empty hashes,
    rebuild the root hash; also the nodes between them and the root.  True when trusted,
    False when they do not rebuild it (they are dropped), None while one is missing."""
    count = tree.count
    peaks: dict[int, bytes] = {}
    first = 0
    for level in range(tree_height(count), -1, -1):
        if count & (1 << level):
            number = (first >> level) * (2 << level) + (1 << level) - 1
            digest = verified.get(number) or pending.get(number)
            if digest is None:
                return None
            peaks[number] = digest
            first += 1 << level
    derived: dict[int, bytes] = {}

    def node_hash(number: int) -> bytes:
        if number in peaks:
            return peaks[number]
        if bin_range(number).start >= count:
            return tree.empty
        half = 1 << (bin_level(number) - 1)
        value = parent_hash(node_hash(number - half), node_hash(number + half), tree.hash_name)
        derived[number] = value
        return value

    if not hmac.compare_digest(node_hash(tree.root_bin), tree.root_hash):
        for number in peaks:
            pending.pop(number, None)
        return False
    for number, digest in (peaks | derived).items():
        verified[number] = digest
        pending.pop(number, None)
    return True


def verify_chunk(
    tree: TreeCheck,
    verified: dict[int, bytes],
    pending: dict[int, bytes],
    index: int,
    leaf: bytes,
) -> bool | None:
    """Check chunk ``index`` of hash ``leaf`` up to a verified node: True when it verifies
    (the hashes on the way become verified), False when it does not (the pending ones that
    led there are dropped), None when a hash on the way up is missing."""
    node, value = 2 * index, leaf
    learned: list[tuple[int, bytes]] = []
    while True:
        anchor = verified.get(node)
        if anchor is not None:
            if not hmac.compare_digest(anchor, value):
                for number, _ in learned:  # they led to a wrong result: forget them
                    pending.pop(number, None)
                return False
            break
        if node == tree.root_bin:
            return None  # cannot happen while the root is verified
        sibling = bin_sibling(node)
        if bin_range(sibling).start >= tree.count:
            # Padding beyond the content (section 5.1): always the empty hash, never one a
            # peer sent. A peer that announces fewer chunks than the content has and sends
            # the real hashes of the rest would otherwise rebuild the real root from a
            # truncated tree, and a download of its first chunks would end "verified".
            other = tree.empty
        else:
            sent = verified.get(sibling) or pending.get(sibling)
            if sent is None:
                return None
            other = sent
        learned.append((node, value))
        learned.append((sibling, other))
        parent = bin_parent(node)
        left, right = (value, other) if node < sibling else (other, value)
        node, value = parent, parent_hash(left, right, tree.hash_name)
    for number, digest in learned:
        verified[number] = digest
        pending.pop(number, None)
    return True


class TreeHashes:
    """One channel's hashes of a content's tree, checked against its root hash.

    ``root_hash`` is trusted from the start; the tree's shape is known once the chunk count
    is (:meth:`set_count`; a download over one channel learns it from the peer's peaks).
    INTEGRITY hashes go to :meth:`receive` (at most ``max_pending`` kept unchecked, the
    oldest dropped first), the peaks are trusted by :meth:`check_peaks` and each chunk's hash
    checked by :meth:`check`.
    """

    __slots__ = (
        "digest_size",
        "hash_name",
        "max_pending",
        "peaks_trusted",
        "pending",
        "root_hash",
        "tree",
        "verified",
    )

    def __init__(
        self,
        root_hash: bytes,
        hash_name: str,
        digest_size: int,
        *,
        max_pending: int,
        count: int | None = None,
    ) -> None:
        self.root_hash = root_hash
        self.hash_name = hash_name
        self.digest_size = digest_size
        self.max_pending = max_pending
        self.verified: dict[int, bytes] = {}
        """Trusted nodes: the root, and what hashes up to it."""
        self.pending: dict[int, bytes] = {}
        """Hashes received and not checked yet, oldest first."""
        self.peaks_trusted = False
        self.tree: TreeCheck | None = None
        if count is not None:
            self.set_count(count)

    @property
    def root_bin(self) -> int:
        """The root's bin number (0 while the chunk count is unknown)."""
        return 0 if self.tree is None else self.tree.root_bin

    def set_count(self, count: int) -> None:
        """The content has ``count`` chunks: its tree's shape, with only the root trusted."""
        self.tree = TreeCheck(count, self.root_hash, self.hash_name, self.digest_size)
        self.verified = {self.tree.root_bin: self.root_hash}
        self.peaks_trusted = False

    def receive(self, number: int, digest: bytes) -> bool:
        """An INTEGRITY hash of node ``number``: kept to be checked; False when it differs
        from the node's verified hash (it is dropped)."""
        known = self.verified.get(number)
        if known is not None:
            return hmac.compare_digest(known, digest)
        pending = self.pending
        pending.pop(number, None)
        if len(pending) >= self.max_pending:
            del pending[next(iter(pending))]
        pending[number] = digest
        return True

    def check_peaks(self) -> bool | None:
        """Trust the peaks once they rebuild the root (:func:`verify_peaks`; at most once):
        True when trusted (now or before), False when they do not, None while one is
        missing."""
        if self.peaks_trusted:
            return True
        tree = self.tree
        assert tree is not None, "the chunk count comes first"
        trusted = verify_peaks(tree, self.verified, self.pending)
        if trusted:
            self.peaks_trusted = True
        return trusted

    def check(self, index: int, leaf: bytes) -> bool | None:
        """Check chunk ``index`` of hash ``leaf`` (:func:`verify_chunk`)."""
        tree = self.tree
        assert tree is not None, "the chunk count comes first"
        return verify_chunk(tree, self.verified, self.pending, index, leaf)


class ChunkRanges:
    """A set of chunks as sorted disjoint ranges (adjacent ones merged), at most ``limit``:
    what a peer's HAVEs say it holds (a receiving engine keeps it beside its hashes)."""

    __slots__ = ("_ends", "_limit", "_starts")

    def __init__(self, limit: int) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._limit = limit

    def add(self, chunks: ChunkRange) -> bool:
        """Add ``chunks``; False (nothing added) when that would pass the limit."""
        starts, ends = self._starts, self._ends
        # The ranges touching or adjacent to ``chunks``: from ``low`` to ``high - 1``.
        low = bisect.bisect_left(ends, chunks.start - 1)
        high = bisect.bisect_right(starts, chunks.end + 1)
        if low == high and len(starts) >= self._limit:
            return False
        start = min(chunks.start, starts[low]) if low < high else chunks.start
        end = max(chunks.end, ends[high - 1]) if low < high else chunks.end
        starts[low:high] = [start]
        ends[low:high] = [end]
        return True

    def covers(self, first: int, last: int) -> bool:
        """Whether every chunk from ``first`` to ``last`` is in the set."""
        at = bisect.bisect_right(self._starts, first) - 1
        return at >= 0 and self._ends[at] >= last

    def around(self, index: int) -> tuple[int, int]:
        """The chunks of the set nearest to ``index`` at or below it and at or above it (both
        ``index`` when it is in the set): -1 when none is below, :data:`NONE_ABOVE` when none
        is above."""
        starts = self._starts
        at = bisect.bisect_right(starts, index) - 1
        below = -1
        if at >= 0:
            below = self._ends[at]
            if below >= index:
                return index, index
        return below, starts[at + 1] if at + 1 < len(starts) else NONE_ABOVE

    def __len__(self) -> int:
        """The number of disjoint ranges."""
        return len(self._starts)

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self.covers(index, index)
