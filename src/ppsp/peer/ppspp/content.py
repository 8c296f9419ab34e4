"""Stored content as a PPSPP seeder serves it: chunks, Merkle tree, peaks and uncle hashes.

Nodes of the tree are named by bin number (RFC 7574 section 4.2); on the wire they travel as
the chunk range of their leaves (section 5.4: "the range of chunks formed by the leaves of the
subtree rooted at the node").  The chunk bytes come from a :class:`ChunkReader`, so that the
I/O layer can read them from a file at explicit offsets while this module stays sans-I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ppsp.peer.content.merkle import MerkleTree, chunk_hash
from ppsp.wire.ppspp import DEFAULT_CHUNK_SIZE, ChunkRange, MerkleHashFunction

__all__ = [
    "BytesChunks",
    "ChunkReader",
    "SeededContent",
    "ServedContent",
    "bin_level",
    "bin_of_range",
    "bin_parent",
    "bin_range",
    "bin_sibling",
]


def bin_level(number: int) -> int:
    """The level of bin ``number`` (leaves are 0): the count of its trailing one bits."""
    # number + 1 turns the trailing ones to zeros and the zero above them to the one bit
    # that ``& ~number`` keeps: its position is the count.
    return ((number + 1) & ~number).bit_length() - 1


def bin_range(number: int) -> ChunkRange:
    """The chunks under bin ``number``, as a chunk range."""
    level = bin_level(number)
    start = (number >> (level + 1)) << level
    return ChunkRange(start=start, end=start + (1 << level) - 1)


def bin_of_range(chunks: ChunkRange) -> int | None:
    """The bin whose leaves are exactly ``chunks``, or None when the range is not a subtree."""
    count = chunks.count
    if count & (count - 1) or chunks.start % count:
        return None
    level = count.bit_length() - 1
    return (chunks.start >> level) * (2 << level) + (1 << level) - 1


def bin_parent(number: int) -> int:
    """The parent of bin ``number``."""
    level = bin_level(number)
    return (number & ~(2 << level)) | (1 << level)


def bin_sibling(number: int) -> int:
    """The sibling of bin ``number``."""
    return number ^ (2 << bin_level(number))


class ChunkReader(Protocol):
    """Where a seeder's chunk bytes come from (a file, memory)."""

    def read_chunk(self, index: int, size: int) -> bytes:
        """The ``size`` bytes of chunk ``index`` (the last chunk may be shorter)."""
        ...


class ServedContent(Protocol):
    """What the seeding engine reads of a content it serves: complete
    (:class:`SeededContent`) or partial (:class:`~ppsp.peer.ppspp.partial.PartialContent`)."""

    @property
    def swarm_id(self) -> bytes:
        """The root hash: the content's swarm ID."""
        ...

    @property
    def size(self) -> int:
        """Bytes."""
        ...

    @property
    def chunk_size(self) -> int:
        """Bytes per chunk (the last chunk may be shorter)."""
        ...

    @property
    def merkle_hash(self) -> MerkleHashFunction:
        """The Merkle tree's hash function."""
        ...

    @property
    def chunk_count(self) -> int:
        """Number of chunks."""
        ...

    @property
    def width(self) -> int:
        """Leaves of the padded tree (a power of two)."""
        ...

    @property
    def height(self) -> int:
        """Levels above the leaves (0 for one chunk)."""
        ...

    @property
    def peaks(self) -> tuple[tuple[int, bytes], ...]:
        """The peak hashes with their bin numbers, left to right (section 5.6.1)."""
        ...

    def chunk_length(self, index: int) -> int:
        """Length of chunk ``index``."""
        ...

    def read(self, index: int) -> bytes:
        """The bytes of chunk ``index`` (ValueError or OSError when they cannot be read)."""
        ...

    def hash_of(self, number: int) -> bytes:
        """The hash of the node at bin ``number`` (ValueError when it cannot be given)."""
        ...

    def peak_for(self, index: int) -> int:
        """The bin of the peak whose subtree holds chunk ``index``."""
        ...

    def announced_ranges(self) -> list[ChunkRange]:
        """What the handshake's answer announces with HAVE, left to right."""
        ...

    def unheld_run(self, index: int) -> int | None:
        """None when chunk ``index`` is held; else the last chunk of the run of unheld
        chunks it starts (requests for them are dropped up to there at once)."""
        ...


class BytesChunks:
    """A :class:`ChunkReader` over content held in memory."""

    __slots__ = ("_chunk_size", "_data")

    def __init__(self, data: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self._data = memoryview(data)
        self._chunk_size = chunk_size

    def read_chunk(self, index: int, size: int) -> bytes:
        """The bytes of chunk ``index``."""
        start = index * self._chunk_size
        return bytes(self._data[start : start + size])


class SeededContent:
    """One stored content a seeder serves: its size, chunk size, Merkle tree and bytes.

    The swarm ID is the tree's root hash (RFC 7574 errata 4724).  Empty content has no root
    hash and cannot be seeded (libswift refuses it too).
    """

    __slots__ = ("_peak_bins", "_reader", "chunk_size", "merkle_hash", "peaks", "size", "tree")

    def __init__(
        self,
        *,
        size: int,
        leaf_hashes: Sequence[bytes],
        reader: ChunkReader,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA1,
    ) -> None:
        if size < 1:
            raise ValueError("empty content has no root hash")
        if chunk_size < 1:
            raise ValueError(f"chunk size {chunk_size} below 1")
        if len(leaf_hashes) != -(-size // chunk_size):
            raise ValueError(f"{len(leaf_hashes)} chunk hashes for {size} bytes")
        self.size = size
        self.chunk_size = chunk_size
        self.merkle_hash = merkle_hash
        self.tree = MerkleTree(leaf_hashes, hash_name=merkle_hash.hashlib_name)
        self._reader = reader
        self.peaks: tuple[tuple[int, bytes], ...] = tuple(self.tree.peaks())
        """The peak hashes with their bin numbers, left to right (section 5.6.1)."""
        self._peak_bins = tuple(number for number, _ in self.peaks)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        merkle_hash: MerkleHashFunction = MerkleHashFunction.SHA1,
    ) -> SeededContent:
        """Content held in memory (tests, small files)."""
        view = memoryview(data)
        leaves = [
            chunk_hash(view[start : start + chunk_size], merkle_hash.hashlib_name)
            for start in range(0, len(data), chunk_size)
        ]
        return cls(
            size=len(data),
            leaf_hashes=leaves,
            reader=BytesChunks(data, chunk_size),
            chunk_size=chunk_size,
            merkle_hash=merkle_hash,
        )

    @property
    def swarm_id(self) -> bytes:
        """The root hash: the swarm ID of stored content."""
        return self.tree.root

    @property
    def chunk_count(self) -> int:
        """Number of chunks."""
        return self.tree.leaf_count

    @property
    def width(self) -> int:
        """Leaves of the padded tree (a power of two): bins run from 0 to ``2 * width - 2``."""
        return self.tree.width

    @property
    def height(self) -> int:
        """Levels above the leaves (0 for one chunk)."""
        return self.tree.height

    def chunk_length(self, index: int) -> int:
        """Length of chunk ``index``: the chunk size, or less for the last chunk."""
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def read(self, index: int) -> bytes:
        """The bytes of chunk ``index``; ValueError when the reader gives fewer (a file cut
        short), OSError when it fails."""
        if not 0 <= index < self.chunk_count:
            raise ValueError(f"chunk {index} outside 0-{self.chunk_count - 1}")
        length = self.chunk_length(index)
        data = self._reader.read_chunk(index, length)
        if len(data) != length:
            raise ValueError(f"chunk {index}: read {len(data)} bytes of {length}")
        return data

    def hash_of(self, number: int) -> bytes:
        """The hash of the node at bin ``number``."""
        level = bin_level(number)
        return self.tree.node(level, number >> (level + 1))

    def peak_for(self, index: int) -> int:
        """The bin of the peak whose subtree holds chunk ``index``."""
        for number in self._peak_bins:
            chunks = bin_range(number)
            if chunks.start <= index <= chunks.end:
                return number
        raise ValueError(f"chunk {index} outside 0-{self.chunk_count - 1}")

    def peak_ranges(self) -> list[ChunkRange]:
        """The chunk ranges of the peaks: what a seeder announces in HAVE (libswift's way)."""
        return [bin_range(number) for number in self._peak_bins]

    def announced_ranges(self) -> list[ChunkRange]:
        """What the handshake's answer announces: the peaks (complete content)."""
        return self.peak_ranges()

    def unheld_run(self, index: int) -> int | None:
        """None: complete content holds every chunk."""
        return None
