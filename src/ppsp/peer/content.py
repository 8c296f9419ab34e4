"""Content descriptions, self-certifying swarm IDs, chunk verification and chunk storage.

A swarm is one content item (PROFILE.md, "Content").  Its :class:`ContentDescription` lists the
content's representations (one, ``"main"``, or several for multi-bitrate) and, for each, its
size, the SHA-256 hash of every chunk and the Merkle root over those hashes (RFC 7574
section 5.1).  All representations share one fixed chunk size; the last chunk of each may be
shorter.

The description has one canonical byte form: compact JSON, keys sorted, produced by orjson::

    {"chunk_size":262144,"format":"ppsp-content/1","hash":"sha-256","media_type":"video/mp4",
     "name":"movie.mp4","representations":[{"chunk_count":4,"chunk_hashes":"<Base64>",
     "id":"main","merkle_root":"<64 hex>","size":1000000}]}

``chunk_hashes`` is the Base64 (RFC 4648, padded) of the hashes concatenated; an optional
``bandwidth`` (bits per second) may appear in a representation.  The swarm ID is the lower-case
hex SHA-256 of these bytes, so it certifies the description, and through the chunk hashes and
Merkle roots every byte of the content.  :meth:`ContentDescription.from_bytes` accepts only the
canonical form, so ``from_bytes(b).swarm_id`` is always the hash of ``b``.

Everything here is pure except :func:`describe_file`, :func:`describe_representation` (which
stream a file) and :class:`ChunkStore`, the file-backed storage of one representation.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import errno
import hashlib
import hmac
import mimetypes
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final

import orjson

from ppsp.core.bitmap import ChunkBitmap
from ppsp.errors import ChunkUnavailable, IntegrityError, InvalidDescription
from ppsp.peer.merkle import HASH_SIZE, MerkleTree, chunk_hash, chunk_hash_of_parts, merkle_root

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DESCRIPTION_FORMAT",
    "MAX_CHUNK_SIZE",
    "MAX_DESCRIPTION_BYTES",
    "MAX_REPRESENTATIONS",
    "MAX_TOTAL_CHUNKS",
    "ChunkStore",
    "ContentDescription",
    "Representation",
    "chunk_size_for",
    "describe_file",
    "describe_representation",
    "is_swarm_id",
    "verify_chunk",
    "verify_chunk_parts",
    "verify_description",
]

DEFAULT_CHUNK_SIZE: Final = 256 * 1024
"""Chunk size when none is given: 256 KiB."""

MAX_CHUNK_SIZE: Final = 16 * 1024 * 1024
"""Largest chunk size a description may declare."""

LARGE_CONTENT_CHUNK_SIZE: Final = 1024 * 1024
"""Largest chunk size :func:`chunk_size_for` picks."""

FEW_CHUNKS: Final = 256
"""Content of more than this many default-size chunks gets larger chunks (up to 1 MiB)."""

MAX_REPRESENTATIONS: Final = 16
"""Most representations one description may list."""

MAX_TOTAL_CHUNKS: Final = 1 << 20
"""Most chunks all representations of one description may have together."""

MAX_NAME_LENGTH: Final = 1024
"""Longest content name, in characters."""

DESCRIPTION_FORMAT: Final = "ppsp-content/1"
"""The ``format`` field of the canonical encoding."""

HASH_ALGORITHM: Final = "sha-256"
"""The ``hash`` field: the chunk and Merkle hash function."""

# Base64 of every hash plus generous room for names and field syntax.
MAX_DESCRIPTION_BYTES: Final = (MAX_TOTAL_CHUNKS * HASH_SIZE * 4) // 3 + 1024 * 1024
"""Largest canonical description accepted by :meth:`ContentDescription.from_bytes`."""

_REPRESENTATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,63}/[A-Za-z0-9!#$&^_.+-]{1,63}")
_SWARM_ID = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = frozenset({"chunk_size", "format", "hash", "media_type", "name", "representations"})
_REP_KEYS = frozenset({"chunk_count", "chunk_hashes", "id", "merkle_root", "size"})
_REP_OPTIONAL_KEYS = frozenset({"bandwidth"})


def _is_int(value: object) -> bool:
    # bool is an int subclass; JSON true/false must not pass as a number.
    return type(value) is int


@dataclass(frozen=True, slots=True, kw_only=True)
class Representation:
    """One encoding of the content (one bitrate), split into chunks.

    ``merkle_root`` is computed from ``chunk_hashes`` when the object is built, so it always
    matches them.
    """

    id: str
    """Identifier, 1-64 of ``A-Z a-z 0-9 . _ -`` (it appears in chunk URLs)."""
    size: int
    """Size in bytes, at least 1."""
    chunk_hashes: tuple[bytes, ...]
    """SHA-256 of each chunk, in order."""
    bandwidth: int | None = None
    """Nominal bitrate in bits per second, for choosing among representations."""
    merkle_root: bytes = field(init=False)
    """Root hash of the Merkle tree over ``chunk_hashes`` (RFC 7574 section 5.1)."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _REPRESENTATION_ID.fullmatch(self.id):
            raise InvalidDescription(f"invalid representation id {self.id!r}")
        if not _is_int(self.size) or self.size < 1:
            raise InvalidDescription(f"representation {self.id}: size must be a positive int")
        if self.bandwidth is not None and (not _is_int(self.bandwidth) or self.bandwidth < 1):
            raise InvalidDescription(f"representation {self.id}: invalid bandwidth")
        if not isinstance(self.chunk_hashes, tuple) or not self.chunk_hashes:
            raise InvalidDescription(f"representation {self.id}: chunk_hashes must be a tuple")
        if len(self.chunk_hashes) > MAX_TOTAL_CHUNKS:
            raise InvalidDescription(f"representation {self.id}: too many chunks")
        for value in self.chunk_hashes:
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise InvalidDescription(f"representation {self.id}: invalid chunk hash")
        object.__setattr__(self, "merkle_root", merkle_root(self.chunk_hashes))

    @property
    def chunk_count(self) -> int:
        """Number of chunks."""
        return len(self.chunk_hashes)

    def merkle_tree(self) -> MerkleTree:
        """The full Merkle tree, for serving uncle and peak hashes (built anew on each call)."""
        return MerkleTree(self.chunk_hashes)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentDescription:
    """The self-certifying description of one content item: the swarm's identity.

    Built by :func:`describe_file` or decoded by :meth:`from_bytes` / :func:`verify_description`.
    Properties without a ``representation`` argument (``size``, ``chunk_count``, ...) speak of
    the first representation, which is the only one for single-bitrate content.
    """

    name: str
    """Human-readable name, 1-1024 characters, no control characters."""
    media_type: str
    """MIME type of the content, ``type/subtype``."""
    representations: tuple[Representation, ...]
    """One or more representations with distinct ids; the first is the default."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Size of every chunk but the last of each representation."""
    _canonical: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not 1 <= len(self.name) <= MAX_NAME_LENGTH
            or _CONTROL.search(self.name)
        ):
            raise InvalidDescription("invalid content name")
        if not isinstance(self.media_type, str) or not _MEDIA_TYPE.fullmatch(self.media_type):
            raise InvalidDescription(f"invalid media type {self.media_type!r}")
        if not _is_int(self.chunk_size) or not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidDescription(f"chunk size must be an int in [1, {MAX_CHUNK_SIZE}]")
        reps = self.representations
        if not isinstance(reps, tuple) or not 1 <= len(reps) <= MAX_REPRESENTATIONS:
            raise InvalidDescription(f"need 1 to {MAX_REPRESENTATIONS} representations")
        if not all(isinstance(rep, Representation) for rep in reps):
            raise InvalidDescription("representations must be Representation objects")
        if len({rep.id for rep in reps}) != len(reps):
            raise InvalidDescription("representation ids must be distinct")
        if sum(rep.chunk_count for rep in reps) > MAX_TOTAL_CHUNKS:
            raise InvalidDescription(f"more than {MAX_TOTAL_CHUNKS} chunks in all")
        for rep in reps:
            expected = -(-rep.size // self.chunk_size)
            if rep.chunk_count != expected:
                raise InvalidDescription(
                    f"representation {rep.id}: {rep.size} bytes in chunks of {self.chunk_size}"
                    f" make {expected} chunks, not {rep.chunk_count}"
                )
        object.__setattr__(self, "_canonical", self._encode())

    def _encode(self) -> bytes:
        reps: list[dict[str, Any]] = []
        for rep in self.representations:
            item: dict[str, Any] = {
                "chunk_count": rep.chunk_count,
                "chunk_hashes": base64.b64encode(b"".join(rep.chunk_hashes)).decode("ascii"),
                "id": rep.id,
                "merkle_root": rep.merkle_root.hex(),
                "size": rep.size,
            }
            if rep.bandwidth is not None:
                item["bandwidth"] = rep.bandwidth
            reps.append(item)
        document = {
            "chunk_size": self.chunk_size,
            "format": DESCRIPTION_FORMAT,
            "hash": HASH_ALGORITHM,
            "media_type": self.media_type,
            "name": self.name,
            "representations": reps,
        }
        try:
            return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate in the name
            raise InvalidDescription(f"description cannot be encoded: {exc}") from exc

    def to_bytes(self) -> bytes:
        """The canonical encoding (compact JSON, sorted keys)."""
        return self._canonical

    @property
    def swarm_id(self) -> str:
        """The self-certifying swarm ID: lower-case hex SHA-256 of :meth:`to_bytes`."""
        return hashlib.sha256(self._canonical).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> ContentDescription:
        """Decode and validate a canonical description from an untrusted source.

        Raises :class:`~ppsp.errors.InvalidDescription` for anything malformed, out of
        bounds, inconsistent (chunk count, Merkle root) or not in canonical form.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidDescription("description must be bytes")
        data = bytes(data)
        if len(data) > MAX_DESCRIPTION_BYTES:
            raise InvalidDescription(f"description over {MAX_DESCRIPTION_BYTES} bytes")
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidDescription(f"description is not valid JSON: {exc}") from exc
        description = _decode(document)
        if description.to_bytes() != data:
            raise InvalidDescription("description is not in canonical form")
        return description

    def representation(self, representation: str | None = None) -> Representation:
        """The representation with id ``representation`` (None: the first)."""
        if representation is None:
            return self.representations[0]
        for rep in self.representations:
            if rep.id == representation:
                return rep
        raise ChunkUnavailable(f"no representation {representation!r}")

    @property
    def size(self) -> int:
        """Size in bytes of the first representation."""
        return self.representations[0].size

    @property
    def chunk_count(self) -> int:
        """Chunk count of the first representation."""
        return self.representations[0].chunk_count

    @property
    def chunk_hashes(self) -> tuple[bytes, ...]:
        """Chunk hashes of the first representation."""
        return self.representations[0].chunk_hashes

    @property
    def merkle_root(self) -> bytes:
        """Merkle root of the first representation."""
        return self.representations[0].merkle_root

    def chunk_range(self, index: int, representation: str | None = None) -> tuple[int, int]:
        """``(offset, length)`` in bytes of chunk ``index``; ChunkUnavailable when out of range."""
        rep = self.representation(representation)
        if not _is_int(index) or not 0 <= index < rep.chunk_count:
            raise ChunkUnavailable(f"no chunk {index!r} in representation {rep.id}")
        offset = index * self.chunk_size
        return offset, min(self.chunk_size, rep.size - offset)

    def chunk_for_offset(self, offset: int, representation: str | None = None) -> int:
        """Index of the chunk holding byte ``offset``; ChunkUnavailable when out of range."""
        rep = self.representation(representation)
        if not _is_int(offset) or not 0 <= offset < rep.size:
            raise ChunkUnavailable(f"offset {offset!r} outside representation {rep.id}")
        return offset // self.chunk_size


def _require(document: dict[str, Any], required: frozenset[str], optional: frozenset[str]) -> None:
    keys = set(document)
    if not required <= keys or not keys <= required | optional:
        missing = sorted(required - keys)
        extra = sorted(keys - required - optional)
        raise InvalidDescription(f"description fields: missing {missing}, unknown {extra}")


def _decode(document: object) -> ContentDescription:
    if not isinstance(document, dict):
        raise InvalidDescription("description must be a JSON object")
    _require(document, _TOP_KEYS, frozenset())
    if document["format"] != DESCRIPTION_FORMAT:
        raise InvalidDescription(f"unsupported description format {document['format']!r}")
    if document["hash"] != HASH_ALGORITHM:
        raise InvalidDescription(f"unsupported hash function {document['hash']!r}")
    raw_reps = document["representations"]
    if not isinstance(raw_reps, list) or not 1 <= len(raw_reps) <= MAX_REPRESENTATIONS:
        raise InvalidDescription(f"need a list of 1 to {MAX_REPRESENTATIONS} representations")
    reps: list[Representation] = []
    total = 0
    for raw in raw_reps:
        if not isinstance(raw, dict):
            raise InvalidDescription("a representation must be a JSON object")
        _require(raw, _REP_KEYS, _REP_OPTIONAL_KEYS)
        count = raw["chunk_count"]
        if not _is_int(count) or not 1 <= count <= MAX_TOTAL_CHUNKS - total:
            raise InvalidDescription("chunk_count out of bounds")
        total += count
        encoded = raw["chunk_hashes"]
        if not isinstance(encoded, str) or len(encoded) != 4 * -(-count * HASH_SIZE // 3):
            raise InvalidDescription("chunk_hashes has the wrong length for chunk_count")
        try:
            packed = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidDescription(f"chunk_hashes is not Base64: {exc}") from exc
        if len(packed) != count * HASH_SIZE:
            raise InvalidDescription("chunk_hashes has the wrong length for chunk_count")
        rep = Representation(
            id=raw["id"],
            size=raw["size"],
            bandwidth=raw.get("bandwidth"),
            chunk_hashes=tuple(packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)),
        )
        root = raw["merkle_root"]
        if not isinstance(root, str) or root != rep.merkle_root.hex():
            raise InvalidDescription(f"representation {rep.id}: Merkle root does not match")
        reps.append(rep)
    return ContentDescription(
        name=document["name"],
        media_type=document["media_type"],
        chunk_size=document["chunk_size"],
        representations=tuple(reps),
    )


def is_swarm_id(value: object) -> bool:
    """Whether ``value`` has the form of a content swarm ID (64 lower-case hex digits)."""
    return isinstance(value, str) and _SWARM_ID.fullmatch(value) is not None


def verify_description(data: bytes, swarm_id: str) -> ContentDescription:
    """Decode a description fetched from an untrusted peer and check it against ``swarm_id``.

    Raises :class:`~ppsp.errors.IntegrityError` when the bytes do not hash to the swarm ID, and
    :class:`~ppsp.errors.InvalidDescription` when the ID is malformed or the bytes are invalid.
    """
    if not is_swarm_id(swarm_id):
        raise InvalidDescription(f"malformed swarm ID {swarm_id!r}")
    if not isinstance(data, bytes) or len(data) > MAX_DESCRIPTION_BYTES:
        raise InvalidDescription("description must be bytes within the size bound")
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), swarm_id):
        raise IntegrityError("description does not hash to the swarm ID")
    return ContentDescription.from_bytes(data)


def verify_chunk(
    description: ContentDescription,
    index: int,
    data: bytes,
    representation: str | None = None,
) -> None:
    """Check a received chunk's length and hash; raises IntegrityError (or ChunkUnavailable)."""
    verify_chunk_parts(description, index, (data,), representation)


def verify_chunk_parts(
    description: ContentDescription,
    index: int,
    parts: Sequence[bytes | bytearray | memoryview],
    representation: str | None = None,
) -> None:
    """:func:`verify_chunk` of a chunk received in pieces, without joining them."""
    _, length = description.chunk_range(index, representation)
    size = sum(len(part) for part in parts)
    if size != length:
        raise IntegrityError(f"chunk {index} has {size} bytes, expected {length}")
    expected = description.representation(representation).chunk_hashes[index]
    if not hmac.compare_digest(chunk_hash_of_parts(parts), expected):
        raise IntegrityError(f"chunk {index} does not match its hash")


def _read_chunks(path: str | os.PathLike[str], chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def chunk_size_for(size: int) -> int:
    """The chunk size for content of ``size`` bytes when none is given.

    256 KiB up to 64 MiB; above, the smallest power of two that keeps the content within
    256 chunks, at most 1 MiB (a 256 MiB file has 256 chunks of 1 MiB, a 4 GiB one 4096).
    Every chunk costs an HTTP request on each side: larger content gets fewer, larger
    requests, while small content keeps enough chunks to spread over a swarm and a first
    chunk small enough to start playback soon.
    """
    chunk_size = DEFAULT_CHUNK_SIZE
    while chunk_size < LARGE_CONTENT_CHUNK_SIZE and size > FEW_CHUNKS * chunk_size:
        chunk_size *= 2
    return chunk_size


def describe_representation(
    path: str | os.PathLike[str],
    *,
    representation_id: str = "main",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bandwidth: int | None = None,
) -> Representation:
    """Hash a file chunk by chunk (streaming) into a :class:`Representation`.

    Empty files are rejected with InvalidDescription: there is nothing to stream.
    """
    if not _is_int(chunk_size) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidDescription(f"chunk size must be an int in [1, {MAX_CHUNK_SIZE}]")
    hashes: list[bytes] = []
    size = 0
    for chunk in _read_chunks(path, chunk_size):
        hashes.append(chunk_hash(chunk))
        size += len(chunk)
        if len(hashes) > MAX_TOTAL_CHUNKS:
            raise InvalidDescription(f"{path}: more than {MAX_TOTAL_CHUNKS} chunks")
    if size == 0:
        raise InvalidDescription(f"{path}: empty content cannot be described")
    return Representation(
        id=representation_id, size=size, chunk_hashes=tuple(hashes), bandwidth=bandwidth
    )


def describe_file(
    path: str | os.PathLike[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    name: str | None = None,
    media_type: str | None = None,
    representation_id: str = "main",
    bandwidth: int | None = None,
) -> ContentDescription:
    """Describe a single-representation content item stored in a file.

    ``name`` defaults to the file's name and ``media_type`` to a guess from it
    (``application/octet-stream`` when unknown).
    """
    name = Path(path).name if name is None else name
    if media_type is None:
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    rep = describe_representation(
        path, representation_id=representation_id, chunk_size=chunk_size, bandwidth=bandwidth
    )
    return ContentDescription(
        name=name, media_type=media_type, chunk_size=chunk_size, representations=(rep,)
    )


def allocate_file(fd: int, size: int) -> bool:
    """Give the open file ``fd`` a length of ``size`` bytes, with its blocks allocated.

    The blocks are reserved at once (``fallocate``), so that writing a chunk later does not
    also allocate its blocks (about 40% of the cost of a buffered write on ext4), the file is
    laid out in one piece, and a disk too small for the content fails now (OSError, ENOSPC)
    rather than half-way.  Data already in the file stays.  Where the file system or the
    system has no ``fallocate`` the file is only extended, sparse; returns whether the blocks
    were allocated.
    """
    if os.fstat(fd).st_size > size:
        os.ftruncate(fd, size)
    if size and _fallocate is not None:
        if _fallocate(fd, 0, 0, size) == 0:
            return True
        error = ctypes.get_errno()
        if error not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EPERM):
            raise OSError(error, os.strerror(error))
    os.ftruncate(fd, size)
    return False


def _load_fallocate() -> Any:
    # glibc's posix_fallocate would emulate a missing fallocate by writing every block.
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


_fallocate = _load_fallocate()


class ChunkStore:
    """File-backed storage of one representation's chunks, with the map of those held.

    Each chunk is verified before it is written and is stored at its byte offset in one file of
    the content's full size, allocated when the store is created (:func:`allocate_file`).
    Synchronous; the file stays open until :meth:`close`.  Build one with :meth:`create`,
    :meth:`open` or :meth:`open_seed`.

    The file is written and read at explicit offsets (``pwrite``/``pread``), so
    :meth:`store_parts` (verification and writing, the costly part of storing a chunk) may run
    in a worker thread while the owner's thread reads other chunks; the map of held chunks is
    changed only by :meth:`mark_stored` and :meth:`write`, in the owner's thread.
    """

    __slots__ = (
        "_bitmap",
        "_fd_lock",
        "_file",
        "description",
        "path",
        "representation",
    )

    def __init__(
        self,
        description: ContentDescription,
        path: Path,
        handle: BinaryIO,
        bitmap: ChunkBitmap,
        representation: str | None = None,
    ) -> None:
        self.description = description
        self.representation = description.representation(representation)
        self.path = path
        self._file = handle
        self._bitmap = bitmap
        self._fd_lock = threading.Lock()  # a worker's write never meets a closed descriptor

    @classmethod
    def create(
        cls,
        description: ContentDescription,
        path: str | os.PathLike[str],
        representation: str | None = None,
    ) -> ChunkStore:
        """Start an empty store: creates (or empties) ``path``, allocated to the content's size."""
        rep = description.representation(representation)
        handle = open(path, "w+b", buffering=0)  # noqa: SIM115 - owned by the store until close()
        try:
            allocate_file(handle.fileno(), rep.size)
        except BaseException:
            handle.close()
            raise
        return cls(description, Path(path), handle, ChunkBitmap(rep.chunk_count), rep.id)

    @classmethod
    def open(
        cls,
        description: ContentDescription,
        path: str | os.PathLike[str],
        representation: str | None = None,
    ) -> ChunkStore:
        """Reopen an existing file: every chunk found intact on disk counts as held.

        Each chunk is read and verified once, so this resumes a partial download or seeds a
        complete file.  A file of the wrong size is grown or cut to the content's size.
        """
        rep = description.representation(representation)
        handle = open(path, "r+b", buffering=0)  # noqa: SIM115 - owned by the store until close()
        try:
            fd = handle.fileno()
            if os.fstat(fd).st_size != rep.size:
                handle.truncate(rep.size)
            bitmap = ChunkBitmap(rep.chunk_count)
            for index in range(rep.chunk_count):
                offset, length = description.chunk_range(index, rep.id)
                if chunk_hash(os.pread(fd, length, offset)) == rep.chunk_hashes[index]:
                    bitmap.add(index)
        except BaseException:
            handle.close()
            raise
        return cls(description, Path(path), handle, bitmap, rep.id)

    @classmethod
    def open_seed(
        cls,
        description: ContentDescription,
        path: str | os.PathLike[str],
        representation: str | None = None,
    ) -> ChunkStore:
        """Open a complete file for seeding; raises IntegrityError if any chunk is bad."""
        store = cls.open(description, path, representation)
        if not store.complete:
            missing = store.representation.chunk_count - len(store._bitmap)
            store.close()
            raise IntegrityError(f"{path}: {missing} chunks do not match the description")
        return store

    def have(self, index: int) -> bool:
        """Whether chunk ``index`` is held."""
        return index in self._bitmap

    @property
    def bitmap(self) -> ChunkBitmap:
        """A copy of the map of held chunks."""
        return ChunkBitmap(self._bitmap.size, self._bitmap.start, self._bitmap.to_bytes())

    @property
    def complete(self) -> bool:
        """Whether every chunk is held."""
        return self._bitmap.complete

    def write(self, index: int, data: bytes) -> bool:
        """Verify and store chunk ``index``; True when it was not held before.

        Raises IntegrityError (nothing is written) when the bytes do not match.
        """
        if index in self._bitmap:
            verify_chunk(self.description, index, data, self.representation.id)
            return False
        self.store_parts(index, (data,))
        return self.mark_stored(index)

    def store_parts(self, index: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Verify chunk ``index`` received as ``parts`` and write it to the file.

        Raises IntegrityError (nothing is written) when the bytes do not match, and
        ChunkUnavailable once the store is closed.  Does not touch the map of held chunks:
        :meth:`mark_stored` does, so this is safe to run in a worker thread.
        """
        verify_chunk_parts(self.description, index, parts, self.representation.id)
        offset, _ = self.description.chunk_range(index, self.representation.id)
        with self._fd_lock:
            if self._file.closed:
                raise ChunkUnavailable(f"chunk {index}: the store is closed")
            fd = self._file.fileno()
            views = [memoryview(part) for part in parts if part]
            while views:
                # One system call for all the pieces; it may write less than asked.
                written = os.pwritev(fd, views, offset)
                offset += written
                while views and written >= len(views[0]):
                    written -= len(views[0])
                    views.pop(0)
                if views and written:
                    views[0] = views[0][written:]

    def mark_stored(self, index: int) -> bool:
        """Count chunk ``index`` (written by :meth:`store_parts`) as held; False if it was."""
        return self._bitmap.add(index)

    def read(self, index: int) -> bytes:
        """The bytes of chunk ``index``; ChunkUnavailable when it is not held."""
        if index not in self._bitmap:
            raise ChunkUnavailable(f"chunk {index!r} is not held")
        offset, length = self.description.chunk_range(index, self.representation.id)
        data = os.pread(self._file.fileno(), length, offset)
        if len(data) != length:
            raise IntegrityError(f"chunk {index}: file truncated underneath the store")
        return data

    def sending(self, index: int) -> tuple[BinaryIO, int, int]:
        """``(file, offset, length)`` of held chunk ``index``, for ``sendfile``.

        The file is only read at explicit offsets (a ``sendfile`` may move its position, which
        nothing here uses).  ChunkUnavailable when the chunk is not held.
        """
        if index not in self._bitmap:
            raise ChunkUnavailable(f"chunk {index!r} is not held")
        offset, length = self.description.chunk_range(index, self.representation.id)
        return self._file, offset, length

    def close(self) -> None:
        """Close the file (idempotent); waits for a write in progress in another thread."""
        with self._fd_lock:
            self._file.close()

    def __enter__(self) -> ChunkStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
