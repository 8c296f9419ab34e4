"""The seeder's side of an opening handshake (RFC 7574 sections 3.1.1, 7 and 13.1), sans-I/O:
which handshakes it answers, and the HANDSHAKE it answers with.

A HANDSHAKE on channel 0 is answered only when every check of :func:`refusal` passes; any
failure drops it unanswered (3.1.1 step 2: it may be spoofed).  The answer (:func:`reply`)
is strict RFC 7574 (options 8 and 9) for a peer that announced its Chunk Size, and libswift's
own options otherwise (libswift drops a handshake carrying option 9 and misreads option 8).
What goes with it, and how much, is the seeder's (:meth:`.seeder.Seeder._answer`, with
:func:`.packing.answer_haves`): one datagram, a few times the opening datagram's size at most.
"""

from __future__ import annotations

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

__all__ = ["OPENING", "SUPPORTED_ADDRESSING", "SUPPORTED_MESSAGES", "refusal", "reply"]

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
