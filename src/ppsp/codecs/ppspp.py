"""RFC 7574 (PPSPP) datagrams over UDP: bytes <-> :class:`~ppsp.wire.ppspp.Datagram`.

:func:`decode_datagram` reads a datagram with the channel's :class:`ChannelParameters` (chunk
addressing, Merkle hash function, chunk size, signature length); the messages that follow a
HANDSHAKE in the same datagram are read with the parameters that handshake announces.
Anything malformed raises :class:`~ppsp.errors.MalformedDatagram` with a one-line message and
a short ``code`` (``truncated``, ``oversized``, ``malformed``, ``unsupported``), nothing else;
what it allocates is bounded by the datagram's size (every length is checked against the bytes
left before anything is copied).  The reader passes its bound on the messages of a datagram
(``max_messages``: the engines', :mod:`ppsp.peer.ppspp.opening`); the first message beyond it
is not read, and :class:`~ppsp.errors.TooManyMessages` (a ``MalformedDatagram``) is raised with
the messages read until then, so a datagram of thousands of small messages costs no more than
the bound's worth of reading.

:func:`encode_datagram` writes one, refusing (:class:`~ppsp.errors.LocalProtocolError`) a
message that would not decode back to itself.  Its ``profile`` says whom it writes for:

* :attr:`EncoderProfile.RFC7574` (the default): strict, the HANDSHAKE carries every option
  RFC 7574 says it MUST (sections 7 and 8.4);
* :attr:`EncoderProfile.LIBSWIFT`: libswift's handshake parser drops a handshake with option 9
  (Chunk Size) and misreads option 8 (Supported Messages), so both are left out;
* :attr:`EncoderProfile.PLAIN`: exactly what the message holds, syntax checked only (what
  :func:`decode_datagram` accepts), for tests and tools.

The common shapes of a transfer (INTEGRITY, DATA, ACK, HAVE, REQUEST on 32-bit chunk ranges)
are read and written first by :mod:`ppsp.codecs.ppspp_common`, which declines anything else
or anything malformed: the general code here decides every refusal.

docs/PROTOCOL.md, section "PPSPP (RFC 7574)", records the decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from ppsp.codecs.ppspp_common import CHUNK_RANGE_32, decode_common, encode_common, too_many
from ppsp.errors import LocalProtocolError, MalformedDatagram
from ppsp.wire.ppspp import (
    CHANNEL_ID_BYTES,
    MAX_DATAGRAM_BYTES,
    MAX_DATAGRAM_MESSAGES,
    MAX_SUPPORTED_MESSAGES_BYTES,
    MAX_SWARM_ID_BYTES,
    TIMESTAMP_BYTES,
    VARIABLE_CHUNK_SIZE,
    Ack,
    Bin,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ChunkRange,
    ChunkSpec,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    MerkleHashFunction,
    Message,
    MessageType,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    ProtocolOption,
    Request,
    SignedIntegrity,
    SupportedMessages,
    Unchoke,
)

__all__ = [
    "ChannelParameters",
    "EncoderProfile",
    "decode_datagram",
    "encode_datagram",
    "peek_channel",
]


class EncoderProfile(Enum):
    """Whom :func:`encode_datagram` writes for (see the module's docstring)."""

    RFC7574 = "rfc7574"
    LIBSWIFT = "libswift"
    PLAIN = "plain"


# --- Decoding -----------------------------------------------------------------------------


class _Reader:
    """A cursor over the datagram; every read checks the bytes left first."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, size: int, what: str) -> bytes:
        start = self.pos
        end = start + size
        if end > len(self.data):
            raise MalformedDatagram(f"datagram cut inside {what}", code="truncated")
        self.pos = end
        return self.data[start:end]

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")


def peek_channel(data: bytes) -> int:
    """The destination channel ID of a datagram, read before its channel's parameters are
    known (the I/O layer looks the channel up with it)."""
    if len(data) < CHANNEL_ID_BYTES:
        raise MalformedDatagram("datagram shorter than a channel ID", code="truncated")
    return int.from_bytes(data[:CHANNEL_ID_BYTES], "big")


def decode_datagram(
    data: bytes, parameters: ChannelParameters, *, max_messages: int = MAX_DATAGRAM_MESSAGES
) -> Datagram:
    """Read a UDP datagram of the channel whose negotiated ``parameters`` are given.

    A datagram of more than ``max_messages`` messages (never more than
    :data:`~ppsp.wire.ppspp.MAX_DATAGRAM_MESSAGES`) raises
    :class:`~ppsp.errors.TooManyMessages` as message ``max_messages + 1`` begins, before it is
    read; the error carries the messages read until then.
    """
    limit = max_messages if max_messages < MAX_DATAGRAM_MESSAGES else MAX_DATAGRAM_MESSAGES
    if type(data) is bytes and parameters.chunk_addressing is CHUNK_RANGE_32:
        common = decode_common(data, parameters, limit)
        if common is not None:
            return common
    return _decode_general(data, parameters, limit)


def _decode_general(
    data: bytes, parameters: ChannelParameters, limit: int = MAX_DATAGRAM_MESSAGES
) -> Datagram:
    """:func:`decode_datagram` for any datagram (and every refusal)."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise MalformedDatagram(
            f"datagram of {len(data)} bytes over {MAX_DATAGRAM_BYTES}", code="oversized"
        )
    reader = _Reader(bytes(data))
    channel = peek_channel(reader.data)
    reader.pos = CHANNEL_ID_BYTES
    if channel == 0 and reader.remaining and reader.data[reader.pos] != MessageType.HANDSHAKE:
        raise MalformedDatagram(_NO_HANDSHAKE)  # before reading the rest
    messages: list[Message] = []
    while reader.remaining:
        if len(messages) == limit:
            raise too_many(limit, messages)
        kind = reader.data[reader.pos]
        reader.pos += 1
        read = _READERS.get(kind)
        if read is None:
            raise MalformedDatagram(f"unknown message type {kind}", code="unsupported")
        message = read(reader, parameters)
        if isinstance(message, Handshake):
            parameters = parameters.with_handshake(message)
        messages.append(message)
    if channel == 0 and not (messages and isinstance(messages[0], Handshake)):
        raise MalformedDatagram(_NO_HANDSHAKE)
    return Datagram(channel=channel, messages=tuple(messages))


_NO_HANDSHAKE = "a datagram to channel 0 must open with a HANDSHAKE"


_LAYOUTS: dict[ChunkAddressing, tuple[bool, int]] = {
    addressing: (addressing.is_bin, addressing.field_bytes) for addressing in ChunkAddressing
}
"""Per chunk addressing method: whether it uses bins, and the width of one value (looked up
once per message instead of two enum properties)."""


def _read_spec(reader: _Reader, parameters: ChannelParameters, what: str) -> ChunkSpec:
    # The hot path of every message: read straight from the datagram, with one bounds check
    # per specification; the error text is only built when there is an error.
    is_bin, width = _LAYOUTS[parameters.chunk_addressing]
    data, pos = reader.data, reader.pos
    if is_bin:
        end = pos + width
        if end > len(data):
            raise MalformedDatagram(f"datagram cut inside the bin of a {what}", code="truncated")
        reader.pos = end
        return Bin(number=int.from_bytes(data[pos:end], "big"))
    middle = pos + width
    end = middle + width
    if end > len(data):
        raise MalformedDatagram(
            f"datagram cut inside the chunk range of a {what}", code="truncated"
        )
    reader.pos = end
    start, stop = int.from_bytes(data[pos:middle], "big"), int.from_bytes(data[middle:end], "big")
    if start > stop:
        raise MalformedDatagram(f"{what} range {start}-{stop} ends before it starts")
    return ChunkRange(start=start, end=stop)


IntEnumLike = ContentIntegrity | MerkleHashFunction | ChunkAddressing
_E = TypeVar("_E", ContentIntegrity, MerkleHashFunction, ChunkAddressing)


def _enum_option(kind: type[_E], value: int, name: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise MalformedDatagram(f"unsupported {name} {value}", code="unsupported") from None


def _read_handshake(reader: _Reader, parameters: ChannelParameters) -> Handshake:
    source = reader.uint(4, "a HANDSHAKE's channel ID")
    options: dict[str, object] = {}
    last = -1
    while True:
        code = reader.uint(1, "a HANDSHAKE's options (no End option)")
        if code == ProtocolOption.END:
            break
        if code <= last:
            raise MalformedDatagram(
                f"protocol option {code} after option {last}: options go once each, ascending"
            )
        last = code
        if code == ProtocolOption.VERSION or code == ProtocolOption.MIN_VERSION:
            version = reader.uint(1, "a version option")
            if version == 0:
                raise MalformedDatagram("protocol version 0 is reserved")
            options["version" if code == ProtocolOption.VERSION else "min_version"] = version
        elif code == ProtocolOption.SWARM_ID:
            length = reader.uint(2, "the swarm ID option")
            if length == 0:
                raise MalformedDatagram("empty swarm ID")
            options["swarm_id"] = reader.take(length, "the swarm ID option")
        elif code == ProtocolOption.CONTENT_INTEGRITY:
            value = reader.uint(1, "the content integrity option")
            options["content_integrity"] = _enum_option(
                ContentIntegrity, value, "content integrity protection method"
            )
        elif code == ProtocolOption.MERKLE_HASH:
            value = reader.uint(1, "the Merkle hash function option")
            options["merkle_hash"] = _enum_option(MerkleHashFunction, value, "Merkle hash function")
        elif code == ProtocolOption.LIVE_SIGNATURE:
            options["live_signature"] = reader.uint(1, "the live signature algorithm option")
        elif code == ProtocolOption.CHUNK_ADDRESSING:
            value = reader.uint(1, "the chunk addressing option")
            options["chunk_addressing"] = _enum_option(
                ChunkAddressing, value, "chunk addressing method"
            )
        elif code == ProtocolOption.LIVE_DISCARD_WINDOW:
            addressing = options.get("chunk_addressing")
            if not isinstance(addressing, ChunkAddressing):
                raise MalformedDatagram(
                    "live discard window without a chunk addressing method before it"
                )
            options["live_discard_window"] = reader.uint(
                addressing.field_bytes, "the live discard window option"
            )
        elif code == ProtocolOption.SUPPORTED_MESSAGES:
            length = reader.uint(1, "the supported messages option")
            if length > MAX_SUPPORTED_MESSAGES_BYTES:
                raise MalformedDatagram(
                    f"supported messages bitmap of {length} bytes"
                    f" over {MAX_SUPPORTED_MESSAGES_BYTES}"
                )
            bitmap = reader.take(length, "the supported messages option")
            options["supported_messages"] = SupportedMessages(bitmap=bitmap)
        elif code == ProtocolOption.CHUNK_SIZE:
            size = reader.uint(4, "the chunk size option")
            if size == 0:
                raise MalformedDatagram("chunk size 0")
            options["chunk_size"] = size
        else:
            raise MalformedDatagram(f"unknown protocol option {code}", code="unsupported")
    highest, lowest = options.get("version"), options.get("min_version")
    if isinstance(highest, int) and isinstance(lowest, int) and lowest > highest:
        raise MalformedDatagram(f"minimum version {lowest} above version {highest}")
    return Handshake(source_channel=source, **options)  # type: ignore[arg-type]


def _read_data(reader: _Reader, parameters: ChannelParameters) -> Data:
    chunk = _read_spec(reader, parameters, "DATA")
    timestamp = reader.uint(TIMESTAMP_BYTES, "a DATA's timestamp")
    if isinstance(chunk, Bin):
        if not chunk.is_leaf:
            raise MalformedDatagram(f"DATA of bin {chunk.number}: a DATA carries one chunk")
        length = _chunk_length(reader.remaining, parameters)
    elif parameters.chunk_addressing == ChunkAddressing.BYTE_RANGE_64:
        length = chunk.count
    else:
        if chunk.start != chunk.end:
            raise MalformedDatagram(
                f"DATA of chunks {chunk.start}-{chunk.end}: a DATA carries one chunk"
            )
        length = _chunk_length(reader.remaining, parameters)
    if length == 0:
        raise MalformedDatagram("DATA without data", code="truncated")
    return Data(chunk=chunk, timestamp=timestamp, data=reader.take(length, "a DATA's data"))


def _chunk_length(remaining: int, parameters: ChannelParameters) -> int:
    """A chunk's length in a DATA: the chunk size, or less when the datagram ends sooner
    (the last chunk of the content), or the rest of the datagram for variable sizes."""
    if parameters.chunk_size == VARIABLE_CHUNK_SIZE:
        return remaining
    return min(remaining, parameters.chunk_size)


def _read_ack(reader: _Reader, parameters: ChannelParameters) -> Ack:
    chunk = _read_spec(reader, parameters, "ACK")
    return Ack(chunk=chunk, delay=reader.uint(TIMESTAMP_BYTES, "an ACK's delay sample"))


def _read_have(reader: _Reader, parameters: ChannelParameters) -> Have:
    return Have(chunk=_read_spec(reader, parameters, "HAVE"))


def _read_integrity(reader: _Reader, parameters: ChannelParameters) -> Integrity:
    chunk = _read_spec(reader, parameters, "INTEGRITY")
    size = parameters.merkle_hash.digest_size
    return Integrity(chunk=chunk, hash=reader.take(size, "an INTEGRITY hash"))


def _read_pex_v4(reader: _Reader, parameters: ChannelParameters) -> PexResV4:
    address = IPv4Address(reader.take(4, "a PEX_RESv4 address"))
    return PexResV4(address=address, port=reader.uint(2, "a PEX_RESv4 port"))


# Payload-less messages are equal to one another: one object each serves every datagram.
_PEXREQ, _CHOKE, _UNCHOKE = PexReq(), Choke(), Unchoke()


def _read_pex_req(reader: _Reader, parameters: ChannelParameters) -> PexReq:
    return _PEXREQ


def _read_signed_integrity(reader: _Reader, parameters: ChannelParameters) -> SignedIntegrity:
    chunk = _read_spec(reader, parameters, "SIGNED_INTEGRITY")
    timestamp = reader.uint(TIMESTAMP_BYTES, "a SIGNED_INTEGRITY's timestamp")
    if parameters.signature_length is None:
        raise MalformedDatagram(
            "SIGNED_INTEGRITY on a channel without live signatures", code="unsupported"
        )
    signature = reader.take(parameters.signature_length, "a SIGNED_INTEGRITY's signature")
    return SignedIntegrity(chunk=chunk, timestamp=timestamp, signature=signature)


def _read_request(reader: _Reader, parameters: ChannelParameters) -> Request:
    return Request(chunk=_read_spec(reader, parameters, "REQUEST"))


def _read_cancel(reader: _Reader, parameters: ChannelParameters) -> Cancel:
    return Cancel(chunk=_read_spec(reader, parameters, "CANCEL"))


def _read_choke(reader: _Reader, parameters: ChannelParameters) -> Choke:
    return _CHOKE


def _read_unchoke(reader: _Reader, parameters: ChannelParameters) -> Unchoke:
    return _UNCHOKE


def _read_pex_v6(reader: _Reader, parameters: ChannelParameters) -> PexResV6:
    address = IPv6Address(reader.take(16, "a PEX_RESv6 address"))
    return PexResV6(address=address, port=reader.uint(2, "a PEX_RESv6 port"))


def _read_pex_cert(reader: _Reader, parameters: ChannelParameters) -> PexResCert:
    size = reader.uint(2, "a PEX_REScert's size")
    return PexResCert(certificate=reader.take(size, "a PEX_REScert's certificate"))


_READERS: dict[int, Callable[[_Reader, ChannelParameters], Message]] = {
    MessageType.HANDSHAKE: _read_handshake,
    MessageType.DATA: _read_data,
    MessageType.ACK: _read_ack,
    MessageType.HAVE: _read_have,
    MessageType.INTEGRITY: _read_integrity,
    MessageType.PEX_RESV4: _read_pex_v4,
    MessageType.PEX_REQ: _read_pex_req,
    MessageType.SIGNED_INTEGRITY: _read_signed_integrity,
    MessageType.REQUEST: _read_request,
    MessageType.CANCEL: _read_cancel,
    MessageType.CHOKE: _read_choke,
    MessageType.UNCHOKE: _read_unchoke,
    MessageType.PEX_RESV6: _read_pex_v6,
    MessageType.PEX_RESCERT: _read_pex_cert,
}


# --- Encoding -----------------------------------------------------------------------------

_INTEGRITY_TYPE = bytes((MessageType.INTEGRITY,))


def _uint(value: object, size: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise LocalProtocolError(f"{what} {value!r} is not a {8 * size}-bit unsigned integer")
    return value.to_bytes(size, "big")


def _raw(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise LocalProtocolError(f"{what} is not bytes")
    return value


def encode_datagram(
    datagram: Datagram,
    parameters: ChannelParameters,
    *,
    profile: EncoderProfile = EncoderProfile.RFC7574,
) -> bytes:
    """Write a UDP datagram for a channel with the given ``parameters`` (see the module)."""
    if parameters.chunk_addressing is CHUNK_RANGE_32:
        common = encode_common(datagram, parameters)
        if common is not None:
            return common
    return _encode_general(datagram, parameters, profile)


def _encode_general(
    datagram: Datagram, parameters: ChannelParameters, profile: EncoderProfile
) -> bytes:
    """:func:`encode_datagram` for any datagram (and every refusal)."""
    out = bytearray(_uint(datagram.channel, CHANNEL_ID_BYTES, "channel ID"))
    messages = datagram.messages
    if len(messages) > MAX_DATAGRAM_MESSAGES:
        raise LocalProtocolError(f"datagram of more than {MAX_DATAGRAM_MESSAGES} messages")
    if datagram.channel == 0 and not (messages and isinstance(messages[0], Handshake)):
        raise LocalProtocolError("a datagram to channel 0 must open with a HANDSHAKE")
    for index, message in enumerate(messages):
        last = index == len(messages) - 1
        if isinstance(message, Handshake):
            message = _profiled(message, profile, initiating=datagram.channel == 0)
            out += _write_handshake(message)
            parameters = parameters.with_handshake(message)
        elif isinstance(message, Data):
            out += _write_data(message, parameters, last)
        else:
            writer = _WRITERS.get(type(message))
            if writer is None:
                raise LocalProtocolError(f"{type(message).__name__} is not a PPSPP message")
            out += writer(message, parameters)
    if len(out) > MAX_DATAGRAM_BYTES:
        raise LocalProtocolError(f"datagram of {len(out)} bytes over {MAX_DATAGRAM_BYTES}")
    return bytes(out)


def _profiled(handshake: Handshake, profile: EncoderProfile, *, initiating: bool) -> Handshake:
    """The handshake as ``profile`` sends it: libswift's without options 8 and 9; RFC
    7574's checked for the options it MUST carry."""
    if profile is EncoderProfile.LIBSWIFT:
        return replace(handshake, supported_messages=None, chunk_size=None)
    if profile is EncoderProfile.RFC7574:
        _check_rfc_handshake(handshake, initiating=initiating)
    return handshake


def _check_rfc_handshake(handshake: Handshake, *, initiating: bool) -> None:
    """RFC 7574's MUSTs on the options of a HANDSHAKE (sections 7.2-7.11 and 8.4)."""
    if handshake.source_channel == 0:
        if replace(handshake, version=None) != Handshake(source_channel=0):
            raise LocalProtocolError("a closing HANDSHAKE carries no option but the version")
        return
    required: dict[str, object] = {
        "version": handshake.version,
        "content integrity protection method": handshake.content_integrity,
        "chunk addressing method": handshake.chunk_addressing,
        "chunk size": handshake.chunk_size,
    }
    if initiating:
        required["minimum version"] = handshake.min_version
        required["swarm ID"] = handshake.swarm_id
    if handshake.content_integrity == ContentIntegrity.MERKLE:
        required["Merkle hash function"] = handshake.merkle_hash
    if handshake.content_integrity in (
        ContentIntegrity.SIGN_ALL,
        ContentIntegrity.UNIFIED_MERKLE,
    ):
        required["live signature algorithm"] = handshake.live_signature
        required["live discard window"] = handshake.live_discard_window
    missing = [name for name, value in required.items() if value is None]
    if missing:
        raise LocalProtocolError(f"HANDSHAKE without its {', '.join(missing)}")


def _write_handshake(handshake: Handshake) -> bytes:
    out = bytearray((MessageType.HANDSHAKE,))
    out += _uint(handshake.source_channel, 4, "source channel ID")
    version, minimum = handshake.version, handshake.min_version
    for code, number in ((ProtocolOption.VERSION, version), (ProtocolOption.MIN_VERSION, minimum)):
        if number is not None:
            if number == 0:
                raise LocalProtocolError("protocol version 0 is reserved")
            out += bytes((code,)) + _uint(number, 1, "protocol version")
    if version is not None and minimum is not None and minimum > version:
        raise LocalProtocolError(f"minimum version {minimum} above version {version}")
    if handshake.swarm_id is not None:
        swarm_id = _raw(handshake.swarm_id, "swarm ID")
        if not 1 <= len(swarm_id) <= MAX_SWARM_ID_BYTES:
            raise LocalProtocolError(f"swarm ID of {len(swarm_id)} bytes")
        out += bytes((ProtocolOption.SWARM_ID,)) + len(swarm_id).to_bytes(2, "big") + swarm_id
    enums: tuple[tuple[ProtocolOption, object, type[IntEnumLike]], ...] = (
        (ProtocolOption.CONTENT_INTEGRITY, handshake.content_integrity, ContentIntegrity),
        (ProtocolOption.MERKLE_HASH, handshake.merkle_hash, MerkleHashFunction),
    )
    for code, value, kind in enums:
        if value is not None:
            out += bytes((code, _enum_value(value, kind)))
    if handshake.live_signature is not None:
        out += bytes((ProtocolOption.LIVE_SIGNATURE,))
        out += _uint(handshake.live_signature, 1, "live signature algorithm")
    addressing = handshake.chunk_addressing
    if addressing is not None:
        out += bytes((ProtocolOption.CHUNK_ADDRESSING, _enum_value(addressing, ChunkAddressing)))
    if handshake.live_discard_window is not None:
        if addressing is None:
            raise LocalProtocolError("live discard window without a chunk addressing method")
        out += bytes((ProtocolOption.LIVE_DISCARD_WINDOW,))
        out += _uint(
            handshake.live_discard_window,
            ChunkAddressing(addressing).field_bytes,
            "live discard window",
        )
    if handshake.supported_messages is not None:
        bitmap = _raw(handshake.supported_messages.bitmap, "supported messages bitmap")
        if len(bitmap) > MAX_SUPPORTED_MESSAGES_BYTES:
            raise LocalProtocolError(f"supported messages bitmap of {len(bitmap)} bytes")
        out += bytes((ProtocolOption.SUPPORTED_MESSAGES, len(bitmap))) + bitmap
    if handshake.chunk_size is not None:
        if handshake.chunk_size == 0:
            raise LocalProtocolError("chunk size 0")
        out += bytes((ProtocolOption.CHUNK_SIZE,)) + _uint(handshake.chunk_size, 4, "chunk size")
    out.append(ProtocolOption.END)
    return bytes(out)


def _enum_value(value: object, kind: type[IntEnumLike]) -> int:
    if not isinstance(value, kind):
        raise LocalProtocolError(f"{value!r} is not a {kind.__name__}")
    return int(value)


def _write_spec(chunk: object, parameters: ChannelParameters, what: str) -> bytes:
    addressing = parameters.chunk_addressing
    is_bin, width = _LAYOUTS[addressing]
    if is_bin:
        if not isinstance(chunk, Bin):
            raise LocalProtocolError(f"{what} needs a bin with {addressing.name} addressing")
        return _uint(chunk.number, width, f"{what} bin")
    if not isinstance(chunk, ChunkRange):
        raise LocalProtocolError(f"{what} needs a range with {addressing.name} addressing")
    first, last = chunk.start, chunk.end
    if type(first) is int and type(last) is int and 0 <= first <= last < 1 << (8 * width):
        # The common case, checked at once; anything else gets its exact complaint below.
        return first.to_bytes(width, "big") + last.to_bytes(width, "big")
    start = _uint(first, width, f"{what} range start")
    end = _uint(last, width, f"{what} range end")
    if chunk.start > chunk.end:
        raise LocalProtocolError(f"{what} range {chunk.start}-{chunk.end} ends before it starts")
    return start + end


def _write_data(message: Data, parameters: ChannelParameters, last: bool) -> bytes:
    chunk, data = message.chunk, _raw(message.data, "DATA's data")
    spec = _write_spec(chunk, parameters, "DATA")
    if not data:
        raise LocalProtocolError("DATA without data")
    if parameters.chunk_addressing == ChunkAddressing.BYTE_RANGE_64:
        assert isinstance(chunk, ChunkRange)  # _write_spec checked it
        if len(data) != chunk.count:
            raise LocalProtocolError(f"DATA of {chunk.count} bytes carries {len(data)}")
    else:
        if isinstance(chunk, Bin) and not chunk.is_leaf:
            raise LocalProtocolError(f"DATA of bin {chunk.number}: a DATA carries one chunk")
        if isinstance(chunk, ChunkRange) and chunk.start != chunk.end:
            raise LocalProtocolError("a DATA carries one chunk")
        size = parameters.chunk_size
        if size != VARIABLE_CHUNK_SIZE and len(data) > size:
            raise LocalProtocolError(f"DATA of {len(data)} bytes over the chunk size {size}")
        if not last and (size == VARIABLE_CHUNK_SIZE or len(data) < size):
            # Its end is the datagram's end: nothing may follow it (section 8.6).
            raise LocalProtocolError("a DATA shorter than the chunk size must come last")
    timestamp = _uint(message.timestamp, TIMESTAMP_BYTES, "DATA timestamp")
    return bytes((MessageType.DATA,)) + spec + timestamp + data


def _write_ack(message: Ack, parameters: ChannelParameters) -> bytes:
    spec = _write_spec(message.chunk, parameters, "ACK")
    return bytes((MessageType.ACK,)) + spec + _uint(message.delay, TIMESTAMP_BYTES, "ACK delay")


def _write_have(message: Have, parameters: ChannelParameters) -> bytes:
    return bytes((MessageType.HAVE,)) + _write_spec(message.chunk, parameters, "HAVE")


def _write_integrity(message: Integrity, parameters: ChannelParameters) -> bytes:
    spec = _write_spec(message.chunk, parameters, "INTEGRITY")
    digest = _raw(message.hash, "INTEGRITY hash")
    if len(digest) != parameters.merkle_hash.digest_size:
        raise LocalProtocolError(
            f"INTEGRITY hash of {len(digest)} bytes, {parameters.merkle_hash.name}"
            f" has {parameters.hash_length}"
        )
    return _INTEGRITY_TYPE + spec + digest


def _write_pex_v4(message: PexResV4, parameters: ChannelParameters) -> bytes:
    if not isinstance(message.address, IPv4Address):
        raise LocalProtocolError("PEX_RESv4 needs an IPv4 address")
    port = _uint(message.port, 2, "PEX_RESv4 port")
    return bytes((MessageType.PEX_RESV4,)) + message.address.packed + port


def _write_pex_req(message: PexReq, parameters: ChannelParameters) -> bytes:
    return bytes((MessageType.PEX_REQ,))


def _write_signed_integrity(message: SignedIntegrity, parameters: ChannelParameters) -> bytes:
    spec = _write_spec(message.chunk, parameters, "SIGNED_INTEGRITY")
    signature = _raw(message.signature, "SIGNED_INTEGRITY signature")
    if parameters.signature_length is None:
        raise LocalProtocolError("SIGNED_INTEGRITY on a channel without live signatures")
    if len(signature) != parameters.signature_length:
        raise LocalProtocolError(
            f"signature of {len(signature)} bytes, the channel's are {parameters.signature_length}"
        )
    timestamp = _uint(message.timestamp, TIMESTAMP_BYTES, "SIGNED_INTEGRITY timestamp")
    return bytes((MessageType.SIGNED_INTEGRITY,)) + spec + timestamp + signature


def _write_request(message: Request, parameters: ChannelParameters) -> bytes:
    return bytes((MessageType.REQUEST,)) + _write_spec(message.chunk, parameters, "REQUEST")


def _write_cancel(message: Cancel, parameters: ChannelParameters) -> bytes:
    return bytes((MessageType.CANCEL,)) + _write_spec(message.chunk, parameters, "CANCEL")


def _write_choke(message: Choke, parameters: ChannelParameters) -> bytes:
    return bytes((MessageType.CHOKE,))


def _write_unchoke(message: Unchoke, parameters: ChannelParameters) -> bytes:
    return bytes((MessageType.UNCHOKE,))


def _write_pex_v6(message: PexResV6, parameters: ChannelParameters) -> bytes:
    if not isinstance(message.address, IPv6Address):
        raise LocalProtocolError("PEX_RESv6 needs an IPv6 address")
    port = _uint(message.port, 2, "PEX_RESv6 port")
    return bytes((MessageType.PEX_RESV6,)) + message.address.packed + port


def _write_pex_cert(message: PexResCert, parameters: ChannelParameters) -> bytes:
    certificate = _raw(message.certificate, "PEX_REScert certificate")
    size = _uint(len(certificate), 2, "PEX_REScert certificate size")
    return bytes((MessageType.PEX_RESCERT,)) + size + certificate


_WRITERS: dict[type, Callable[[object, ChannelParameters], bytes]] = {
    Ack: _write_ack,  # type: ignore[dict-item]
    Have: _write_have,  # type: ignore[dict-item]
    Integrity: _write_integrity,  # type: ignore[dict-item]
    PexResV4: _write_pex_v4,  # type: ignore[dict-item]
    PexReq: _write_pex_req,  # type: ignore[dict-item]
    SignedIntegrity: _write_signed_integrity,  # type: ignore[dict-item]
    Request: _write_request,  # type: ignore[dict-item]
    Cancel: _write_cancel,  # type: ignore[dict-item]
    Choke: _write_choke,  # type: ignore[dict-item]
    Unchoke: _write_unchoke,  # type: ignore[dict-item]
    PexResV6: _write_pex_v6,  # type: ignore[dict-item]
    PexResCert: _write_pex_cert,  # type: ignore[dict-item]
}
