"""The seeder's side of an opening handshake (RFC 7574 sections 3.1.1, 7 and 13.1), sans-I/O:
which handshakes it answers, and the HANDSHAKE it answers with; and the bounds every serving
engine (the seeder, :mod:`.seeder`, and the live server, :mod:`.live_server`) keeps before a
channel is established (:data:`MAX_OPENING_MESSAGES`, :data:`ANSWER_FACTOR`,
:data:`ANSWER_INTERVAL`, with :func:`answer_room` and :func:`answers_again`) and after
(:data:`MAX_MESSAGES_PER_DATAGRAM`, which the downloading engines keep too).

A HANDSHAKE on channel 0 is answered only when every check of :func:`refusal` passes; any
failure drops it unanswered (3.1.1 step 2: it may be spoofed).  The answer (:func:`reply`)
is strict RFC 7574 (options 8 and 9) for a peer that announced its Chunk Size, and libswift's
own options otherwise (libswift drops a handshake carrying option 9 and misreads option 8).
What goes with it, and how much, is the seeder's (:meth:`.seeder.Seeder._answer`, with
:func:`.packing.answer_haves`): one datagram, a few times the opening datagram's size at most.
"""

from __future__ import annotations

from typing import Final

from ppsp.peer.ppspp.channel import Channel
from ppsp.peer.ppspp.content import ServedContent
from ppsp.wire.ppspp import (
    PPSPP_VERSION,
    ChannelParameters,
    ChunkAddressing,
    ContentIntegrity,
    Handshake,
    MerkleHashFunction,
    MessageType,
    SupportedMessages,
)

__all__ = [
    "ANSWER_FACTOR",
    "ANSWER_INTERVAL",
    "MAX_MESSAGES_PER_DATAGRAM",
    "MAX_OPENING_MESSAGES",
    "OPENING",
    "SUPPORTED_ADDRESSING",
    "SUPPORTED_MESSAGES",
    "answer_room",
    "answers_again",
    "refusal",
    "reply",
]

MAX_OPENING_MESSAGES: Final = 64
"""Messages an opening datagram may carry besides its HANDSHAKE (HAVE, REQUEST: minor payload,
section 3.1.1; libswift sends at most about ten); more and it is dropped unanswered, as it may
be spoofed and each message costs work."""

ANSWER_FACTOR: Final = 3
"""The answer to an opening datagram stays within this many times its bytes (section 13.1.1:
the address has not shown that it receives); what does not fit goes once the channel is
established."""

ANSWER_INTERVAL: Final = 0.5
"""The same opening handshake again (our answer lost, or a spoofed copy) is answered at most
once in this many seconds; the others are dropped and counted."""

MAX_MESSAGES_PER_DATAGRAM: Final = 1024
"""A datagram on an established channel carrying more messages is taken for an attack on our
time (each message costs work): dropped, and its channel closed.  The codec reads no further
than this (``decode_datagram(..., max_messages=...)``; an opening datagram no further than its
HANDSHAKE and :data:`MAX_OPENING_MESSAGES`), and the downloading engines (the client, the
leecher, the live receiver) read a peer's datagrams under the same bound, dropping those over
it (counted ``too_many_messages``)."""


def answer_room(received: int, alone: int, factor: int) -> int:
    """The bytes left, in the answer to an opening datagram of ``received`` bytes, for what
    goes with a HANDSHAKE that alone encodes to ``alone`` bytes (HAVEs): the answer stays
    within ``factor`` times ``received``."""
    return max(0, factor * received - alone)


def answers_again(answered_at: float, now: float, interval: float) -> bool:
    """Whether the same opening handshake, answered at ``answered_at``, is answered again at
    ``now`` (at most once per ``interval``)."""
    return now >= answered_at + interval


SUPPORTED_ADDRESSING = frozenset(
    {
        ChunkAddressing.BIN_32,
        ChunkAddressing.CHUNK_RANGE_32,
        ChunkAddressing.BIN_64,
        ChunkAddressing.CHUNK_RANGE_64,
    }
)
"""The chunk addressing methods a seeder speaks (byte ranges, CAM 1, are not)."""

SUPPORTED_MESSAGES = SupportedMessages.from_types(
    (
        MessageType.HANDSHAKE,
        MessageType.DATA,
        MessageType.ACK,
        MessageType.HAVE,
        MessageType.INTEGRITY,
        MessageType.PEX_REQ,
        MessageType.PEX_RESV4,
        MessageType.PEX_RESV6,
        MessageType.REQUEST,
        MessageType.CANCEL,
        MessageType.CHOKE,
        MessageType.UNCHOKE,
    )
)
"""What we announce to RFC 7574 peers in the Supported Messages option."""

OPENING = ChannelParameters(
    chunk_addressing=ChunkAddressing.CHUNK_RANGE_32, merkle_hash=MerkleHashFunction.SHA1
)
"""How an opening datagram (channel 0) is read: its HANDSHAKE's options take over at once."""


def refusal(handshake: Handshake, content: ServedContent | None) -> str | None:
    """Why an opening ``handshake`` naming ``content`` (None: a swarm we do not serve) is
    refused, or None when we can speak with its sender."""
    if handshake.source_channel == 0:
        return "closing"
    if content is None or handshake.swarm_id is None:
        return "swarm"
    if handshake.version is None:
        return "version"
    lowest = handshake.min_version if handshake.min_version is not None else handshake.version
    if not lowest <= PPSPP_VERSION <= handshake.version:
        return "version"
    if handshake.content_integrity is not ContentIntegrity.MERKLE:
        return "integrity"  # absent (a MUST, 7.5), or a live method
    if handshake.merkle_hash is not content.merkle_hash:
        return "hash"  # absent (a MUST with Merkle, 7.6) or another function
    if handshake.chunk_addressing not in SUPPORTED_ADDRESSING:
        return "addressing"
    if handshake.live_signature is not None or handshake.live_discard_window is not None:
        return "live"
    if handshake.chunk_size is not None and handshake.chunk_size != content.chunk_size:
        return "chunk_size"
    return None


def reply(channel: Channel) -> Handshake:
    """Our HANDSHAKE answering the peer of a new ``channel`` (to its channel ID, under ours)."""
    content = channel.content
    return Handshake(
        source_channel=channel.local_id,
        version=PPSPP_VERSION,
        min_version=PPSPP_VERSION,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=content.merkle_hash,
        chunk_addressing=channel.parameters.chunk_addressing,
        supported_messages=SUPPORTED_MESSAGES,
        chunk_size=content.chunk_size,
    )
