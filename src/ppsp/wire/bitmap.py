"""Chunk bitmaps: which chunks of a range a peer holds.

The wire form (PROFILE.md) is shared by the tracker's ContentMap and the peer protocol's
CHUNK element: Base64 (RFC 4648) of a bit string in which bit *i*, the most significant bit of
each byte first, is chunk ``start + i``.  Pure Python, no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator


class ChunkBitmap:
    """A mutable set of chunk indexes in ``[start, start + size)``, stored as a bit string.

    Indexes outside the range are rejected by :meth:`add` and reported absent by ``in``.
    """

    __slots__ = ("_bits", "_count", "size", "start")

    def __init__(self, size: int, start: int = 0, bits: bytes | None = None) -> None:
        if size < 0 or start < 0:
            raise ValueError("bitmap size and start must not be negative")
        self.start = start
        self.size = size
        nbytes = (size + 7) // 8
        if bits is None:
            self._bits = bytearray(nbytes)
        else:
            if len(bits) != nbytes:
                raise ValueError(f"bitmap of {size} bits needs {nbytes} bytes, got {len(bits)}")
            self._bits = bytearray(bits)
            # Bits past ``size`` in the last byte carry no meaning; clear them so that
            # equality and counting only see real chunks.
            if size % 8:
                self._bits[-1] &= (0xFF << (8 - size % 8)) & 0xFF
        self._count = int.from_bytes(self._bits, "big").bit_count()

    @classmethod
    def full(cls, size: int, start: int = 0) -> ChunkBitmap:
        """A bitmap holding every chunk of the range."""
        bitmap = cls(size, start)
        for index in range(start, start + size):
            bitmap.add(index)
        return bitmap

    @classmethod
    def from_indexes(cls, indexes: Iterable[int], size: int, start: int = 0) -> ChunkBitmap:
        """A bitmap holding exactly ``indexes`` (each must be in range)."""
        bitmap = cls(size, start)
        for index in indexes:
            bitmap.add(index)
        return bitmap

    @classmethod
    def from_base64(cls, text: str, size: int, start: int = 0) -> ChunkBitmap:
        """Decode the wire form; raises ValueError on bad Base64 or a length mismatch."""
        try:
            raw = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"invalid Base64 chunk map: {exc}") from exc
        return cls(size, start, raw)

    def to_base64(self) -> str:
        """The wire form: Base64 of the bit string."""
        return base64.b64encode(bytes(self._bits)).decode("ascii")

    def to_bytes(self) -> bytes:
        """The raw bit string."""
        return bytes(self._bits)

    @property
    def end(self) -> int:
        """Last index of the range (``start + size - 1``)."""
        return self.start + self.size - 1

    def add(self, index: int) -> bool:
        """Mark ``index`` held; returns True when it was not held before."""
        offset = index - self.start
        if not 0 <= offset < self.size:
            raise IndexError(f"chunk {index} outside [{self.start}, {self.end}]")
        mask = 0x80 >> (offset % 8)
        if self._bits[offset // 8] & mask:
            return False
        self._bits[offset // 8] |= mask
        self._count += 1
        return True

    def discard(self, index: int) -> None:
        """Mark ``index`` not held (no error when it is out of range or absent)."""
        offset = index - self.start
        if 0 <= offset < self.size:
            mask = 0x80 >> (offset % 8)
            if self._bits[offset // 8] & mask:
                self._bits[offset // 8] &= ~mask & 0xFF
                self._count -= 1

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        offset = index - self.start
        if not 0 <= offset < self.size:
            return False
        return bool(self._bits[offset // 8] & (0x80 >> (offset % 8)))

    def __iter__(self) -> Iterator[int]:
        for byte_index, byte in enumerate(self._bits):
            if not byte:
                continue
            for bit in range(8):
                if byte & (0x80 >> bit):
                    yield self.start + byte_index * 8 + bit

    def __len__(self) -> int:
        return self._count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChunkBitmap):
            return NotImplemented
        return (self.start, self.size, self._bits) == (other.start, other.size, other._bits)

    def __hash__(self) -> int:
        """Refused: a bitmap is mutable (``hash()`` raises TypeError, as for a list)."""
        raise TypeError(f"unhashable type: {type(self).__name__!r}")

    @property
    def complete(self) -> bool:
        """Whether every chunk of the range is held."""
        return self._count == self.size

    def count_in(self, first: int, last: int | None) -> int:
        """How many held chunks fall in ``[first, last]`` (``last`` None = to the end)."""
        lo = max(first, self.start)
        hi = self.end if last is None else min(last, self.end)
        if hi < lo:
            return 0
        return sum(1 for index in range(lo, hi + 1) if index in self)

    def __repr__(self) -> str:
        return f"ChunkBitmap(start={self.start}, size={self.size}, held={self._count})"
