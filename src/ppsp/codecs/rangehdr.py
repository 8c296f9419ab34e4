"""HTTP Range request parsing for the local player endpoint (RFC 9110 section 14).

Sans-I/O: a header value and a content length go in, a byte span (or a reason to answer 416)
comes out.  Players (mpv, VLC, ffplay, browsers) send a single ``bytes=`` range; multi-range
requests are answered with the first range only, which RFC 9110 allows a server to do by
ignoring the rest (it may also send the whole representation).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ByteSpan:
    """An inclusive byte range ``[first, last]`` of a representation of ``total`` bytes."""

    first: int
    last: int
    total: int

    @property
    def length(self) -> int:
        """Number of bytes in the span."""
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` header value for a 206 answer."""
        return f"bytes {self.first}-{self.last}/{self.total}"


class RangeNotSatisfiable(ValueError):
    """The range lies wholly outside the representation: answer 416."""


def parse_range(header: str | None, total: int) -> ByteSpan | None:
    """Parse a ``Range`` header against a representation of ``total`` bytes.

    Returns None when the whole representation should be sent (no header, a unit other than
    bytes, or a syntactically invalid value, which RFC 9110 says to ignore), a ByteSpan for a
    satisfiable range, and raises RangeNotSatisfiable for an unsatisfiable one.
    """
    if not header:
        return None
    unit, _, ranges = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not ranges:
        return None
    first_range = ranges.split(",")[0].strip()
    start_text, dash, end_text = first_range.partition("-")
    if not dash:
        return None
    start_text, end_text = start_text.strip(), end_text.strip()
    if not _is_digits(start_text) and not _is_digits(end_text):
        return None
    if (start_text and not _is_digits(start_text)) or (end_text and not _is_digits(end_text)):
        return None
    if not start_text:
        # Suffix range: the last N bytes.
        suffix = int(end_text)
        if suffix == 0 or total == 0:
            raise RangeNotSatisfiable(f"suffix of {suffix} bytes of {total}")
        return ByteSpan(first=max(0, total - suffix), last=total - 1, total=total)
    first = int(start_text)
    if first >= total:
        raise RangeNotSatisfiable(f"start {first} beyond {total} bytes")
    last = total - 1 if not end_text else min(int(end_text), total - 1)
    if last < first:
        return None
    return ByteSpan(first=first, last=last, total=total)


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20
