"""HTTP/1.1 heads (RFC 9112), parsed strictly: responses for the chunk client, requests for the
peer's server.

Sans-I/O, for the threaded chunk client (:mod:`ppsp.peer.net.chunkfetch`), which receives a chunk's
body straight into its own buffer and needs only the head parsed: the caller finds the head's
end in the bytes received (:func:`head_length`), parses it (:func:`parse_response_head`) and
frames the body by what the head says (``content_length``, ``chunked``, ``keep_alive``).

Hostile input is normal input: the head is bounded (:data:`MAX_HEAD_BYTES`,
:data:`MAX_HEADER_FIELDS`), every malformed head raises :class:`~ppsp.errors.MalformedResponse`
and nothing else, and the cases that let a response be framed two ways (several different
``Content-Length`` values, ``Transfer-Encoding`` beside ``Content-Length``, folded lines, a
space before the colon) are refused rather than guessed at.

Requests, for the peer's HTTP server (:mod:`ppsp.http.server`), the same way:
:func:`request_head_length` finds a request head's end, :func:`parse_request_head` parses it
into a :class:`RequestHead`.  A request that cannot be served as sent raises the
:class:`~ppsp.errors.HTTPRequestError` that carries the status to answer with: 400 for a
malformed head or ambiguous framing, 413 for a ``Content-Length`` over
:data:`MAX_CONTENT_LENGTH`, 414 for a request line over :data:`MAX_REQUEST_LINE_BYTES`, 431
for a head over :data:`MAX_HEAD_BYTES` or :data:`MAX_HEADER_FIELDS`, 501 for a body in a
transfer coding (chunked request bodies are not read: peers send ``Content-Length``), 505
for a major HTTP version other than 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from ppsp.errors import (
    HTTPVersionNotSupported,
    MalformedRequest,
    MalformedResponse,
    RequestBodyTooLarge,
    RequestHeadTooLarge,
    RequestNotImplemented,
    RequestTargetTooLong,
)
from ppsp.wire.fields import (
    MAX_CONTENT_LENGTH,
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
    MAX_REQUEST_LINE_BYTES,
)

__all__ = [
    "BUSY_STATUSES",
    "MAX_CONTENT_LENGTH",
    "MAX_HEADER_FIELDS",
    "MAX_HEAD_BYTES",
    "MAX_REQUEST_LINE_BYTES",
    "RequestHead",
    "ResponseHead",
    "field_value",
    "head_length",
    "parse_request_head",
    "parse_response_head",
    "request_head_length",
    "retry_after_seconds",
]

BUSY_STATUSES = frozenset({429, 503})
"""Answers of a server that is serving others (RFC 9110 15.6.4, RFC 6585 4): ask it again
later, it did nothing wrong."""

_HEAD_END = b"\r\n\r\n"
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-9][0-9]{2})(?: ([\t !-~\x80-\xff]*))?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t !-~\x80-\xff]*")
_FIELD_VALUE_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
"""The bytes of :data:`_FIELD_VALUE`, for a check of long values without the regex engine."""
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


# -- requests (the peer's HTTP server) ----------------------------------------------------------

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([!-~]+) HTTP/([0-9])\.([0-9])")
# RFC 3986: pchar, and the characters a query may add to it.
_PCHAR = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_PATH = rb"(/(?:" + _PCHAR + rb"|/)*)"
_QUERY = rb"(?:\?((?:" + _PCHAR + rb"|[/?])*))?"
_ORIGIN_FORM = re.compile(_PATH + _QUERY)
# uri-host [":" port] (RFC 9110 7.2): an IP literal (checked loosely: hex digits, colons and
# dots in brackets), or a reg-name / IPv4 address.
_HOST = rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?"
_HOST_FIELD = re.compile(_HOST)
# The absolute form an origin server must accept too (RFC 9112 3.2.2); http only, a host
# required (RFC 9110 4.2.1), no userinfo (RFC 9110 4.2.4).
_ABSOLUTE_FORM = re.compile(
    rb"[Hh][Tt][Tt][Pp]://(" + _HOST + rb")((?:/(?:" + _PCHAR + rb"|/)*)?)" + _QUERY
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """A parsed request head.

    ``target`` is the request target as sent; ``path`` its path, still percent-encoded (``/``
    for an absolute-form target without one), ``query`` the text after ``?`` (None without
    one) and ``segments`` the path's segments, percent-decoded as UTF-8 (``/`` is ``("",)``,
    ``/a/b`` is ``("a", "b")``: an encoded ``/`` stays inside its segment).  ``headers`` keeps
    the fields in order, names in lower case, values stripped of the whitespace around them.
    ``host`` is the target's authority (absolute form) or the ``Host`` field (None when an
    HTTP/1.0 request has none).  ``content_length`` is the body's length (0 without the field:
    a request without framing has no body).  ``keep_alive`` tells whether the connection may
    carry another request after this one (HTTP/1.1 unless ``Connection: close``; HTTP/1.0
    only with ``Connection: keep-alive``); ``expect_continue`` whether an HTTP/1.1 client waits
    for ``100 Continue`` before it sends the body; ``chunked`` whether the body is in the
    chunked transfer coding (only when the parser was asked to accept it).
    """

    method: str
    target: str
    path: str
    query: str | None
    segments: tuple[str, ...]
    minor_version: int
    headers: tuple[tuple[str, str], ...]
    host: str | None
    content_length: int
    keep_alive: bool
    expect_continue: bool
    chunked: bool = False

    def header(self, name: str) -> str | None:
        """The value of the first field named ``name`` (any case), or None."""
        wanted = name.lower()
        for field, value in self.headers:
            if field == wanted:
                return value
        return None


def request_head_length(data: bytes | bytearray, size: int | None = None) -> int:
    """Length of the request head at the start of ``data[:size]``, its empty line included.

    0 while the head is not yet whole.  Raises RequestTargetTooLong (414) as soon as the
    request line is known to be longer than :data:`MAX_REQUEST_LINE_BYTES`, and
    RequestHeadTooLarge (431) when no head has ended within :data:`MAX_HEAD_BYTES`.
    """
    # Conditionals rather than min() and max(), which cost more than the search for a short
    # head: this runs for every request a server reads.
    if size is None or size > len(data):
        size = len(data)
    elif size < 0:
        size = 0
    end = data.find(_HEAD_END, 0, size if size < MAX_HEAD_BYTES else MAX_HEAD_BYTES)
    if end >= 0:
        if end > MAX_REQUEST_LINE_BYTES and data.find(b"\r\n", 0, end + 2) > MAX_REQUEST_LINE_BYTES:
            raise RequestTargetTooLong(f"request line longer than {MAX_REQUEST_LINE_BYTES} bytes")
        return end + len(_HEAD_END)
    line_bound = MAX_REQUEST_LINE_BYTES + 2
    if size >= line_bound and data.find(b"\r\n", 0, line_bound) < 0:
        raise RequestTargetTooLong(f"request line longer than {MAX_REQUEST_LINE_BYTES} bytes")
    if size >= MAX_HEAD_BYTES:
        raise RequestHeadTooLarge(f"request head longer than {MAX_HEAD_BYTES} bytes")
    return 0


def parse_request_head(head: bytes, *, chunked: bool = False) -> RequestHead:
    """Parse a whole request head (as :func:`request_head_length` delimits it).

    Raises the :class:`~ppsp.errors.HTTPRequestError` whose status answers the request (see
    the module docstring) for anything that is not a well-formed HTTP/1.x request this server
    can read.  With ``chunked``, a body in the chunked transfer coding (alone: no other
    coding) is accepted (the head says so) instead of answered 501.
    """
    if len(head) > MAX_HEAD_BYTES:
        raise RequestHeadTooLarge(f"request head longer than {MAX_HEAD_BYTES} bytes")
    if not head.endswith(_HEAD_END):
        raise MalformedRequest("request head does not end with an empty line")
    lines = head[: -len(_HEAD_END)].split(b"\r\n")
    if len(lines[0]) > MAX_REQUEST_LINE_BYTES:
        raise RequestTargetTooLong(f"request line longer than {MAX_REQUEST_LINE_BYTES} bytes")
    request_line = _REQUEST_LINE.fullmatch(lines[0])
    if request_line is None:
        raise MalformedRequest("malformed request line")
    method, target, major, minor = request_line.groups()
    if major != b"1":
        raise HTTPVersionNotSupported(f"HTTP/{major.decode()}.{minor.decode()}")
    # A later minor version of HTTP/1 is read as the highest one known (RFC 9110 2.5).
    minor_version = min(int(minor), 1)
    authority, path, query = _split_target(target)
    if len(lines) - 1 > MAX_HEADER_FIELDS:
        raise RequestHeadTooLarge(f"more than {MAX_HEADER_FIELDS} header fields")
    headers: list[tuple[str, str]] = []
    hosts: list[bytes] = []
    lengths: set[int] = set()
    codings: list[str] = []
    has_coding = False
    connection: list[str] = []
    expect: list[str] = []
    for line in lines[1:]:
        name, colon, raw_value = line.partition(b":")
        if not colon or _FIELD_NAME.fullmatch(name) is None:
            # An empty line inside the head, obsolete line folding, white space before the
            # colon: all refused (RFC 9112 5.1, 5.2).
            raise MalformedRequest("malformed header field")
        value = raw_value.strip(b" \t")
        if _FIELD_VALUE.fullmatch(value) is None:
            raise MalformedRequest("control character in a header field value")
        field = name.decode("ascii").lower()
        text = value.decode("latin-1")
        headers.append((field, text))
        if field == "host":
            hosts.append(value)
        elif field == "content-length":
            lengths.update(_request_content_lengths(value))
        elif field == "transfer-encoding":
            has_coding = True
            codings.extend(_tokens(text))
        elif field == "connection":
            connection.extend(_tokens(text))
        elif field == "expect":
            expect.extend(_tokens(text))
    # RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0, well formed.
    if len(hosts) > 1 or (minor_version >= 1 and not hosts):
        raise MalformedRequest("a request needs exactly one Host field")
    if hosts and _HOST_FIELD.fullmatch(hosts[0]) is None:
        raise MalformedRequest("malformed Host field")
    if len(lengths) > 1:
        raise MalformedRequest("conflicting Content-Length values")
    if has_coding:
        # RFC 9112 6.1 and 6.3: a transfer coding beside a length, in HTTP/1.0, or not ending
        # in chunked leaves the body's end unknown; a chunked body is not read here.
        if lengths:
            raise MalformedRequest("both Transfer-Encoding and Content-Length")
        if minor_version == 0:
            raise MalformedRequest("Transfer-Encoding in an HTTP/1.0 request")
        if not codings or codings[-1] != "chunked":
            raise MalformedRequest("a transfer coding that does not end in chunked")
        if not chunked or codings != ["chunked"]:
            raise RequestNotImplemented("request bodies in a transfer coding are not read")
    keep_alive = "close" not in connection and (minor_version >= 1 or "keep-alive" in connection)
    if authority is None and hosts:
        authority = hosts[0]
    return RequestHead(
        method=method.decode("ascii"),
        target=target.decode("ascii"),
        path=path.decode("ascii"),
        query=None if query is None else query.decode("ascii"),
        segments=tuple(_decode_segment(segment) for segment in path[1:].split(b"/")),
        minor_version=minor_version,
        headers=tuple(headers),
        host=None if authority is None else authority.decode("ascii"),
        content_length=lengths.pop() if lengths else 0,
        keep_alive=keep_alive,
        # A 100-continue expectation of an HTTP/1.0 request is ignored (RFC 9110 10.1.1).
        expect_continue=minor_version >= 1 and "100-continue" in expect,
        chunked=has_coding,
    )


def field_value(raw: bytes) -> str | None:
    """The value of a request header field whose line ends in ``raw`` after its colon, as
    :func:`parse_request_head` keeps it (the white space around it stripped); None for a value
    that the parser refuses."""
    value = raw.strip(b" \t")
    if value.translate(None, _FIELD_VALUE_BYTES):
        return None  # a byte outside the field-value bytes is left
    return value.decode("latin-1")


def _split_target(target: bytes) -> tuple[bytes | None, bytes, bytes | None]:
    """``(authority, path, query)`` of an origin-form or absolute-form target (authority None
    for the origin form); MalformedRequest for any other form or a malformed target."""
    origin = _ORIGIN_FORM.fullmatch(target)
    if origin is not None:
        return None, origin[1], origin[2]
    absolute = _ABSOLUTE_FORM.fullmatch(target)
    if absolute is None:
        raise MalformedRequest("malformed request target")
    authority = absolute[1]
    if not authority or authority.startswith(b":"):
        raise MalformedRequest("an http URI without a host")
    return authority, absolute[2] or b"/", absolute[3]


def _decode_segment(segment: bytes) -> str:
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("a path segment that is not UTF-8") from None


def _request_content_lengths(value: bytes) -> set[int]:
    # As in a response (identical values may repeat), but a well-formed length over the bound
    # is a body too large to take (413), not a malformed head.
    found: set[int] = set()
    for item in value.split(b","):
        item = item.strip(b" \t")
        if _DIGITS.fullmatch(item) is None:
            raise MalformedRequest("malformed Content-Length")
        # Leading zeros are allowed, and skipped before the digits become a number: int() of
        # more than 4,300 digits raises (CPython's bound on conversions), zeros included.
        digits = item.lstrip(b"0") or b"0"
        if len(digits) > 13 or int(digits) > MAX_CONTENT_LENGTH:
            raise RequestBodyTooLarge("Content-Length out of bounds")
        found.add(int(digits))
    return found
