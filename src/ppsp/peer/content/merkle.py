"""Merkle hash trees over chunks (RFC 7574 section 5), with SHA-256 or another hash function.

The tree is built as RFC 7574 section 5.1 describes: the leaves are the chunk hashes, left to
right; the base is widened to the next power of two with *empty* hashes (zero bytes, as many as
the hash function's digest); a parent is the hash of its two children concatenated, except that
the parent of two empty hashes is itself empty.  A tree of one chunk has that chunk's hash as
its root.

The hash function is a parameter, ``hash_name`` (a :mod:`hashlib` name of Table 5 of RFC 7574:
``"sha1"``, ``"sha224"``, ``"sha256"``, ``"sha384"``, ``"sha512"``); SHA-256 is the default, the
one the project's content descriptions use.  :func:`ppspp_root_hash` gives the root hash of a
file the way libswift (SHA-1, 1024-byte chunks) names it: libswift derives its root from the
peak hashes (section 5.6.1), hashing the last peak with zero hashes up to its sibling peak,
which is the padded tree's root above, so both constructions agree.

Nodes are named by bin number (section 4.2): node ``(level, position)`` is
``position * 2**(level + 1) + 2**level - 1``, so leaves are the even numbers ``2 * index`` and the
root of a tree ``2**h`` leaves wide is ``2**h - 1``.

To verify chunk *i* against a trusted root, a receiver needs its *uncle hashes* (section 5.2):
the sibling of the leaf, then the sibling of each ancestor up to (not including) the root, in
that order, bottom-up.  A chunk can also be checked against a full stored hash list, which is
itself checked once against the root.  Pure functions and one immutable class; no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

from ppsp.errors import IntegrityError

__all__ = [
    "DEFAULT_HASH",
    "EMPTY_HASH",
    "HASH_SIZE",
    "MerkleTree",
    "bin_number",
    "chunk_hash",
    "chunk_hash_of_parts",
    "hash_size",
    "merkle_root",
    "parent_hash",
    "ppspp_root_hash",
    "root_from_uncles",
    "tree_height",
    "uncle_bins",
    "verify_hash_list",
    "verify_with_hash_list",
    "verify_with_uncles",
]

DEFAULT_HASH = "sha256"
"""The default hash function's :mod:`hashlib` name."""

HASH_SIZE = 32
"""Size of a SHA-256 hash in bytes (the default function's)."""

EMPTY_HASH = bytes(HASH_SIZE)
"""The SHA-256 tree's hash of a padding leaf, and of any node whose two children are empty."""

_CONSTRUCTORS: dict[str, Callable[..., hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha224": hashlib.sha224,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
"""The hash functions of RFC 7574 Table 5, by hashlib name."""


def _new(hash_name: str) -> Callable[..., hashlib._Hash]:
    try:
        return _CONSTRUCTORS[hash_name]
    except KeyError:
        raise ValueError(f"unknown Merkle hash function {hash_name!r}") from None


# From hashlib, not from the PPSPP wire model's table of the same sizes, which stored content
# over HTTP has no other use for (it stays out of ``ppsp get``'s start-up).
_SIZES: dict[str, int] = {name: new().digest_size for name, new in _CONSTRUCTORS.items()}
_EMPTY_BY_SIZE: dict[int, bytes] = {size: bytes(size) for size in _SIZES.values()}


def hash_size(hash_name: str = DEFAULT_HASH) -> int:
    """Size in bytes of a hash of the function ``hash_name``."""
    try:
        return _SIZES[hash_name]
    except KeyError:
        raise ValueError(f"unknown Merkle hash function {hash_name!r}") from None


def chunk_hash(data: bytes | bytearray | memoryview, hash_name: str = DEFAULT_HASH) -> bytes:
    """The leaf hash of a chunk: the hash (SHA-256 by default) of its bytes."""
    return _new(hash_name)(data).digest()


def chunk_hash_of_parts(
    parts: Iterable[bytes | bytearray | memoryview], hash_name: str = DEFAULT_HASH
) -> bytes:
    """:func:`chunk_hash` of a chunk given as consecutive pieces, without joining them."""
    digest = _new(hash_name)()
    for part in parts:
        digest.update(part)
    return digest.digest()


def parent_hash(left: bytes, right: bytes, hash_name: str = DEFAULT_HASH) -> bytes:
    """The hash of a parent node: the hash of ``left + right``, or empty when both are empty."""
    empty = _EMPTY_BY_SIZE.get(len(left)) or bytes(len(left))
    if left == empty and right == empty:
        return empty
    return _new(hash_name)(left + right).digest()


def tree_height(leaf_count: int) -> int:
    """Height of the tree over ``leaf_count`` chunks: ``h`` with ``2**h`` the padded width."""
    if leaf_count < 1:
        raise ValueError("a Merkle tree needs at least one chunk")
    return (leaf_count - 1).bit_length()


def bin_number(level: int, position: int) -> int:
    """The bin number of the node at ``level`` (leaves are 0) and ``position`` (from the left)."""
    if level < 0 or position < 0:
        raise ValueError("level and position must not be negative")
    return position * (2 << level) + (1 << level) - 1


def uncle_bins(index: int, leaf_count: int) -> list[int]:
    """Bin numbers of the uncle hashes of chunk ``index``, bottom-up (sibling first)."""
    _check_index(index, leaf_count)
    return [bin_number(level, (index >> level) ^ 1) for level in range(tree_height(leaf_count))]


def _check_index(index: int, leaf_count: int) -> None:
    if not 0 <= index < leaf_count:
        raise ValueError(f"chunk {index} outside a tree of {leaf_count} chunks")


def _check_hash(value: bytes, what: str, hash_name: str = DEFAULT_HASH) -> None:
    size = hash_size(hash_name)
    if not isinstance(value, bytes) or len(value) != size:
        raise IntegrityError(f"{what} is not a {size}-byte hash")


def _levels(leaf_hashes: Sequence[bytes], hash_name: str = DEFAULT_HASH) -> list[list[bytes]]:
    """Every level of the padded tree, leaves first, root level last."""
    count = len(leaf_hashes)
    height = tree_height(count)
    level = list(leaf_hashes)
    level.extend([bytes(hash_size(hash_name))] * ((1 << height) - count))
    levels = [level]
    while len(level) > 1:
        level = [parent_hash(level[i], level[i + 1], hash_name) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(leaf_hashes: Sequence[bytes], hash_name: str = DEFAULT_HASH) -> bytes:
    """The root hash of the tree over ``leaf_hashes`` (at least one)."""
    for i, value in enumerate(leaf_hashes):
        _check_hash(value, f"hash of chunk {i}", hash_name)
    return _levels(leaf_hashes, hash_name)[-1][0]


def ppspp_root_hash(data: bytes, chunk_size: int | None = None, hash_name: str = "sha1") -> bytes:
    """The RFC 7574 root hash of a file's ``data``: its swarm ID for PPSPP (errata 4724).

    The defaults are libswift's (SHA-1, 1024-byte chunks), whose root hash this is for the
    same file and chunk size: the last chunk is hashed as it is (shorter, not padded), and a
    chunk count that is not a power of two is padded with empty (zero) hashes, which gives
    the root libswift derives from its peak hashes.  libswift seeds no empty file, nor does
    this: ``data`` must not be empty.
    """
    if chunk_size is None:
        from ppsp.wire.ppspp import DEFAULT_CHUNK_SIZE  # RFC 7574's, libswift's: 1024

        chunk_size = DEFAULT_CHUNK_SIZE
    if chunk_size < 1:
        raise ValueError(f"chunk size {chunk_size} below 1")
    if not data:
        raise ValueError("an empty file has no root hash")
    view = memoryview(data)
    leaves = [
        chunk_hash(view[start : start + chunk_size], hash_name)
        for start in range(0, len(data), chunk_size)
    ]
    return merkle_root(leaves, hash_name)


def root_from_uncles(
    index: int, leaf_hash: bytes, uncles: Sequence[bytes], hash_name: str = DEFAULT_HASH
) -> bytes:
    """The root implied by a leaf hash at ``index`` and its uncle hashes (bottom-up)."""
    node = leaf_hash
    for level, uncle in enumerate(uncles):
        # Bit ``level`` of the index says whether the path node is a right child.
        is_right = (index >> level) & 1
        node = (
            parent_hash(uncle, node, hash_name) if is_right else parent_hash(node, uncle, hash_name)
        )
    return node


def verify_with_uncles(
    index: int,
    data: bytes,
    uncles: Sequence[bytes],
    root: bytes,
    leaf_count: int,
    hash_name: str = DEFAULT_HASH,
) -> None:
    """Check chunk ``index`` of a ``leaf_count``-chunk tree against a trusted ``root``.

    ``uncles`` are the uncle hashes bottom-up, exactly one per level (as :meth:`MerkleTree.uncles`
    gives them).  Raises :class:`~ppsp.errors.IntegrityError` when the chunk, an uncle or the
    number of uncles is wrong.  Fixing the count to the tree height keeps an interior node from
    being passed off as a leaf.
    """
    if not 0 <= index < leaf_count:
        raise IntegrityError(f"chunk {index} outside a tree of {leaf_count} chunks")
    height = tree_height(leaf_count)
    if len(uncles) != height:
        raise IntegrityError(f"chunk {index} needs {height} uncle hashes, got {len(uncles)}")
    for level, uncle in enumerate(uncles):
        _check_hash(uncle, f"uncle hash {level}", hash_name)
    computed = root_from_uncles(index, chunk_hash(data, hash_name), uncles, hash_name)
    if not hmac.compare_digest(computed, root):
        raise IntegrityError(f"chunk {index} does not verify against the root hash")


def verify_hash_list(
    leaf_hashes: Sequence[bytes], root: bytes, hash_name: str = DEFAULT_HASH
) -> None:
    """Check a full list of chunk hashes against a trusted root; raises IntegrityError."""
    if not leaf_hashes:
        raise IntegrityError("empty hash list")
    if not hmac.compare_digest(merkle_root(leaf_hashes, hash_name), root):
        raise IntegrityError("hash list does not match the root hash")


def verify_with_hash_list(
    index: int, data: bytes, leaf_hashes: Sequence[bytes], hash_name: str = DEFAULT_HASH
) -> None:
    """Check chunk ``index`` against a hash list already verified against the root."""
    if not 0 <= index < len(leaf_hashes):
        raise IntegrityError(f"chunk {index} outside a list of {len(leaf_hashes)} hashes")
    if not hmac.compare_digest(chunk_hash(data, hash_name), leaf_hashes[index]):
        raise IntegrityError(f"chunk {index} does not match its hash")


class MerkleTree:
    """The complete Merkle tree over a content's chunks, for serving uncle and peak hashes.

    Immutable once built.  It holds ``2 * width - 1`` hashes, where ``width`` is the chunk
    count rounded up to a power of two.  ``hash_name`` is its hash function (SHA-256 unless
    given).
    """

    __slots__ = ("_levels", "hash_name", "leaf_count")

    def __init__(self, leaf_hashes: Sequence[bytes], *, hash_name: str = DEFAULT_HASH) -> None:
        for i, value in enumerate(leaf_hashes):
            _check_hash(value, f"hash of chunk {i}", hash_name)
        self.hash_name = hash_name
        self.leaf_count = len(leaf_hashes)
        self._levels = _levels(leaf_hashes, hash_name)

    @classmethod
    def from_chunks(cls, chunks: Iterable[bytes], *, hash_name: str = DEFAULT_HASH) -> MerkleTree:
        """Build the tree from the chunks' bytes."""
        return cls([chunk_hash(chunk, hash_name) for chunk in chunks], hash_name=hash_name)

    @property
    def height(self) -> int:
        """Number of levels above the leaves (0 for a one-chunk tree)."""
        return len(self._levels) - 1

    @property
    def width(self) -> int:
        """Number of leaves including padding: a power of two."""
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        """The root hash."""
        return self._levels[-1][0]

    @property
    def leaf_hashes(self) -> tuple[bytes, ...]:
        """The chunk hashes, without padding."""
        return tuple(self._levels[0][: self.leaf_count])

    def node(self, level: int, position: int) -> bytes:
        """The hash of the node at ``level`` and ``position``."""
        if not 0 <= level < len(self._levels) or not 0 <= position < len(self._levels[level]):
            raise ValueError(f"no node at level {level}, position {position}")
        return self._levels[level][position]

    def uncles(self, index: int) -> list[bytes]:
        """Uncle hashes of chunk ``index``, bottom-up, one per level."""
        _check_index(index, self.leaf_count)
        return [self._levels[level][(index >> level) ^ 1] for level in range(self.height)]

    def uncle_nodes(self, index: int) -> list[tuple[int, bytes]]:
        """Uncle hashes of chunk ``index`` with their bin numbers, bottom-up."""
        return list(zip(uncle_bins(index, self.leaf_count), self.uncles(index), strict=True))

    def peaks(self) -> list[tuple[int, bytes]]:
        """The peak hashes (RFC 7574 section 5.6.1) with their bin numbers, left to right."""
        result: list[tuple[int, bytes]] = []
        first_leaf = 0
        for level in range(self.height, -1, -1):
            if self.leaf_count & (1 << level):
                position = first_leaf >> level
                result.append((bin_number(level, position), self._levels[level][position]))
                first_leaf += 1 << level
        return result

    def verify(self, index: int, data: bytes) -> None:
        """Check chunk ``index`` against this tree's leaf hash; raises IntegrityError."""
        if not 0 <= index < self.leaf_count:
            raise IntegrityError(f"chunk {index} outside a tree of {self.leaf_count} chunks")
        if not hmac.compare_digest(chunk_hash(data, self.hash_name), self._levels[0][index]):
            raise IntegrityError(f"chunk {index} does not match its hash")
