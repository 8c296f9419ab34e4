"""Requests as the tracker reads them: the fast readers first, then the full decoder.

Kept apart from :mod:`.read` so that a peer, which sends requests and reads answers, never
loads the tracker's readers (:mod:`.scan`, :mod:`.plain`).
"""

from __future__ import annotations

from ppsp.codecs.tracker_xml.plain import plain_request
from ppsp.codecs.tracker_xml.read import decode_request_root
from ppsp.codecs.tracker_xml.scan import scan_request
from ppsp.codecs.tracker_xml.tree import parse, with_transaction_id
from ppsp.wire.tracker import AnyRequest

__all__ = ["decode_request"]


def decode_request(data: bytes) -> AnyRequest:
    """Decode a PPSP-TP/1.0 or 1.1 XML request body.

    Raises :class:`~ppsp.errors.BadRequest` for anything malformed, truncated, mistyped,
    incomplete, over a bound, or a method that is unknown or not part of the message's version;
    :class:`~ppsp.errors.UnsupportedVersion` for a version other than 1.0 and 1.1;
    :class:`~ppsp.errors.PayloadTooLarge` for a body over
    :data:`~ppsp.wire.fields.MAX_MESSAGE_BYTES`.  The error carries the request's transaction ID
    whenever the document parsed far enough to read it.
    """
    # The codec's own shapes are read from the bytes (.scan), the plain FIND and STAT_REPORT
    # from the tree (.plain); the full decoder reads everything else and decides refusals.
    scanned = scan_request(data)
    if scanned is not None:
        return scanned
    root = parse(data)
    request = plain_request(root)
    if request is not None:
        return request
    return with_transaction_id(root, decode_request_root)
