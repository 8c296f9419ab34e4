"""Chunks in files: describing a file (hashing it chunk by chunk) and :class:`ChunkStore`.

A :class:`ChunkStore` keeps one representation's chunks at their byte offsets in one file;
every chunk is verified against the description before it is written.  Which chunks are held is
recorded by the session's sans-I/O download (:class:`ppsp.peer.download.stored.StoredDownload`),
not here: the store only reports, when it opens a file, the chunks found intact in it.
The descriptions themselves (pure) are :mod:`ppsp.peer.content.description`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mimetypes
import os
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from ppsp.errors import (
    ChunkChanged,
    ChunkUnavailable,
    HashingCancelled,
    IntegrityError,
    InvalidDescription,
)
from ppsp.peer.content.description import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MAX_TOTAL_CHUNKS,
    ContentDescription,
    Representation,
    verify_chunk,
    verify_chunk_parts,
)
from ppsp.peer.content.merkle import chunk_hash
from ppsp.wire.bitmap import ChunkBitmap


def _hash_chunks(
    handle: BinaryIO, path: object, chunk_size: int, cancelled: Callable[[], bool] | None
) -> tuple[list[bytes], int]:
    """The hashes of ``handle``'s chunks from its position on, and the bytes read."""
    hashes: list[bytes] = []
    size = 0
    while chunk := handle.read(chunk_size):
        if cancelled is not None and cancelled():
            raise HashingCancelled(f"{path}: hashing given up")
        hashes.append(chunk_hash(chunk))
        size += len(chunk)
        if len(hashes) > MAX_TOTAL_CHUNKS:
            raise InvalidDescription(f"{path}: more than {MAX_TOTAL_CHUNKS} chunks")
    return hashes, size


def _check_chunk_size(chunk_size: int) -> None:
    if type(chunk_size) is not int or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidDescription(f"chunk size must be an int in [1, {MAX_CHUNK_SIZE}]")


def describe_representation(
    path: str | os.PathLike[str],
    *,
    representation_id: str = "main",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bandwidth: int | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Representation:
    """Hash a file chunk by chunk (streaming) into a :class:`Representation`.

    Empty files are rejected with InvalidDescription: there is nothing to stream.
    ``cancelled`` is asked before each chunk (from the thread that hashes); when it answers
    True, :class:`HashingCancelled` is raised, so that a stopping command never waits for a
    large file to be read to its end.
    """
    _check_chunk_size(chunk_size)
    with open(path, "rb") as handle:
        hashes, size = _hash_chunks(handle, path, chunk_size, cancelled)
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
    cancelled: Callable[[], bool] | None = None,
) -> ContentDescription:
    """Describe a single-representation content item stored in a file.

    ``name`` defaults to the file's name and ``media_type`` to a guess from it
    (``application/octet-stream`` when unknown); ``cancelled`` as for
    :func:`describe_representation`.
    """
    name = Path(path).name if name is None else name
    if media_type is None:
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    rep = describe_representation(
        path,
        representation_id=representation_id,
        chunk_size=chunk_size,
        bandwidth=bandwidth,
        cancelled=cancelled,
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


def _allocate_or_close(handle: BinaryIO, size: int) -> None:
    """:func:`allocate_file` for a file just opened for a store; closes it when that fails."""
    try:
        allocate_file(handle.fileno(), size)
    except BaseException:
        handle.close()
        raise


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

FLUSH_STEP = 32 << 20
"""Bytes a download writes between two background flushes of its ``.part`` file."""


class _BackgroundFlush:
    """Flushes a download's file to disk in a worker thread while the download goes on.

    A download's file is flushed (``fsync``) before it takes its final name, so that a crash
    never leaves a file under its final name whose bytes never reached the disk.  Done only at
    the end, that flush waits for the whole content (0.12 s for 256 MiB on the project's
    machine, a fifth of ``ppsp get``'s time); done every :data:`FLUSH_STEP` bytes in a thread
    of its own, it overlaps the transfer and the final ``fsync`` finds little left to write.
    Durability still rests on the final ``fsync``: these flushes only move the disk's work
    earlier, and their errors are left for it to meet.  One flush runs at a time, on a
    duplicate of the file's descriptor, so that closing the store never waits for the disk.
    """

    __slots__ = ("_closing", "_fd", "_lock", "_running", "_unflushed")

    def __init__(self, fd: int) -> None:
        self._fd: int | None = os.dup(fd)
        self._lock = threading.Lock()
        self._running = False  # a flush is in progress
        self._closing = False  # the store closed: the flush in progress closes the duplicate
        self._unflushed = 0

    def wrote(self, nbytes: int) -> None:
        """Count ``nbytes`` written; start a flush when enough is waiting and none runs."""
        with self._lock:
            self._unflushed += nbytes
            if self._running or self._closing or self._unflushed < FLUSH_STEP:
                return
            self._running, self._unflushed = True, 0
        threading.Thread(target=self._flush, name="ppsp-flush", daemon=True).start()

    def _flush(self) -> None:
        fd = self._fd
        if fd is not None:
            with contextlib.suppress(OSError):
                os.fdatasync(fd)
        with self._lock:
            self._running = False
            if self._closing:
                self._close_duplicate()

    def close(self) -> None:
        """Release the duplicate descriptor (now, or when the flush in progress ends)."""
        with self._lock:
            self._closing = True
            if not self._running:
                self._close_duplicate()

    def _close_duplicate(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class ChunkStore:
    """File-backed storage of one representation's chunks.

    Each chunk is verified before it is written and is stored at its byte offset in one file of
    the content's full size, allocated when the store is created (:func:`allocate_file`).
    Synchronous; the file stays open until :meth:`close`.  Build one with :meth:`create`,
    :meth:`open`, :meth:`open_partial` (a download into ``FILE.part``, renamed by
    :meth:`commit`), :meth:`create_anonymous` (a file with no name, gone with the process) or
    :meth:`seed_file` (a complete file described and opened in one pass).

    A seeded file may be changed on disk by someone else while it is served.  The store notes
    the file's identity, size and times when it hashed it; when they change, every chunk is
    verified again before it is read or sent, and one that no longer matches raises
    :class:`~ppsp.errors.ChunkChanged` instead of being served.

    The file is written and read at explicit offsets (``pwrite``/``pread``), so
    :meth:`store_parts` (verification and writing, the costly part of storing a chunk) may run
    in a worker thread while the owner's thread reads other chunks.  The store keeps no map of
    held chunks: its owner records them (the chunks :attr:`found` when it opened a file, then
    each chunk it stored) and reads only chunks it holds.
    """

    __slots__ = (
        "_fd_lock",
        "_file",
        "_flush",
        "_reverified",
        "_source_stamp",
        "changed_chunks",
        "description",
        "final_path",
        "found",
        "path",
        "representation",
    )

    def __init__(
        self,
        description: ContentDescription,
        path: Path,
        handle: BinaryIO,
        found: ChunkBitmap,
        representation: str | None = None,
    ) -> None:
        self.description = description
        self.representation = description.representation(representation)
        self.path = path
        self._file = handle
        self.found = found
        """The chunks found intact in the file when the store opened it (all of them for a
        seeded file, none for a new one): handed to whoever records the chunks held; the store
        never changes it."""
        self._fd_lock = threading.Lock()  # a worker's write never meets a closed descriptor
        self._source_stamp: _Stamp | None = None  # set for seeded files: see _check_source
        self._reverified: dict[int, _Stamp] = {}
        self.changed_chunks: set[int] = set()
        """Chunks found no longer matching their hash in a seeded file that changed on disk."""
        self.final_path: Path | None = None
        """Where :meth:`commit` moves a ``.part`` file once it is complete."""
        self._flush: _BackgroundFlush | None = None  # for a .part download: see commit

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
        _allocate_or_close(handle, rep.size)
        return cls(description, Path(path), handle, ChunkBitmap(rep.chunk_count), rep.id)

    @classmethod
    def open(
        cls,
        description: ContentDescription,
        path: str | os.PathLike[str],
        representation: str | None = None,
    ) -> ChunkStore:
        """Reopen an existing file: every chunk intact on disk is in :attr:`found`.

        Each chunk is read and verified once, so this resumes a partial download or seeds a
        complete file.  A file of the wrong size is grown or cut to the content's size.
        """
        rep = description.representation(representation)
        handle = open(path, "r+b", buffering=0)  # noqa: SIM115 - owned by the store until close()
        try:
            fd = handle.fileno()
            if os.fstat(fd).st_size != rep.size:
                handle.truncate(rep.size)
            bitmap = _verified_chunks(description, rep, fd)
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
        if not store.found.complete:
            missing = store.representation.chunk_count - len(store.found)
            store.close()
            raise IntegrityError(f"{path}: {missing} chunks do not match the description")
        return store

    @classmethod
    def seed_file(
        cls,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        name: str | None = None,
        media_type: str | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> ChunkStore:
        """Describe a complete file and open it for seeding, reading it once.

        The file must be a regular, non-empty file of at most MAX_TOTAL_CHUNKS chunks (checked
        before anything is read); it is opened read-only.  A file that changes while it is
        hashed is refused (IntegrityError).  ``cancelled`` as for :func:`describe_representation`.
        """
        _check_chunk_size(chunk_size)
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - owned by the store until close()
        try:
            before = os.fstat(handle.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise InvalidDescription(f"{path}: not a regular file")
            if before.st_size == 0:
                raise InvalidDescription(f"{path}: empty content cannot be described")
            if -(-before.st_size // chunk_size) > MAX_TOTAL_CHUNKS:
                raise InvalidDescription(
                    f"{path}: more than {MAX_TOTAL_CHUNKS} chunks of {chunk_size} bytes"
                )
            hashes, size = _hash_chunks(handle, path, chunk_size, cancelled)
            stamp = _stamp(handle.fileno())
            if stamp != _stamp_of(before) or size != before.st_size:
                raise IntegrityError(f"{path}: the file changed while it was read")
        except BaseException:
            handle.close()
            raise
        name = Path(path).name if name is None else name
        if media_type is None:
            media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        rep = Representation(id="main", size=size, chunk_hashes=tuple(hashes))
        description = ContentDescription(
            name=name, media_type=media_type, chunk_size=chunk_size, representations=(rep,)
        )
        store = cls(description, Path(path), handle, ChunkBitmap.full(rep.chunk_count), rep.id)
        store._source_stamp = stamp
        return store

    @classmethod
    def open_partial(
        cls,
        description: ContentDescription,
        final: str | os.PathLike[str],
        representation: str | None = None,
    ) -> ChunkStore:
        """Download into ``FINAL.part``: resumed when it exists, renamed by :meth:`commit`.

        An existing ``.part`` file is read and every chunk that matches its hash is in
        :attr:`found` (a ``.part`` of other content simply yields none).  The file is locked
        for the life of the store, so that two downloads never write one file: a second one
        gets an OSError (EWOULDBLOCK).
        """
        final = Path(final)
        part = part_path(final)
        rep = description.representation(representation)
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        handle = os.fdopen(fd, "r+b", buffering=0)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            bitmap = _verified_chunks(description, rep, fd) if os.fstat(fd).st_size else None
            allocate_file(fd, rep.size)
        except BaseException:
            handle.close()
            raise
        store = cls(description, part, handle, bitmap or ChunkBitmap(rep.chunk_count), rep.id)
        store.final_path = final
        store._flush = _BackgroundFlush(fd)
        return store

    @classmethod
    def create_anonymous(
        cls,
        description: ContentDescription,
        directory: str | os.PathLike[str] | None = None,
        representation: str | None = None,
    ) -> ChunkStore:
        """Start an empty store in a file without a name (``O_TMPFILE`` where there is one).

        The file exists only while it is open: nothing is left behind when the process ends,
        however it ends.
        """
        import tempfile  # for `ppsp watch` only: kept out of the other commands' start-up

        rep = description.representation(representation)
        handle = tempfile.TemporaryFile(dir=directory, buffering=0)  # noqa: SIM115
        _allocate_or_close(cast(BinaryIO, handle), rep.size)
        where = Path(directory or tempfile.gettempdir()) / "(unnamed ppsp file)"
        return cls(description, where, cast(BinaryIO, handle), ChunkBitmap(rep.chunk_count), rep.id)

    def commit(self) -> Path:
        """Give a complete ``.part`` file its final name (flushed to disk first); the new path.

        The file stays open, so it is served on.  A store that is not a ``.part`` is left as
        it is.  Only the owner knows the file is complete: it commits once every chunk is
        held.
        """
        if self.final_path is None:
            return self.path
        with self._fd_lock:
            os.fsync(self._file.fileno())
            os.replace(self.path, self.final_path)
            if self._flush is not None:
                self._flush.close()
                self._flush = None
        self.path, self.final_path = self.final_path, None
        return self.path

    def write(self, index: int, data: bytes) -> None:
        """Verify chunk ``index`` and write it (:meth:`store_parts` of one piece).

        Raises IntegrityError (nothing is written) when the bytes do not match.
        """
        self.store_parts(index, (data,))

    def store_parts(self, index: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Verify chunk ``index`` received as ``parts`` and write it to the file.

        Raises IntegrityError (nothing is written) when the bytes do not match, and
        ChunkUnavailable once the store is closed.  Safe to run in a worker thread.
        """
        verify_chunk_parts(self.description, index, parts, self.representation.id)
        offset, _ = self.description.chunk_range(index, self.representation.id)
        start = offset
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
            if self._flush is not None:
                self._flush.wrote(offset - start)

    def read(self, index: int) -> bytes:
        """The bytes at chunk ``index``'s place in the file (the owner reads held chunks only).

        ChunkUnavailable for an index outside the content.
        """
        offset, length = self._range(index)
        self._check_source(index)
        data = os.pread(self._file.fileno(), length, offset)
        if len(data) != length:
            raise IntegrityError(f"chunk {index}: file truncated underneath the store")
        return data

    def sending(self, index: int) -> tuple[BinaryIO, int, int]:
        """``(file, offset, length)`` of chunk ``index``, for ``sendfile`` (of a held chunk).

        The file is only read at explicit offsets (a ``sendfile`` may move its position, which
        nothing here uses).  ChunkUnavailable for an index outside the content.
        """
        offset, length = self._range(index)
        self._check_source(index)
        return self._file, offset, length

    def _range(self, index: int) -> tuple[int, int]:
        if type(index) is not int or not 0 <= index < self.representation.chunk_count:
            raise ChunkUnavailable(f"chunk {index!r} is not in the content")
        return self.description.chunk_range(index, self.representation.id)

    def _check_source(self, index: int) -> None:
        """For a seeded file: raise ChunkChanged when chunk ``index`` no longer matches.

        One ``fstat`` per chunk while the file is as it was hashed; once it changed, each chunk
        is read and hashed again (once per change) before it is served.
        """
        if self._source_stamp is None:
            return
        now = _stamp(self._file.fileno())
        if now == self._source_stamp or self._reverified.get(index) == now:
            return
        offset, length = self.description.chunk_range(index, self.representation.id)
        data = os.pread(self._file.fileno(), length, offset)
        try:
            verify_chunk(self.description, index, data, self.representation.id)
        except IntegrityError:
            self.changed_chunks.add(index)
            raise ChunkChanged(
                f"{self.path} changed on disk: chunk {index} no longer matches its hash"
            ) from None
        self._reverified[index] = now

    def close(self) -> None:
        """Close the file (idempotent); waits for a write in progress in another thread."""
        with self._fd_lock:
            self._file.close()
            if self._flush is not None:
                self._flush.close()
                self._flush = None

    def __enter__(self) -> ChunkStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_Stamp = tuple[int, int, int, int, int]
"""What identifies a file's contents cheaply: device, inode, size, mtime and ctime (ns)."""


def _stamp_of(info: os.stat_result) -> _Stamp:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _stamp(fd: int) -> _Stamp:
    return _stamp_of(os.fstat(fd))


def part_path(final: str | os.PathLike[str]) -> Path:
    """Where a download into ``final`` is kept until it is complete: ``FINAL.part``."""
    final = Path(final)
    return final.with_name(final.name + ".part")


def _verified_chunks(description: ContentDescription, rep: Representation, fd: int) -> ChunkBitmap:
    """The map of the chunks of ``rep`` that the file ``fd`` holds intact at their offsets."""
    bitmap = ChunkBitmap(rep.chunk_count)
    for index in range(rep.chunk_count):
        offset, length = description.chunk_range(index, rep.id)
        if chunk_hash(os.pread(fd, length, offset)) == rep.chunk_hashes[index]:
            bitmap.add(index)
    return bitmap
