"""Chunks in files: describing a file (hashing it chunk by chunk) and :class:`ChunkStore`.

A :class:`ChunkStore` keeps one representation's chunks at their byte offsets in one file and
the map of those held; every chunk is verified against the description before it is written.
The descriptions themselves (pure) are :mod:`ppsp.peer.content`.
"""

from __future__ import annotations

import ctypes
import errno
import mimetypes
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from ppsp.core.bitmap import ChunkBitmap
from ppsp.errors import ChunkUnavailable, IntegrityError, InvalidDescription
from ppsp.peer.content import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MAX_TOTAL_CHUNKS,
    ContentDescription,
    Representation,
    verify_chunk,
    verify_chunk_parts,
)
from ppsp.peer.merkle import chunk_hash


def _read_chunks(path: str | os.PathLike[str], chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


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
    if type(chunk_size) is not int or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
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
