"""The head of an HTTP/1.1 response (RFC 9112): status line and header fields, parsed strictly.

Sans-I/O, for the threaded chunk client (:mod:`ppsp.peer.net.chunkfetch`), which receives a chunk's
body straight into its own buffer and needs only the head parsed: the caller finds the head's
end in the bytes received (:func:`head_length`), parses it (:func:`parse_response_head`) and
frames the body by what the head says (``content_length``, ``chunked``, ``keep_alive``).

Hostile input is normal input: the head is bounded (:data:`MAX_HEAD_BYTES`,
:data:`MAX_HEADER_FIELDS`), every malformed head raises :class:`~ppsp.errors.MalformedResponse`
and nothing else, and the cases that let a response be framed two ways (several different
``Content-Length`` values, ``Transfer-Encoding`` beside ``Content-Length``, folded lines, a
space before the colon) are refused rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ppsp.errors import MalformedResponse
from ppsp.wire.fields import MAX_CONTENT_LENGTH, MAX_HEAD_BYTES, MAX_HEADER_FIELDS

__all__ = [
    "BUSY_STATUSES",
    "MAX_CONTENT_LENGTH",
    "MAX_HEADER_FIELDS",
    "MAX_HEAD_BYTES",
    "ResponseHead",
    "head_length",
    "parse_response_head",
    "retry_after_seconds",
]

BUSY_STATUSES = frozenset({429, 503})
"""Answers of a server that is serving others (RFC 9110 15.6.4, RFC 6585 4): ask it again
later, it did nothing wrong."""

_HEAD_END = b"\r\n\r\n"
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-9][0-9]{2})(?: ([\t !-~\x80-\xff]*))?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t !-~\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead:
    """A parsed response head.

    ``headers`` keeps the fields in order with lower-case names and values stripped of the
    optional whitespace around them.  ``content_length`` is None when the head gives none;
    ``chunked`` is True when the body is in the chunked transfer coding; ``keep_alive`` tells
    whether the connection may carry another request once the body is read (HTTP/1.1 unless
    ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``).
    """

    minor_version: int
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    content_length: int | None
    chunked: bool
    keep_alive: bool

    def header(self, name: str) -> str | None:
        """The value of the first field named ``name`` (any case), or None."""
        wanted = name.lower()
        for field, value in self.headers:
            if field == wanted:
                return value
        return None


def head_length(data: bytes | bytearray, size: int | None = None) -> int:
    """Length of the head at the start of ``data[:size]``, its final empty line included.

    0 while the head is not yet whole; raises MalformedResponse when no head has ended within
    :data:`MAX_HEAD_BYTES`.
    """
    size = len(data) if size is None else max(0, min(size, len(data)))
    end = data.find(_HEAD_END, 0, min(size, MAX_HEAD_BYTES))
    if end >= 0:
        return end + len(_HEAD_END)
    if size >= MAX_HEAD_BYTES:
        raise MalformedResponse(f"response head longer than {MAX_HEAD_BYTES} bytes")
    return 0


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a whole response head (as :func:`head_length` delimits it).

    Raises MalformedResponse for anything that is not a well-formed HTTP/1.x response head.
    """
    if len(head) > MAX_HEAD_BYTES:
        raise MalformedResponse(f"response head longer than {MAX_HEAD_BYTES} bytes")
    if not head.endswith(_HEAD_END):
        raise MalformedResponse("response head does not end with an empty line")
    lines = head[: -len(_HEAD_END)].split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise MalformedResponse("malformed status line")
    minor, status, reason = status_line.groups()
    if len(lines) - 1 > MAX_HEADER_FIELDS:
        raise MalformedResponse(f"more than {MAX_HEADER_FIELDS} header fields")
    headers: list[tuple[str, str]] = []
    lengths: set[int] = set()
    codings: list[str] = []
    has_coding = False
    connection: list[str] = []
    for line in lines[1:]:
        name, colon, raw_value = line.partition(b":")
        if not colon or _FIELD_NAME.fullmatch(name) is None:
            # Covers an empty line inside the head, obsolete line folding (a line starting with
            # white space) and white space between the name and the colon (RFC 9112 5.1).
            raise MalformedResponse("malformed header field")
        value = raw_value.strip(b" \t")
        if _FIELD_VALUE.fullmatch(value) is None:
            raise MalformedResponse("control character in a header field value")
        field = name.decode("ascii").lower()
        text = value.decode("latin-1")
        headers.append((field, text))
        if field == "content-length":
            lengths.update(_content_lengths(value))
        elif field == "transfer-encoding":
            has_coding = True
            codings.extend(_tokens(text))
        elif field == "connection":
            connection.extend(_tokens(text))
    if len(lengths) > 1:
        raise MalformedResponse("conflicting Content-Length values")
    if has_coding and lengths:
        raise MalformedResponse("both Transfer-Encoding and Content-Length")
    if has_coding and (not codings or codings[-1] != "chunked"):
        raise MalformedResponse("a transfer coding that does not end in chunked")
    minor_version = int(minor)
    # A transfer coding in an HTTP/1.0 answer is faulty framing: the connection ends with it
    # (RFC 9112 6.1).
    keep_alive = "close" not in connection and (
        minor_version >= 1 or ("keep-alive" in connection and not has_coding)
    )
    return ResponseHead(
        minor_version=minor_version,
        status=int(status),
        reason=(reason or b"").decode("latin-1"),
        headers=tuple(headers),
        content_length=lengths.pop() if lengths else None,
        chunked=bool(codings),
        keep_alive=keep_alive,
    )


def _content_lengths(value: bytes) -> set[int]:
    # A list of identical values ("42, 42") is allowed (RFC 9110 8.6); anything else is not.
    found: set[int] = set()
    for item in value.split(b","):
        item = item.strip(b" \t")
        if _DIGITS.fullmatch(item) is None or len(item) > 13:
            raise MalformedResponse("malformed Content-Length")
        number = int(item)
        if number > MAX_CONTENT_LENGTH:
            raise MalformedResponse("Content-Length out of bounds")
        found.add(number)
    return found


def _tokens(value: str) -> list[str]:
    return [item.strip(" \t").lower() for item in value.split(",") if item.strip(" \t")]


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` field's delay in seconds (RFC 9110 10.2.3), or None.

    Only the delay-seconds form is read (a peer has no reason to send a date, and a clock of its
    own would be needed to read one); anything else, and an absent field, is None.  The value is
    not bounded here: the caller bounds how long it waits.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 9 or _DIGITS.fullmatch(text.encode("ascii", "replace")) is None:
        return None
    return float(int(text))
