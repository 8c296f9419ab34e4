"""XML codec of the PPSP peer protocol (PPSP-PP/0.1): bytes to messages and back.

Wire form (draft-gu-ppsp-peer-protocol-02, seed slides, PROFILE.md)::

    <PPSPPeerProtocol version="0.1">
      <Method>FIND</Method>                 (or <Response>FIND</Response>)
      <TransactionID>6172839405</TransactionID>
      <PeerID>...</PeerID> <SwarmID>...</SwarmID>
      ...method-specific elements...
    </PPSPPeerProtocol>

All validation lives here.  Decoding never lets anything but a
:class:`~ppsp.errors.PeerProtocolError` escape: hostile or malformed input is
``INVALID SYNTAX`` (400), an unknown ``version`` is ``VERSION NOT SUPPORTED`` and an unknown
method ``MESSAGE NOT SUPPORTED``.  Every count, length and number is bounded before it is used.
Encoding checks its own output by decoding it: a message that would not come back equal
(non-canonical text, out-of-range numbers, an inconsistent bitmap) raises
:class:`~ppsp.errors.LocalProtocolError`, so that what is sent is always what the peer reads.

Values and bounds follow the field rules every codec shares (:mod:`ppsp.wire.fields`), so that
peer lists and chunk maps pass between this protocol and the tracker's encodings unchanged:
identifiers and attribute values are tokens of 1 to 256 characters, a SwarmID is never ``ALL``
or ``nil``, integers are 1 to 19 digits up to ``2**63 - 1`` (ports 1-65535), IP addresses are
read into canonical form, a chunk map segment holds at most 2**20 bits, and the counts of
peers, addresses, representations and segments are those of the tracker's codecs.  A listed
peer (``PeerInfo``) has a PeerID and at least one PeerAddress; entries naming one peer for one
swarm are read as one peer (:func:`~ppsp.wire.common.merge_listed_peers`).

Names are matched by local name, whatever the namespace; method and response names and
transport types are case-insensitive.  Accepted alternative spellings: ``PeerNum`` for the
slides' ``Peernum``; ``PeerGroup`` for ``Peers``; ``StatsRequest`` and ``Stats`` for
``StatRequest`` (the slides close ``<StatRequest>`` with ``</StatsRequest>``, which is not
well-formed XML: a document must use one name for both tags).

The package's modules, one part each: :mod:`.read` (the common header and the parts several
messages share), :mod:`.decode` (requests and answers) and :mod:`.encode` (the writer).  Only
the names below are the codec's interface.

Layer: sans-I/O, as :mod:`ppsp.codecs`: may import ``ppsp.wire``, ``ppsp.errors``, the other
codecs and lxml/orjson; no I/O, no clock (tests/test_layers.py enforces this).
"""

from __future__ import annotations

from ppsp.codecs.peer_xml.decode import decode_request, decode_response
from ppsp.codecs.peer_xml.encode import encode_request, encode_response, response_status

__all__ = [
    "CONTENT_TYPE",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "response_status",
]

CONTENT_TYPE = "application/ppsp-peer+xml"
"""Media type of every peer protocol body (PROFILE.md)."""
