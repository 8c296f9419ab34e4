"""JSON encoding of the tracker protocol: RFC 7846 (``"version": 1``) and its 1.1 extension (``2``).

Bytes in, typed messages out (:mod:`ppsp.wire.tracker`) and back; no I/O.  Decoding validates
everything: a message that comes out of :func:`decode_request` or :func:`decode_response` is
well formed, and anything else raises a :class:`~ppsp.errors.TrackerProtocolError` subclass
(:class:`~ppsp.errors.BadRequest`, :class:`~ppsp.errors.UnsupportedVersion` or
:class:`~ppsp.errors.PayloadTooLarge`) carrying the message's ``transaction_id`` when it could
be read.  Encoding raises :class:`~ppsp.errors.LocalProtocolError` for a message the chosen
version cannot express.

Reading (RFC 7846 as printed and as specified)
----------------------------------------------
The draft's examples and its schema disagree in places; the decoder accepts both forms and the
encoder writes the schema's form:

* every member the schema types as an array (``swarm_action``, ``peer_addr``, ``swarm_result``,
  ``peer_info``, ``stat``, ...) may also be a single object;
* every integer may also be written as a string of ASCII decimal digits (``"concurrent_links":
  "5"``), and identifiers typed as strings (``swarm_id``, ``peer_id``, ``transaction_id``,
  ``asn``, ...) may be written as integers;
* ``"Stat"`` is read as ``"stat"``;
* the request data may sit directly in ``PPSPTrackerProtocol`` instead of its ``connect`` /
  ``find`` / ``join`` / ``disconnect`` wrapper (FIND is printed that way);
* members this module does not know are ignored (RFC 7846 section 4.4), except that an unknown
  member of a ``STREAM_STATS`` stat holding an integer or a string is kept in
  :attr:`StreamStatistics.extra <ppsp.wire.tracker.StreamStatistics.extra>`: that is the
  Stat extension of RFC 7846 section 7.1 (``"online_time": 3600``).

Enumerated values match exactly as the RFC spells them; ``peer_mode`` ``"SEEDER"`` is
:attr:`PeerMode.SEED <ppsp.wire.tracker.PeerMode.SEED>` and ``"SEED"`` is accepted too.  IP
addresses are checked against ``address_type`` (inferred from the address when absent) and kept
in their canonical text form (RFC 5952 for IPv6).  ``peer_count`` and ``priority``, which the
schema requires, are optional here.  A LEAVE ``swarm_action`` may omit ``peer_mode``.

Values follow the field rules every codec shares (:mod:`ppsp.wire.fields`), so that whatever
this module reads the XML codecs can write: identifiers and the other string values
(``connection``, ``asn``, ``peer_protocol``, ``peer_num`` selectors) are *tokens* of 1 to 256
characters without whitespace or control characters; a swarm ID is never ``"ALL"`` or
``"nil"``; a swarm is named once per request.  A ``swarm_action`` member a request type does not
use is dropped as the XML drops it (``action`` of a JOIN, ``action`` and ``peer_mode`` of a
DISCONNECT).  Extension members of a stat are kept only with a name of
:data:`~ppsp.wire.fields.EXTRA_STATISTIC_NAME_RE` and an integer or token value.

Peer lists (RFC 7846 section 3.2.4): a ``peer_info`` is ``{peer_id, peer_addr}`` with one
address; a peer with several addresses is listed as one ``peer_info`` per address.  The reader
merges the entries of one peer ID under one swarm into one peer
(:func:`~ppsp.wire.common.merge_listed_peers`) and also reads a ``peer_addr`` array in an
entry (earlier releases wrote it).  A ``peer_info`` needs ``peer_id`` and ``peer_addr``.

Bounds (:mod:`ppsp.wire.fields`): a body over :data:`~ppsp.wire.fields.MAX_MESSAGE_BYTES` is
:class:`~ppsp.errors.PayloadTooLarge`; nesting deeper than
:data:`~ppsp.wire.fields.MAX_JSON_DEPTH`, arrays longer than the counts of the field rules,
integers outside ``0 .. 2**63 - 1`` (ports ``1 .. 65535``), strings longer than
:data:`~ppsp.wire.fields.MAX_TEXT_LENGTH`, control characters in strings, floats, booleans where
numbers belong, NaN and infinities are all :class:`~ppsp.errors.BadRequest`.

Writing
-------
Requests and responses are written compactly in the schema's form: arrays for ``swarm_action``,
request ``peer_addr``, ``swarm_result`` and ``peer_info``; integers as JSON numbers; ``stat``;
FIND inside its ``find`` wrapper.  A ``peer_addr`` that stands for one peer is a single object as
the schema says: a listed peer with several addresses gets one ``peer_info`` per address, in
order; the requester's top-level ``peer_addr`` (``[ppsp_tp_peer_addr_t peer_addr;]``, RFC 7846
section 3.3.4) is its REFLEXIVE address (else its first), and an array found there (earlier
releases wrote one) is read as that one address.  A success response
always carries ``"error_code": 0``; an error response is ``{"version", "response_type": 1,
"error_code", "transaction_id"}`` and nothing else (RFC 7846 section 4.3), with
``transaction_id`` left out when it is not known.  A ``swarm_result`` whose
:class:`~ppsp.wire.tracker.ActionResult` has no ``swarm_id`` is written without one.  Peers
of a :class:`~ppsp.wire.tracker.TrackerResponse` are listed under the ``swarm_result`` of
their ``swarm_id``; a peer whose swarm has no result gets a ``swarm_result`` of its own with
``"result": 0``.  The encoder decodes what it wrote before returning it, so it never emits
anything the decoder would refuse.

Extension (version 2)
---------------------
``"version": 2`` is PPSP-TP/1.1 (draft-huang-ppsp-extended-tracker-protocol-01) carried in JSON
in the style of RFC 7846 section 7.1: everything of version 1 keeps its meaning, and:

* ``request_type`` also takes ``"JOIN"`` and ``"DISCONNECT"``.
* Every ``swarm_action`` may carry ``"transaction_id"``: the per-action transaction ID the XML
  writes as ``@transactionID`` (``"12345.1"``); a ``swarm_result`` echoes it as
  ``"transaction_id"``.  (Version 1 messages may carry it too, as an extension member that
  RFC 7846 peers ignore.)
* CONNECT without ``swarm_action`` (or with an empty one, or without ``connect``) is a
  registration only.  ``connect`` may carry ``content_group`` (the joining point).
* JOIN::

      "join": {"swarm_action": [{"swarm_id": "1111", "peer_mode": "LEECH",
                                 "transaction_id": "12345.1"}],
               "peer_num": {...}, "content_group": [...]}

  ``swarm_action`` holds 1 .. 1000 entries, each with ``swarm_id`` and ``peer_mode``;
  ``action`` may be given and must then be ``"JOIN"``.
* DISCONNECT::

      "disconnect": {"swarm_action": [{"swarm_id": "1111", "transaction_id": "12345.1"}]}
      "disconnect": {"swarm_id": "ALL"}     # every swarm
      "disconnect": {"swarm_id": "nil"}     # the whole system (huang-01 section 4.2)

  Also read: ``"disconnect": "ALL"`` and ``"nil"``, ``"disconnect": {"swarm_id": "1111"}`` and
  ``{"swarm_id": ["1111", "2222"]}``, a ``swarm_action`` whose only entry is ``"ALL"`` or
  ``"nil"``, and, for the system, the forms earlier releases wrote: ``"disconnect": {}``, an
  empty ``swarm_action`` or no ``disconnect`` member.  A ``swarm_action`` may give ``"action":
  "LEAVE"``; ``"ALL"`` or ``"nil"`` mixed with other swarm IDs is a bad request.
* A content group, in CONNECT, JOIN and FIND::

      "content_group": [{"representation_id": "tag4", "start_index": 110, "end_index": 150}]

  ``end_index`` is optional (open-ended) and, when given, not below ``start_index``.  A FIND
  with a content group asks for peers holding chunks of that scope.
* STAT_REPORT: ``stat_report`` is a list of stat groups (a single group object is read too),
  each ``{"type": ..., "stat": [...]}``.  Type ``"STREAM_STATS"`` is RFC 7846's; type
  ``"CONTENT_MAP"`` has stats of the form::

      {"swarm_id": "1111",
       "representation": [{"id": "tag0",
                           "segment_info": [{"start_index": 0, "end_index": 24,
                                             "chunkmap_size": 25, "chunkmap": "<Base64>"}]}]}

  ``chunkmap`` is the Base64 bit string of PROFILE.md (bit *i*, most significant bit first, is
  chunk ``start_index + i``), ``chunkmap_size`` counts its bits and equals ``end_index -
  start_index + 1`` (it may be left out and is then computed), at most
  :data:`~ppsp.wire.fields.MAX_CHUNKMAP_BITS`.  A content map has at least one representation
  and each representation at least one segment.  Stat groups of other types are ignored (an
  extension this module does not know), and so is ``CONTENT_MAP`` in a version 1 message.  A
  STAT_REPORT without ``stat_report``, or with an empty one, is a keep-alive; the encoder leaves
  the member out.

Any other ``version`` is :class:`~ppsp.errors.UnsupportedVersion` (``error_code`` 2), and so is
``2`` for a decoder limited to ``max_version=ProtocolVersion.V1_0``: the answer of a tracker
that knows only RFC 7846, on which a 1.1 peer falls back to version 1.

The package's modules, one part each: :mod:`.read` (parsing and the generic readers of JSON
values), :mod:`.decode` (requests and answers) and :mod:`.encode` (the writer).  Only the names
below are the codec's interface.

Layer: sans-I/O, as :mod:`ppsp.codecs`: may import ``ppsp.wire``, ``ppsp.errors``, the other
codecs and lxml/orjson; no I/O, no clock (tests/test_layers.py enforces this).
"""

from __future__ import annotations

from ppsp.codecs.tracker_json.decode import decode_request, decode_response
from ppsp.codecs.tracker_json.encode import encode_request, encode_response

__all__ = [
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]
