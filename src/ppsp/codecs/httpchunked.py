"""The chunked transfer coding of an HTTP/1.1 body (RFC 9112 section 7.1), decoded strictly.

Sans-I/O, for the event loop's HTTP client (:mod:`ppsp.http.client`): the client feeds the
bytes as they arrive (:meth:`ChunkedDecoder.feed`) and gets the body's pieces back, without a
copy of a piece that arrived whole.  Hostile input is normal input: a chunk-size line, a chunk
size and the trailer section are bounded, and anything that is not the coding (a bare LF, a
size that is not hexadecimal, data longer than its size, a trailer line that is not a field)
raises :class:`~ppsp.errors.MalformedResponse` and nothing else.  The body's total length is
the caller's to bound.
"""

from __future__ import annotations

import re

from ppsp.errors import MalformedResponse
from ppsp.wire.fields import (
    MAX_CHUNK_LINE_BYTES,
    MAX_CONTENT_LENGTH,
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
)

__all__ = ["MAX_CHUNK_LINE_BYTES", "ChunkedDecoder"]

_SIZE = 0
_DATA = 1
_DATA_END = 2
_TRAILER = 3
_DONE = 4

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_EXTENSIONS = re.compile(rb"(?:[ \t]*;[\t !-~\x80-\xff]*)?")
_TRAILER_FIELD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t !-~\x80-\xff]*")


class ChunkedDecoder:
    """Decodes one body in the chunked coding, fed in pieces of any size.

    :attr:`done` once the last chunk and the trailer section have arrived; bytes fed after
    that are not part of the body and only counted (:attr:`extra_bytes`): a connection with
    such bytes cannot carry another request.
    """

    __slots__ = (
        "_line",
        "_remaining",
        "_state",
        "_trailer_bytes",
        "_trailer_fields",
        "extra_bytes",
    )

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._line = bytearray()
        self._trailer_bytes = 0
        self._trailer_fields = 0
        self.extra_bytes = 0
        """Bytes received after the body's end."""

    @property
    def done(self) -> bool:
        """Whether the whole body (last chunk and trailer section) has been decoded."""
        return self._state == _DONE

    def feed(self, data: bytes) -> list[bytes]:
        """Decode ``data``, the next bytes received; the body's pieces it held, in order.

        A piece that is all of ``data`` is ``data`` itself.  Raises MalformedResponse when the
        bytes are not the chunked coding.
        """
        pieces: list[bytes] = []
        position, end = 0, len(data)
        while position < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - position)
                pieces.append(data if take == end else data[position : position + take])
                position += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DONE:
                self.extra_bytes += end - position
                break
            else:
                newline = data.find(b"\n", position)
                stop = end if newline < 0 else newline + 1
                self._line += data[position:stop]
                position = stop
                self._check_line_length()
                if newline < 0:
                    break
                line = bytes(self._line)
                self._line.clear()
                self._end_of_line(line)
        return pieces

    def _check_line_length(self) -> None:
        size = len(self._line)
        if self._state == _SIZE and size > MAX_CHUNK_LINE_BYTES:
            raise MalformedResponse(f"chunk-size line longer than {MAX_CHUNK_LINE_BYTES} bytes")
        if self._state == _DATA_END and size > 2:
            raise MalformedResponse("chunk data longer than its size")
        if self._state == _TRAILER and self._trailer_bytes + size > MAX_HEAD_BYTES:
            raise MalformedResponse(f"trailer section longer than {MAX_HEAD_BYTES} bytes")

    def _end_of_line(self, line: bytes) -> None:
        if not line.endswith(b"\r\n"):
            raise MalformedResponse("a line of the chunked coding not ended by CRLF")
        content = line[:-2]
        if self._state == _DATA_END:
            if content:
                raise MalformedResponse("chunk data longer than its size")
            self._state = _SIZE
        elif self._state == _SIZE:
            size, _, _ = content.partition(b";")
            digits = size.rstrip(b" \t")
            if _HEX.fullmatch(digits) is None:
                raise MalformedResponse("malformed chunk size")
            if _EXTENSIONS.fullmatch(content[len(digits) :]) is None:
                raise MalformedResponse("malformed chunk extension")
            length = int(digits, 16)
            if length > MAX_CONTENT_LENGTH:
                raise MalformedResponse("chunk size out of bounds")
            self._remaining = length
            self._state = _DATA if length else _TRAILER
        else:  # the trailer section: fields, ignored, then an empty line
            if not content:
                self._state = _DONE
                return
            self._trailer_bytes += len(line)
            self._trailer_fields += 1
            if self._trailer_fields > MAX_HEADER_FIELDS:
                raise MalformedResponse(f"more than {MAX_HEADER_FIELDS} trailer fields")
            if _TRAILER_FIELD.fullmatch(content) is None:
                raise MalformedResponse("malformed trailer field")
