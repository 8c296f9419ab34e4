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

Everything here is pure: hashing files and storing chunks in them is
:mod:`ppsp.peer.net.chunkstore`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ppsp.errors import ChunkUnavailable, IntegrityError, InvalidDescription
from ppsp.peer.content.merkle import HASH_SIZE, MerkleTree, chunk_hash_of_parts, merkle_root

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DESCRIPTION_FORMAT",
    "MAX_CHUNK_SIZE",
    "MAX_DESCRIPTION_BYTES",
    "MAX_REPRESENTATIONS",
    "MAX_TOTAL_CHUNKS",
    "ContentDescription",
    "Representation",
    "chunk_size_for",
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
