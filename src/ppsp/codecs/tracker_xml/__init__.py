"""XML codec of the tracker protocol: PPSP-TP/1.0 and PPSP-TP/1.1 message bodies.

Sources: draft-huang-ppsp-extended-tracker-protocol-01 section 3.3 and 4 (1.1),
draft-ietf-ppsp-base-tracker-protocol-02 and draft-cruz-ppsp-base-tracker-protocol-00 (1.0).

The codec turns bytes into the typed model of :mod:`ppsp.wire.tracker` and back.  It is
the only place where tracker XML is validated: a decoded message is a valid message.

Decoding rules, in short (docs/PROTOCOL.md has the reasoning):

* Elements and attributes are matched by local name; the drafts' ``xmlns="TBD"``, any other
  namespace or none are all accepted.  Unknown elements and attributes are ignored (the drafts'
  extension rule), and so are known elements a method does not use.  A known element that may
  occur once and occurs twice is a bad request.
* Values follow the field rules every codec shares (:mod:`ppsp.wire.fields`): identifiers and
  attribute values are *tokens* (1 to 256 characters, no whitespace or control characters;
  surrounding whitespace is stripped here), swarm IDs are tokens other than ``ALL`` and ``nil``,
  integers are 1 to 19 ASCII digits in ``0 .. 2**63 - 1`` (ports 1-65535), IP addresses are
  kept in canonical form, chunk maps hold at most 2**20 bits.
* A listed peer (a PeerInfo of an answer other than the requester's) has a PeerID and at least
  one PeerAddress; PeerInfo entries naming the same peer for the same swarm are read as one peer
  holding the addresses of all of them (:func:`~ppsp.wire.common.merge_listed_peers`).
* DISCONNECT takes the named swarms, ``<SwarmID>ALL</SwarmID>`` (every swarm) or
  ``<SwarmID>nil</SwarmID>`` (the system, huang-01 section 4.2); a DISCONNECT without SwarmID
  is read as ``nil`` too (draft-huang-...-04 prints it so, and earlier releases wrote it).
* Repetition is bounded per message by the bounds of :mod:`ppsp.wire.fields`; a body over
  :data:`~ppsp.wire.fields.MAX_MESSAGE_BYTES` is refused with :class:`PayloadTooLarge` before
  parsing.
* Every failure is a :class:`~ppsp.errors.TrackerProtocolError` (nearly always
  :class:`BadRequest`) carrying the message's transaction ID when it could be read.

Encoding writes the XML declaration with UTF-8, the default namespace :data:`NAMESPACE`, the
elements in the order of the drafts' generic template, and validates the message with the same
rules, raising :class:`~ppsp.errors.LocalProtocolError` for a message that would not decode back
to itself.

The package's modules, one part each: :mod:`.values` (names, constants and the field checks
readers and writers share), :mod:`.tree` (parsing and typed reads of elements), :mod:`.scan`
(requests of the codec's own shapes, read from the bytes), :mod:`.plain` (the one-pass reader of
plain FIND and STAT_REPORT requests), :mod:`.read` (the full decoder), :mod:`.requests` (requests
as the tracker reads them), :mod:`.write` (the element-tree writer) and :mod:`.templates`
(answers from string templates).  Only the names below are the codec's interface.  The
tracker's half of it (:func:`decode_request`, :func:`encode_response`) is loaded at its first
use: a peer, which encodes requests and decodes answers, never loads it (about 10 ms of a
``ppsp get``).

Layer: sans-I/O, as :mod:`ppsp.codecs`: may import ``ppsp.wire``, ``ppsp.errors``, the other
codecs and lxml/orjson; no I/O, no clock (tests/test_layers.py enforces this).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ppsp.codecs.tracker_xml.read import decode_response
from ppsp.codecs.tracker_xml.values import ERROR_TEXT, METHODS_BY_VERSION, NAMESPACE, SUCCESS_TEXT
from ppsp.codecs.tracker_xml.write import encode_request

if TYPE_CHECKING:
    from ppsp.codecs.tracker_xml.requests import decode_request
    from ppsp.codecs.tracker_xml.templates import encode_response

_TRACKER_HALF = {
    "decode_request": "ppsp.codecs.tracker_xml.requests",
    "encode_response": "ppsp.codecs.tracker_xml.templates",
}
"""Where the tracker's half of the interface lives, loaded at its first use (PEP 562)."""


def __getattr__(name: str) -> Any:
    """:func:`decode_request` and :func:`encode_response`, imported the first time they are
    asked for and kept in the package from then on."""
    module = _TRACKER_HALF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ERROR_TEXT",
    "METHODS_BY_VERSION",
    "NAMESPACE",
    "SUCCESS_TEXT",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]
