"""Content a downloading peer serves over PPSPP while it holds only part of it, sans-I/O.

A representation's PPSPP content (8 KiB chunks, SHA-256, its RFC 7574 root) is cut by the
swarm's description in *description chunks* (256 KiB by default).  When the description's
chunk size is the PPSPP chunk size times ``2**k``, description chunk ``d`` covers the aligned
subtree of PPSPP chunks ``d * 2**k`` to ``(d + 1) * 2**k - 1``: a peer holding it computes
every hash inside that subtree from its bytes.  What it cannot compute are the hashes above;
those follow from the *subtree hashes*, one hash per description chunk:

* the hash of the level-``k`` node of each description chunk that spans ``2**k`` PPSPP chunks
  (every one but possibly the last), then
* when the last description chunk is shorter, the hashes of the aligned subtrees that cover
  its PPSPP chunks exactly, largest first: the content's peaks below level ``k``
  (:func:`cover_bins`; at most ``k`` of them).

With the padding's empty hashes beyond the content they rebuild the root (RFC 7574 section
5.1), which is how they are checked (:class:`SubtreeHashes`); then every node at level ``k``
or above, and every peak, is known.  A peer serving the content over PPSPP gives them (``GET
/swarm/{swarm}/ppspp/{root}/subtrees``: their concatenation, :func:`encode_subtrees`); a peer
holding every chunk computes them (:func:`subtree_hashes_of_tree`).

:class:`PartialContent` is what :class:`~ppsp.peer.ppspp.seeder.Seeder` serves for such a peer:
the peaks, the hash of any node a DATA of a held chunk needs (inside a held description chunk:
computed from its bytes on demand, checked against the subtree hashes, kept in a small cache),
the held chunk ranges for HAVE.  Which description chunks are held is not kept here: a
predicate (the session's store) says so at each question.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ppsp.errors import IntegrityError
from ppsp.peer.content.merkle import MerkleTree, bin_number, chunk_hash, parent_hash, tree_height
from ppsp.peer.ppspp.channel import aligned_bins
from ppsp.peer.ppspp.content import ChunkReader, bin_level, bin_range
from ppsp.wire.ppspp import ChunkRange, MerkleHashFunction

__all__ = [
    "PartialContent",
    "SubtreeHashes",
    "cover_bins",
    "encode_subtrees",
    "subtree_hashes_of_tree",
    "subtree_level",
]

MAX_SUBTREE_LEVEL = 16
"""Description chunks of at most 2**16 PPSPP chunks (a bound on the work per description
chunk; the project's sizes give 5)."""


def subtree_level(description_chunk_size: int, chunk_size: int) -> int | None:
    """``k`` such that a description chunk of ``description_chunk_size`` bytes is ``2**k``
    PPSPP chunks of ``chunk_size`` bytes, or None when it is not (partial serving is then off
    for that content: a description chunk would not be a subtree)."""
    if chunk_size < 1 or description_chunk_size < chunk_size:
        return None
    if description_chunk_size % chunk_size:
        return None
    ratio = description_chunk_size // chunk_size
    if ratio & (ratio - 1):
        return None
    level = ratio.bit_length() - 1
    return level if level <= MAX_SUBTREE_LEVEL else None


def cover_bins(chunk_count: int, level: int) -> list[int]:
    """The bins whose hashes are the subtree hashes of a ``chunk_count``-chunk content cut at
    ``level``: each full span's level-``level`` node, then the aligned subtrees covering the
    rest, largest first (left to right in both)."""
    if chunk_count < 1 or level < 0:
        raise ValueError("a content of at least one chunk, a level of at least 0")
    full = chunk_count >> level
    bins = [bin_number(level, position) for position in range(full)]
    if chunk_count > full << level:
        bins += aligned_bins(ChunkRange(start=full << level, end=chunk_count - 1))
    return bins


def encode_subtrees(hashes: Sequence[bytes]) -> bytes:
    """The subtree hashes as the route answers them: concatenated, in order."""
    return b"".join(hashes)


def subtree_hashes_of_tree(tree: MerkleTree, level: int) -> list[bytes]:
    """The subtree hashes of a complete tree (a seeder's, or a peer's that holds every
    chunk) cut at ``level``."""
    result = []
    for number in cover_bins(tree.leaf_count, level):
        node_level = bin_level(number)
        result.append(tree.node(node_level, number >> (node_level + 1)))
    return result


class SubtreeHashes:
    """The subtree hashes of one content, checked against its root hash.

    ``hashes`` are those of :func:`cover_bins` in order; IntegrityError when their number or
    size is wrong or they do not rebuild ``root``.  Keeps every node from the cover up to
    the root (about two hashes per description chunk).
    """

    __slots__ = ("chunk_count", "level", "merkle_hash", "nodes", "root")

    def __init__(
        self,
        root: bytes,
        *,
        chunk_count: int,
        level: int,
        hashes: Sequence[bytes],
        merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA256,
    ) -> None:
        bins = cover_bins(chunk_count, level)
        digest = merkle_hash.digest_size
        if len(hashes) != len(bins):
            raise IntegrityError(f"{len(hashes)} subtree hashes, not {len(bins)}")
        if any(len(value) != digest for value in hashes):
            raise IntegrityError(f"a subtree hash is not {digest} bytes")
        self.root = root
        self.chunk_count = chunk_count
        self.level = level
        self.merkle_hash = merkle_hash
        cover = dict(zip(bins, hashes, strict=True))
        nodes: dict[int, bytes] = {}
        empty = bytes(digest)
        name = merkle_hash.hashlib_name

        def node_hash(number: int) -> bytes:
            given = cover.get(number)
            if given is not None:
                nodes[number] = given
                return given
            if bin_range(number).start >= chunk_count:
                return empty  # padding (section 5.1): not kept
            half = 1 << (bin_level(number) - 1)
            value = parent_hash(node_hash(number - half), node_hash(number + half), name)
            nodes[number] = value
            return value

        # Recursion depth: the tree's height (at most 32 levels of 32-bit chunk numbers).
        computed = node_hash((1 << tree_height(chunk_count)) - 1)
        if not hmac.compare_digest(computed, root):
            raise IntegrityError("the subtree hashes do not rebuild the root hash")
        self.nodes = nodes
        """Every node from the cover up to the root: bin -> hash (nodes past the content,
        empty, left out)."""

    @classmethod
    def decode(
        cls,
        data: bytes,
        root: bytes,
        *,
        chunk_count: int,
        level: int,
        merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA256,
    ) -> SubtreeHashes:
        """Read the route's answer (:func:`encode_subtrees`) and check it against ``root``;
        IntegrityError when it is not exactly the expected hashes of this content."""
        digest = merkle_hash.digest_size
        expected = len(cover_bins(chunk_count, level)) * digest
        if len(data) != expected:
            raise IntegrityError(f"{len(data)} bytes of subtree hashes, not {expected}")
        hashes = [data[offset : offset + digest] for offset in range(0, len(data), digest)]
        return cls(
            root, chunk_count=chunk_count, level=level, hashes=hashes, merkle_hash=merkle_hash
        )

    def hashes(self) -> list[bytes]:
        """The subtree hashes, in order (what :func:`encode_subtrees` writes)."""
        return [self.nodes[number] for number in cover_bins(self.chunk_count, self.level)]


class PartialContent:
    """A content served while only some of its description chunks are held (see the module
    docstring); what :class:`~ppsp.peer.ppspp.content.ServedContent` asks.

    ``holds(d)`` says whether description chunk ``d`` is held (verified and stored); ``reader``
    reads the bytes of held PPSPP chunks.  ``cache_size`` description chunks' inner hashes are
    kept (the least recently used forgotten first).
    """

    __slots__ = (
        "_cache",
        "_cache_size",
        "_holds",
        "_peak_bins",
        "_reader",
        "chunk_count",
        "chunk_size",
        "description_chunks",
        "height",
        "level",
        "merkle_hash",
        "peaks",
        "size",
        "subtrees",
        "width",
    )

    def __init__(
        self,
        subtrees: SubtreeHashes,
        *,
        size: int,
        chunk_size: int,
        reader: ChunkReader,
        holds: Callable[[int], bool],
        cache_size: int = 16,
    ) -> None:
        if size < 1 or chunk_size < 1:
            raise ValueError("content of at least one byte and chunks of at least one byte")
        if -(-size // chunk_size) != subtrees.chunk_count:
            raise ValueError(f"{size} bytes are not {subtrees.chunk_count} chunks")
        if cache_size < 1:
            raise ValueError("the cache keeps at least one description chunk")
        self.subtrees = subtrees
        self.size = size
        self.chunk_size = chunk_size
        self.merkle_hash = subtrees.merkle_hash
        self.level = subtrees.level
        self.chunk_count = subtrees.chunk_count
        self.height = tree_height(self.chunk_count)
        self.width = 1 << self.height
        self.description_chunks = -(-self.chunk_count >> self.level)
        self._reader = reader
        self._holds = holds
        self._cache: OrderedDict[int, dict[int, bytes]] = OrderedDict()
        self._cache_size = cache_size
        peaks: list[tuple[int, bytes]] = []
        first = 0
        for level in range(self.height, -1, -1):
            if self.chunk_count & (1 << level):
                number = bin_number(level, first >> level)
                peaks.append((number, subtrees.nodes[number]))
                first += 1 << level
        self.peaks: tuple[tuple[int, bytes], ...] = tuple(peaks)
        """The peak hashes with their bin numbers, left to right (section 5.6.1)."""
        self._peak_bins = tuple(number for number, _ in peaks)

    @property
    def swarm_id(self) -> bytes:
        """The root hash: the swarm ID of the content."""
        return self.subtrees.root

    # --- what is held ---------------------------------------------------------------------

    def span(self, description_index: int) -> ChunkRange:
        """The PPSPP chunks of description chunk ``description_index``."""
        if not 0 <= description_index < self.description_chunks:
            raise ValueError(f"description chunk {description_index} outside the content")
        start = description_index << self.level
        end = min(start + (1 << self.level), self.chunk_count) - 1
        return ChunkRange(start=start, end=end)

    def holds_chunk(self, index: int) -> bool:
        """Whether PPSPP chunk ``index`` is held (its description chunk is)."""
        return 0 <= index < self.chunk_count and self._holds(index >> self.level)

    def held_ranges(self) -> list[ChunkRange]:
        """The held PPSPP chunks as ranges, left to right, adjacent ones merged."""
        ranges: list[ChunkRange] = []
        for number in range(self.description_chunks):
            if not self._holds(number):
                continue
            span = self.span(number)
            if ranges and ranges[-1].end + 1 == span.start:
                ranges[-1] = ChunkRange(start=ranges[-1].start, end=span.end)
            else:
                ranges.append(span)
        return ranges

    def announced_ranges(self) -> list[ChunkRange]:
        """What the handshake's answer announces with HAVE: the held ranges."""
        return self.held_ranges()

    def unheld_run(self, index: int) -> int | None:
        """None when chunk ``index`` is held; else the last chunk of its description chunk."""
        if self.holds_chunk(index):
            return None
        return self.span(index >> self.level).end

    # --- bytes and hashes -----------------------------------------------------------------

    def chunk_length(self, index: int) -> int:
        """Length of chunk ``index``: the chunk size, or less for the last chunk."""
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def read(self, index: int) -> bytes:
        """The bytes of held chunk ``index``; ValueError when it is not held or the reader
        gives fewer bytes, OSError when it fails."""
        if not self.holds_chunk(index):
            raise ValueError(f"chunk {index} is not held")
        length = self.chunk_length(index)
        data = self._reader.read_chunk(index, length)
        if len(data) != length:
            raise ValueError(f"chunk {index}: read {len(data)} bytes of {length}")
        return data

    def hash_of(self, number: int) -> bytes:
        """The hash of the node at bin ``number``: from the subtree hashes at or above the
        cover, else from the bytes of its (held) description chunk; ValueError otherwise."""
        known = self.subtrees.nodes.get(number)
        if known is not None:
            return known
        chunks = bin_range(number)
        if bin_level(number) >= self.level or chunks.end >= self.chunk_count:
            raise ValueError(f"no hash of bin {number}")
        inner = self._inner(chunks.start >> self.level)
        value = inner.get(number)
        if value is None:
            raise ValueError(f"no hash of bin {number}")
        return value

    def peak_for(self, index: int) -> int:
        """The bin of the peak whose subtree holds chunk ``index``."""
        for number in self._peak_bins:
            chunks = bin_range(number)
            if chunks.start <= index <= chunks.end:
                return number
        raise ValueError(f"chunk {index} outside 0-{self.chunk_count - 1}")

    def _inner(self, description_index: int) -> dict[int, bytes]:
        """The hashes of every full node inside description chunk ``description_index``,
        computed from its bytes and checked against the subtree hashes (ValueError when it
        is not held or its bytes do not match them)."""
        cache = self._cache
        inner = cache.get(description_index)
        if inner is not None:
            cache.move_to_end(description_index)
            return inner
        span = self.span(description_index)
        name = self.merkle_hash.hashlib_name
        inner = {
            2 * index: chunk_hash(self.read(index), name)
            for index in range(span.start, span.end + 1)
        }
        for level in range(1, self.level + 1):
            half = 1 << (level - 1)
            for position in range(span.start >> level, (span.end + 1) >> level):
                number = bin_number(level, position)
                if bin_range(number).end > span.end:
                    break
                inner[number] = parent_hash(inner[number - half], inner[number + half], name)
        # The subtree hashes inside this span: its level-k node, or (a short last span) the
        # aligned subtrees covering it.
        cover = (
            aligned_bins(span)
            if span.count < 1 << self.level
            else [bin_number(self.level, description_index)]
        )
        for number in cover:
            if not hmac.compare_digest(inner[number], self.subtrees.nodes[number]):
                raise ValueError(f"description chunk {description_index} does not match the root")
        cache[description_index] = inner
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return inner
