"""Request heads read once: a server's memory of the heads it has parsed.

Clients send the same heads again and again: the same path and fields, a body length among a
few values.  A server keeps the parse of a short head (a bounded number of them, all forgotten
when the bound is reached; what is kept is immutable) and finds it again by the head's bytes.

Heads that carry credentials are the exception: with bearer tokens (RFC 7846 section 6) each
peer sends its own ``Authorization`` field, so no two peers' heads are alike and none would be
found again; parsing each costs the tracker more than the token's own check.  Such a head is
read as the rest of the head (found again like any other: the peers of one client program send
the same rest) plus its one ``Authorization`` field, checked as the parser checks a field.
Whatever this shortcut cannot settle exactly (a second ``Authorization`` field in any spelling,
a field too many, a rest that is refused) is left to the full parse, so the result and every
refusal are the parser's own.

Layer: I/O helpers without I/O (see :mod:`ppsp.http`): the standard library and
:mod:`ppsp.codecs.httphead` only.
"""

from __future__ import annotations

from ppsp.codecs.httphead import (
    MAX_HEAD_BYTES,
    MAX_HEADER_FIELDS,
    RequestHead,
    field_value,
    parse_request_head,
)
from ppsp.errors import HTTPRequestError
from ppsp.http.bounds import HEAD_CACHE_BYTES, HEAD_CACHE_SIZE
from ppsp.http.headers import Headers
from ppsp.wire.builder import keyword_builder

__all__ = ["HeadReader"]

_CREDENTIALS = b"\r\nAuthorization:"
"""The credentials field as clients spell it (RFC 9110 11.6.2); another spelling of the name
takes the full parse."""

_CREDENTIALS_NAME = "authorization"

_build_head = keyword_builder(RequestHead)


class HeadReader:
    """Parses request heads, remembering the parse of each short head (see the module)."""

    __slots__ = ("_kept", "chunked")

    def __init__(self, *, chunked: bool = False) -> None:
        self.chunked = chunked
        """Whether bodies in the chunked coding are accepted (see :func:`parse_request_head`)."""
        self._kept: dict[bytes, tuple[RequestHead, Headers]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def parse(self, head: bytes) -> tuple[RequestHead, Headers]:
        """``head`` parsed, with its fields; raises the parser's HTTPRequestError for a head
        to refuse."""
        found = self._kept.get(head)
        if found is not None:
            return found
        at = head.find(_CREDENTIALS)
        if at > 0:
            found = self._with_credentials(head, at)
            if found is not None:
                return found
        return self._parse_and_keep(head)

    def _parse_and_keep(self, head: bytes) -> tuple[RequestHead, Headers]:
        parsed = parse_request_head(head, chunked=self.chunked)
        found = (parsed, Headers(parsed.headers))
        if len(head) <= HEAD_CACHE_BYTES:
            kept = self._kept
            if len(kept) >= HEAD_CACHE_SIZE:
                kept.clear()
            kept[head] = found
        return found

    def _with_credentials(self, head: bytes, at: int) -> tuple[RequestHead, Headers] | None:
        """The parse of ``head`` from the kept parse of its rest and its ``Authorization``
        field at ``at``; None when only the full parse can tell."""
        if len(head) > MAX_HEAD_BYTES:
            return None
        end = head.find(b"\r\n", at + 2)
        value = field_value(head[at + len(_CREDENTIALS) : end])
        if value is None:
            return None
        rest = head[:at] + head[end:]
        found = self._kept.get(rest)
        if found is None:
            try:
                found = self._parse_and_keep(rest)
            except HTTPRequestError:
                return None  # the full parse gives the refusal, as it reads the head in order
        parsed, headers = found
        if _CREDENTIALS_NAME in headers or len(parsed.headers) >= MAX_HEADER_FIELDS:
            return None
        # The field's place among the fields: before ``at``, one line end closes the request
        # line and one each field before it but the last, whose end is ``at`` itself.
        index = head.count(b"\r\n", 0, at)
        fields = (*parsed.headers[:index], (_CREDENTIALS_NAME, value), *parsed.headers[index:])
        # Built field by field: dataclasses.replace reads the class's fields on every call.
        with_credentials = _build_head(
            method=parsed.method,
            target=parsed.target,
            path=parsed.path,
            query=parsed.query,
            segments=parsed.segments,
            minor_version=parsed.minor_version,
            headers=fields,
            host=parsed.host,
            content_length=parsed.content_length,
            keep_alive=parsed.keep_alive,
            expect_continue=parsed.expect_continue,
            chunked=parsed.chunked,
        )
        return with_credentials, headers.with_field(_CREDENTIALS_NAME, value, index)
