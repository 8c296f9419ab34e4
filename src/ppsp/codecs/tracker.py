"""Choose the tracker codec for an HTTP exchange, and map answers to HTTP status lines.

PPSP-TP travels in two encodings (PROFILE.md): the drafts' XML and RFC 7846 JSON.  The request's
``Content-Type`` selects the encoding and the answer goes back in the same one.  This module is the
only place that knows the media types and how an answer's outcome maps to an HTTP status:

- XML carries the outcome in the HTTP status line (200, or the error's status with its reason
  phrase, for example ``400 PPSP version 1.0``).
- JSON carries it in the body (``response_type`` 1 and ``error_code``).  Its HTTP status follows
  the same mapping as XML (200 on success, the error's HTTP status otherwise), so that HTTP-level
  tooling (proxies, logs, metrics) sees failures as failures; a JSON receiver reads the body.

A request whose media type is neither is refused with ``415 Unsupported Media Type`` and a
plain-text body: without a known encoding there is no PPSP form to answer in.
"""

from __future__ import annotations

import functools
from typing import Protocol

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.wire.tracker import AnyRequest, Encoding, ErrorResponse, TrackerResponse

XML_MEDIA_TYPES: frozenset[str] = frozenset(
    {"application/ppsp-tracker+xml", "application/xml", "text/xml"}
)
"""Media types accepted as the XML encoding."""

JSON_MEDIA_TYPES: frozenset[str] = frozenset({"application/ppsp-tracker+json", "application/json"})
"""Media types accepted as the JSON encoding."""

UNSUPPORTED_MEDIA_TYPE = 415
"""HTTP status for a request in no known encoding."""


class TrackerCodec(Protocol):
    """What each encoding module (:mod:`xml_codec`, :mod:`json_codec`) provides."""

    def decode_request(self, data: bytes) -> AnyRequest:
        """Parse a request body; raise a ``RemoteTrackerError`` subclass if it is invalid."""
        ...

    def decode_response(
        self, data: bytes, status: int = 200, reason: str = ""
    ) -> TrackerResponse | ErrorResponse:
        """Parse an answer body together with its HTTP status and reason phrase."""
        ...

    def encode_request(self, msg: AnyRequest) -> bytes:
        """Serialise a request."""
        ...

    def encode_response(self, msg: TrackerResponse | ErrorResponse) -> bytes:
        """Serialise an answer."""
        ...


_CODECS: dict[Encoding, TrackerCodec] = {
    Encoding.XML: xml_codec,
    Encoding.JSON: json_codec,
}


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a ``Content-Type`` value (parameters dropped)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=64)
def encoding_for(content_type: str | None) -> Encoding | None:
    """The encoding a ``Content-Type`` header value selects, or ``None`` if it selects none."""
    mtype = media_type(content_type)
    if mtype in XML_MEDIA_TYPES:
        return Encoding.XML
    if mtype in JSON_MEDIA_TYPES:
        return Encoding.JSON
    return None


def codec_for(encoding: Encoding) -> TrackerCodec:
    """The codec module of ``encoding``."""
    return _CODECS[encoding]


def status_line(msg: TrackerResponse | ErrorResponse) -> tuple[int, str]:
    """HTTP status and reason phrase that carry ``msg`` (the same in both encodings)."""
    if isinstance(msg, TrackerResponse):
        return 200, "OK"
    return msg.code.http_status, safe_reason(msg.reason or msg.code.reason)


def safe_reason(text: str, *, limit: int = 100) -> str:
    """``text`` made fit for an HTTP reason phrase: printable ASCII on one line, bounded."""
    cleaned = "".join(ch if " " <= ch <= "~" else " " for ch in text).strip()
    return cleaned[:limit] or "Error"
