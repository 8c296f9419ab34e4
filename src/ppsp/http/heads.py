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

Nothing is built for such a head but a small view of its fields (:class:`CredentialHeaders`):
the request line and framing are the rest's, kept :class:`RequestHead` (the field changes
none of them), whose ``headers`` therefore lack the credentials field; a server reads fields
from the :class:`~ppsp.http.headers.Headers` it is given, which hold every field in its place.
Building a head and a mapping of fields for every request was half of the shortcut's cost.

Layer: I/O helpers without I/O (see :mod:`ppsp.http`): the standard library and
:mod:`ppsp.codecs.httphead` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar, overload

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

__all__ = ["CredentialHeaders", "HeadReader"]

_D = TypeVar("_D")

_CREDENTIALS = b"\r\nAuthorization:"
"""The credentials field as clients spell it (RFC 9110 11.6.2); another spelling of the name
takes the full parse."""

_CREDENTIALS_NAME = "authorization"


class CredentialHeaders(Headers):
    """The fields of a head read as a kept rest plus its ``Authorization`` field (see the
    module): looked up as :class:`~ppsp.http.headers.Headers` are, the credentials by one
    comparison, every other field in the rest's mapping; the fields in order are put together
    only when asked for."""

    __slots__ = ("_at", "_head", "_rest", "_value", "_whole")

    def __init__(self, rest: Headers, value: str, head: bytes, at: int) -> None:
        # Headers.__init__ is not called: its slots are the rest's, read through it.
        self._rest = rest
        self._value = value
        self._head = head
        self._at = at
        self._whole: Headers | None = None

    def _fields(self) -> Headers:
        whole = self._whole
        if whole is None:
            rest = self._rest
            # The field's place: before it, one line end closes the request line and one each
            # field before it but the last, whose end is the field's own start.
            index = self._head.count(b"\r\n", 0, self._at)
            whole = self._whole = rest.with_field(_CREDENTIALS_NAME, self._value, index)
        return whole

    # Read-only here, where Headers has a slot: these fields are put together when read.
    @property
    def fields(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        """Every field in order, names in lower case (the credentials in their place)."""
        return self._fields().fields

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        if wanted == _CREDENTIALS_NAME:
            return self._value
        return self._rest[wanted]

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: _D) -> str | _D: ...

    def get(self, name: str, default: object = None) -> object:
        """The first value of the field named ``name`` (any case), or ``default``."""
        wanted = name.lower()
        if wanted == _CREDENTIALS_NAME:
            return self._value
        return self._rest.get(wanted, default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name.lower() == _CREDENTIALS_NAME or name in self._rest)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._rest) + 1

    def with_field(self, name: str, value: str, index: int) -> Headers:
        """These fields with one more (see :meth:`Headers.with_field`)."""
        return self._fields().with_field(name, value, index)

    def getall(self, name: str) -> list[str]:
        """Every value of the fields named ``name`` (any case), in order."""
        return self._fields().getall(name)


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
        to refuse.  The fields are the :class:`~ppsp.http.headers.Headers`' (the head's
        ``headers`` lack the credentials field of a head read through the shortcut)."""
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
        return parsed, CredentialHeaders(headers, value, head, at)
