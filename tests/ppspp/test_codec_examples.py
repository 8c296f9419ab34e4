"""The PPSPP codec on the datagrams of RFC 7574 section 8.16, on every message type, on
libswift's handshake, and on each way a datagram can be malformed."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram, peek_channel
from ppsp.errors import LocalProtocolError, MalformedDatagram, PPSPPError
from ppsp.wire.ppspp import (
    MAX_DATAGRAM_BYTES,
    MAX_DATAGRAM_MESSAGES,
    VARIABLE_CHUNK_SIZE,
    Ack,
    Bin,
    Cancel,
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Data,
    Datagram,
    Handshake,
    Have,
    Integrity,
    LiveSignatureAlgorithm,
    MerkleHashFunction,
    MessageType,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    SignedIntegrity,
    SupportedMessages,
    Unchoke,
    keepalive,
    signature_length,
)

RFC = ChannelParameters()  # RFC 7574's defaults: 32-bit chunk ranges, SHA-256, 1024 bytes
SWIFT = ChannelParameters.libswift()  # SHA-1
FIRST = ChunkRange(start=0, end=0)

# --- RFC 7574 section 8.16 ----------------------------------------------------------------
# The example draws a swarm ID of length 0x0014 (20 bytes) starting 47a013e6 and ending
# 86aab03b, eliding the middle (its text calls it a 32-byte root hash; the length field rules
# on the wire, and the codec leaves the swarm ID's length to the channel).  The elided middle
# is filled with zeros here.
SWARM_ID = bytes.fromhex("47a013e6" + "00" * 12 + "86aab03b")

EXAMPLE = (
    (
        "initiator's HANDSHAKE",
        "00000000000000000100010101020014" + SWARM_ID.hex() + "0301040206020900000400ff",
        Datagram(
            channel=0,
            messages=(
                Handshake(
                    source_channel=1,
                    version=1,
                    min_version=1,
                    swarm_id=SWARM_ID,
                    content_integrity=ContentIntegrity.MERKLE,
                    merkle_hash=MerkleHashFunction.SHA256,
                    chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
                    chunk_size=1024,
                ),
            ),
        ),
    ),
    (
        "responder's HANDSHAKE and HAVE",
        "00000001000000000800010301040206020900000400ff030000000000000000",
        Datagram(
            channel=1,
            messages=(
                Handshake(
                    source_channel=8,
                    version=1,
                    content_integrity=ContentIntegrity.MERKLE,
                    merkle_hash=MerkleHashFunction.SHA256,
                    chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
                    chunk_size=1024,
                ),
                Have(chunk=FIRST),
            ),
        ),
    ),
    (
        "REQUEST and PEX_REQ",
        "0000000808000000000000000006",
        Datagram(channel=8, messages=(Request(chunk=FIRST), PexReq())),
    ),
    (
        "DATA",
        "000000010100000000000000000004e94180b7db44" + b"Hello world!".hex(),
        Datagram(
            channel=1,
            messages=(Data(chunk=FIRST, timestamp=0x0004E94180B7DB44, data=b"Hello world!"),),
        ),
    ),
    (
        "ACK and HAVE",
        "000000080200000000000000000000000000000064030000000000000000",
        Datagram(channel=8, messages=(Ack(chunk=FIRST, delay=100), Have(chunk=FIRST))),
    ),
    (
        "closing HANDSHAKE",
        "000000080000000000ff",
        Datagram(channel=8, messages=(Handshake(source_channel=0),)),
    ),
)


@pytest.mark.parametrize(("name", "wire", "datagram"), EXAMPLE, ids=[e[0] for e in EXAMPLE])
def test_rfc7574_example(name: str, wire: str, datagram: Datagram) -> None:
    data = bytes.fromhex(wire)
    assert decode_datagram(data, RFC) == datagram
    assert encode_datagram(datagram, RFC) == data  # the strict profile sends it as drawn
    assert peek_channel(data) == datagram.channel


def test_have_with_a_bin_as_section_8_2_writes_it() -> None:
    params = ChannelParameters(chunk_addressing=ChunkAddressing.BIN_32)
    datagram = Datagram(channel=7, messages=(Have(chunk=Bin(number=1)),))
    assert encode_datagram(datagram, params) == bytes.fromhex("000000070300000001")
    assert decode_datagram(bytes.fromhex("000000070300000001"), params) == datagram


def test_supported_messages_bitmap_of_section_7_10() -> None:
    # "every message except ACKs and PEXs is: 11011001 11110000"
    everything_but = set(MessageType) - {
        MessageType.ACK,
        MessageType.PEX_REQ,
        MessageType.PEX_RESV4,
        MessageType.PEX_RESV6,
        MessageType.PEX_RESCERT,
    }
    bitmap = SupportedMessages.from_types(everything_but)
    assert bitmap.bitmap == bytes((0b11011001, 0b11110000))
    assert bitmap.types == everything_but
    assert bitmap.supports(MessageType.DATA) and not bitmap.supports(MessageType.ACK)
    assert not bitmap.supports(200)


# --- Every message type, byte for byte ----------------------------------------------------

SIGNED = ChannelParameters(signature_length=4)
MESSAGES = (
    (
        "DATA",
        RFC,
        Data(chunk=FIRST, timestamp=1, data=b"x"),
        "010000000000000000000000000000000178",
    ),
    (
        "ACK",
        RFC,
        Ack(chunk=ChunkRange(start=2, end=5), delay=7),
        "0200000002000000050000000000000007",
    ),
    ("HAVE", RFC, Have(chunk=ChunkRange(start=0, end=0xFFFFFFFF)), "0300000000ffffffff"),
    (
        "INTEGRITY SHA-1",
        SWIFT,
        Integrity(chunk=ChunkRange(start=0, end=3), hash=b"h" * 20),
        "040000000000000003" + "68" * 20,
    ),
    (
        "INTEGRITY SHA-256",
        RFC,
        Integrity(chunk=FIRST, hash=b"h" * 32),
        "040000000000000000" + "68" * 32,
    ),
    ("PEX_RESv4", RFC, PexResV4(address=IPv4Address("192.0.2.1"), port=6778), "05c00002011a7a"),
    ("PEX_REQ", RFC, PexReq(), "06"),
    (
        "SIGNED_INTEGRITY",
        SIGNED,
        SignedIntegrity(chunk=FIRST, timestamp=9, signature=b"sigs"),
        "070000000000000000000000000000000973696773",
    ),
    ("REQUEST", RFC, Request(chunk=ChunkRange(start=1, end=2)), "080000000100000002"),
    ("CANCEL", RFC, Cancel(chunk=ChunkRange(start=1, end=2)), "090000000100000002"),
    ("CHOKE", RFC, Choke(), "0a"),
    ("UNCHOKE", RFC, Unchoke(), "0b"),
    (
        "PEX_RESv6",
        RFC,
        PexResV6(address=IPv6Address("2001:db8::1"), port=1),
        "0c20010db80000000000000000000000010001",
    ),
    ("PEX_REScert", RFC, PexResCert(certificate=b"\x30\x00"), "0d00023000"),
)


@pytest.mark.parametrize(
    ("name", "params", "message", "wire"), MESSAGES, ids=[m[0] for m in MESSAGES]
)
def test_every_message_type(
    name: str, params: ChannelParameters, message: object, wire: str
) -> None:
    datagram = Datagram(channel=0x01020304, messages=(message,))  # type: ignore[arg-type]
    data = bytes.fromhex("01020304" + wire)
    assert encode_datagram(datagram, params) == data
    assert decode_datagram(data, params) == datagram


def test_ack_delay_reads_signed() -> None:
    # libswift writes "now - DATA timestamp" as a signed 64-bit number.
    data = bytes.fromhex("00000001020000000000000000ffffffffffffff9c")
    (ack,) = decode_datagram(data, RFC).messages
    assert isinstance(ack, Ack) and ack.delay == 2**64 - 100 and ack.signed_delay == -100
    assert Ack(chunk=FIRST, delay=100).signed_delay == 100


def test_keepalive_is_the_channel_id_alone() -> None:
    assert encode_datagram(keepalive(0xDEADBEEF), RFC) == bytes.fromhex("deadbeef")
    decoded = decode_datagram(bytes.fromhex("deadbeef"), RFC)
    assert decoded == keepalive(0xDEADBEEF) and decoded.is_keepalive


@pytest.mark.parametrize(
    ("addressing", "spec", "wire"),
    [
        (ChunkAddressing.BIN_32, Bin(number=6), "00000006"),
        (ChunkAddressing.BIN_64, Bin(number=0x7FFFFFFFFFFFFFFF), "7fffffffffffffff"),
        (
            ChunkAddressing.CHUNK_RANGE_64,
            ChunkRange(start=1, end=2**40),
            "00000000000000010000010000000000",
        ),
        (
            ChunkAddressing.BYTE_RANGE_64,
            ChunkRange(start=0, end=1023),
            "000000000000000000000000000003ff",
        ),
    ],
)
def test_chunk_addressing_methods(addressing: ChunkAddressing, spec: object, wire: str) -> None:
    params = ChannelParameters(chunk_addressing=addressing)
    datagram = Datagram(channel=5, messages=(Request(chunk=spec),))  # type: ignore[arg-type]
    data = bytes.fromhex("0000000508" + wire)
    assert encode_datagram(datagram, params) == data
    assert decode_datagram(data, params) == datagram


def test_data_lengths_follow_the_chunk_size() -> None:
    params = ChannelParameters(chunk_size=4)
    whole = Data(chunk=FIRST, timestamp=0, data=b"abcd")
    tail = Data(chunk=ChunkRange(start=1, end=1), timestamp=0, data=b"ef")
    datagram = Datagram(channel=1, messages=(whole, tail))
    assert decode_datagram(encode_datagram(datagram, params), params) == datagram
    # A whole chunk may be followed by other messages; the DATA takes exactly the chunk size.
    followed = Datagram(channel=1, messages=(whole, Choke()))
    assert decode_datagram(encode_datagram(followed, params), params) == followed
    # With variable chunk sizes a DATA runs to the end of the datagram.
    variable = ChannelParameters(chunk_size=VARIABLE_CHUNK_SIZE)
    long = Datagram(channel=1, messages=(Data(chunk=FIRST, timestamp=0, data=b"z" * 3000),))
    assert decode_datagram(encode_datagram(long, variable), variable) == long
    # With byte ranges the range gives the length, and messages may follow.
    bytes_params = ChannelParameters(chunk_addressing=ChunkAddressing.BYTE_RANGE_64)
    ranged = Datagram(
        channel=1,
        messages=(Data(chunk=ChunkRange(start=10, end=12), timestamp=0, data=b"abc"), Choke()),
    )
    assert decode_datagram(encode_datagram(ranged, bytes_params), bytes_params) == ranged


def test_handshake_with_every_option_and_live_discard_windows() -> None:
    for addressing, window_hex in (
        (ChunkAddressing.CHUNK_RANGE_32, "ffffffff"),
        (ChunkAddressing.CHUNK_RANGE_64, "0000000000000400"),
    ):
        window = int(window_hex, 16)
        handshake = Handshake(
            source_channel=0x0A0B0C0D,
            version=1,
            min_version=1,
            swarm_id=b"\x0d" + b"k" * 64,
            content_integrity=ContentIntegrity.UNIFIED_MERKLE,
            merkle_hash=MerkleHashFunction.SHA256,
            live_signature=LiveSignatureAlgorithm.ECDSAP256SHA256,
            chunk_addressing=addressing,
            live_discard_window=window,
            supported_messages=SupportedMessages.from_types({0, 1, 3}),
            chunk_size=1024,
        )
        wire = (
            "00000000"
            "00"
            "0a0b0c0d"
            "0001"
            "0101"
            "020041"
            "0d" + "6b" * 64 + "0303"
            "0402"
            "050d"
            f"06{addressing:02x}"
            "07" + window_hex + "0801d0"
            "0900000400"
            "ff"
        )
        datagram = Datagram(channel=0, messages=(handshake,))
        assert encode_datagram(datagram, RFC) == bytes.fromhex(wire)
        assert decode_datagram(bytes.fromhex(wire), RFC) == datagram


def test_messages_after_a_handshake_use_the_parameters_it_announces() -> None:
    # The channel's parameters say SHA-256 and 32-bit ranges; the handshake says SHA-1 and
    # 64-bit ranges, and the INTEGRITY after it is read that way.
    handshake = Handshake(
        source_channel=3,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_64,
    )
    integrity = Integrity(chunk=ChunkRange(start=0, end=1), hash=b"s" * 20)
    datagram = Datagram(channel=9, messages=(handshake, integrity))
    data = encode_datagram(datagram, RFC, profile=EncoderProfile.PLAIN)
    assert data.endswith(bytes.fromhex("0400000000000000000000000000000001") + b"s" * 20)
    assert decode_datagram(data, RFC) == datagram


# --- libswift -----------------------------------------------------------------------------

ROOT = bytes.fromhex("a8fdc205a9f19cc1c7507a60c4f01b13d11d7fd0")
# What libswift's Channel::AddHandshake writes when it initiates for a stored file: version,
# minimum version, swarm ID (the SHA-1 root hash), CIPM 1, MHF 0 (SHA-1), CAM 2, End.
LIBSWIFT_HELLO = bytes.fromhex("00000000001234567800010101020014" + ROOT.hex() + "030104000602ff")


def test_libswift_handshake_decodes() -> None:
    handshake = Handshake(
        source_channel=0x12345678,
        version=1,
        min_version=1,
        swarm_id=ROOT,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    )
    assert decode_datagram(LIBSWIFT_HELLO, SWIFT) == Datagram(channel=0, messages=(handshake,))


def test_libswift_profile_leaves_out_chunk_size_and_supported_messages() -> None:
    ours = Handshake(
        source_channel=0x12345678,
        version=1,
        min_version=1,
        swarm_id=ROOT,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        supported_messages=SupportedMessages.from_types({0, 1, 2, 3, 4, 8}),
        chunk_size=1024,
    )
    datagram = Datagram(channel=0, messages=(ours,))
    assert encode_datagram(datagram, SWIFT, profile=EncoderProfile.LIBSWIFT) == LIBSWIFT_HELLO
    rfc = encode_datagram(datagram, SWIFT)  # RFC peers get both options
    assert rfc.endswith(bytes.fromhex("0802f8800900000400ff"))


@pytest.mark.parametrize(
    ("handshake", "channel", "missing"),
    [
        (Handshake(source_channel=1), 5, "version"),
        (
            Handshake(
                source_channel=1,
                version=1,
                content_integrity=ContentIntegrity.MERKLE,
                merkle_hash=MerkleHashFunction.SHA1,
                chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
            ),
            5,
            "chunk size",
        ),
        (
            Handshake(
                source_channel=1,
                version=1,
                content_integrity=ContentIntegrity.MERKLE,
                chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
                chunk_size=1024,
            ),
            5,
            "Merkle hash function",
        ),
        (
            Handshake(
                source_channel=1,
                version=1,
                content_integrity=ContentIntegrity.MERKLE,
                merkle_hash=MerkleHashFunction.SHA1,
                chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
                chunk_size=1024,
            ),
            0,
            "minimum version, swarm ID",
        ),
        (
            Handshake(
                source_channel=1,
                version=1,
                content_integrity=ContentIntegrity.UNIFIED_MERKLE,
                chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
                chunk_size=1024,
            ),
            5,
            "live signature algorithm, live discard window",
        ),
        (Handshake(source_channel=0, version=1, chunk_size=1024), 5, "no option but"),
    ],
)
def test_rfc_profile_refuses_a_handshake_without_its_musts(
    handshake: Handshake, channel: int, missing: str
) -> None:
    datagram = Datagram(channel=channel, messages=(handshake,))
    with pytest.raises(LocalProtocolError, match=missing):
        encode_datagram(datagram, RFC)
    # The plain profile writes what it is given.
    assert decode_datagram(encode_datagram(datagram, RFC, profile=EncoderProfile.PLAIN), RFC)


# --- Malformed datagrams ------------------------------------------------------------------

HELLO_HEAD = "000000000000000001"


@pytest.mark.parametrize(
    ("wire", "code", "words"),
    [
        ("", "truncated", "shorter than a channel ID"),
        ("000001", "truncated", "shorter than a channel ID"),
        ("000000010e", "unsupported", "unknown message type 14"),
        ("00000001ff", "unsupported", "unknown message type 255"),
        ("00000001030000", "truncated", "cut inside the chunk range of a HAVE"),
        ("00000001030000000200000001", "malformed", "ends before it starts"),
        ("00000001010000000000000001" + "00" * 8 + "61", "malformed", "one chunk"),
        ("00000001010000000000000000" + "00" * 8, "truncated", "without data"),
        ("00000001040000000000000000" + "00" * 31, "truncated", "INTEGRITY hash"),
        ("00000001070000000000000000" + "00" * 8, "unsupported", "without live signatures"),
        ("0000000105c00002011a", "truncated", "PEX_RESv4 port"),
        ("000000010d00033000", "truncated", "certificate"),
        ("0000000102000000000000000000", "truncated", "delay sample"),
        ("000000000a", "malformed", "channel 0 must open with a HANDSHAKE"),
        ("00000000", "malformed", "channel 0 must open with a HANDSHAKE"),
        (HELLO_HEAD + "0001", "truncated", "no End option"),
        (HELLO_HEAD + "0a00ff", "unsupported", "unknown protocol option 10"),
        (HELLO_HEAD + "01010001ff", "malformed", "option 0 after option 1"),
        (HELLO_HEAD + "00010001ff", "malformed", "option 0 after option 0"),
        (HELLO_HEAD + "0000ff", "malformed", "version 0 is reserved"),
        (HELLO_HEAD + "00010102ff", "malformed", "minimum version 2 above version 1"),
        (HELLO_HEAD + "020000ff", "malformed", "empty swarm ID"),
        (HELLO_HEAD + "0200050102", "truncated", "swarm ID option"),
        (HELLO_HEAD + "0300ff", "unsupported", "content integrity protection method 0"),
        (HELLO_HEAD + "0304ff", "unsupported", "content integrity protection method 4"),
        (HELLO_HEAD + "0405ff", "unsupported", "Merkle hash function 5"),
        (HELLO_HEAD + "0605ff", "unsupported", "chunk addressing method 5"),
        (HELLO_HEAD + "07ffffffffff", "malformed", "without a chunk addressing method"),
        (HELLO_HEAD + "0821" + "ff" * 33 + "ff", "malformed", "bitmap of 33 bytes"),
        (HELLO_HEAD + "0900000000ff", "malformed", "chunk size 0"),
    ],
)
def test_malformed_datagrams(wire: str, code: str, words: str) -> None:
    with pytest.raises(MalformedDatagram, match=words) as caught:
        decode_datagram(bytes.fromhex(wire), RFC)
    assert caught.value.code == code
    assert isinstance(caught.value, PPSPPError)
    assert "\n" not in str(caught.value)


def test_message_count_bound() -> None:
    chokes = bytes(4) + bytes((MessageType.CHOKE,)) * MAX_DATAGRAM_MESSAGES
    datagram = decode_datagram(b"\x00\x00\x00\x01" + chokes[4:], RFC)
    assert len(datagram.messages) == MAX_DATAGRAM_MESSAGES
    assert encode_datagram(datagram, RFC) == b"\x00\x00\x00\x01" + chokes[4:]
    with pytest.raises(MalformedDatagram, match="more than 4096 messages") as caught:
        decode_datagram(b"\x00\x00\x00\x01" + chokes[4:] + b"\x0b", RFC)
    assert caught.value.code == "oversized"
    too_many = Datagram(channel=1, messages=(Choke(),) * (MAX_DATAGRAM_MESSAGES + 1))
    with pytest.raises(LocalProtocolError, match="more than 4096 messages"):
        encode_datagram(too_many, RFC)


def test_oversized_datagram() -> None:
    data = bytes(4) + bytes((MessageType.PEX_REQ,)) * MAX_DATAGRAM_BYTES
    with pytest.raises(MalformedDatagram, match="over 65507") as caught:
        decode_datagram(data, RFC)
    assert caught.value.code == "oversized"


@pytest.mark.parametrize(
    ("params", "message", "words"),
    [
        (RFC, Integrity(chunk=FIRST, hash=b"h" * 20), "20 bytes, SHA256 has 32"),
        (RFC, Have(chunk=Bin(number=0)), "needs a range"),
        (
            ChannelParameters(chunk_addressing=ChunkAddressing.BIN_32),
            Have(chunk=FIRST),
            "needs a bin",
        ),
        (RFC, Have(chunk=ChunkRange(start=0, end=2**32)), "32-bit unsigned"),
        (RFC, Have(chunk=ChunkRange(start=3, end=2)), "ends before it starts"),
        (RFC, Ack(chunk=FIRST, delay=-1), "64-bit unsigned"),
        (RFC, Ack(chunk=FIRST, delay=True), "64-bit unsigned"),
        (RFC, Data(chunk=ChunkRange(start=0, end=1), timestamp=0, data=b"x"), "one chunk"),
        (RFC, Data(chunk=FIRST, timestamp=0, data=b""), "without data"),
        (RFC, Data(chunk=FIRST, timestamp=0, data=b"x" * 1025), "over the chunk size"),
        (
            ChannelParameters(chunk_addressing=ChunkAddressing.BYTE_RANGE_64),
            Data(chunk=FIRST, timestamp=0, data=b"xy"),
            "DATA of 1 bytes",
        ),
        (RFC, SignedIntegrity(chunk=FIRST, timestamp=0, signature=b"s"), "without live signatures"),
        (SIGNED, SignedIntegrity(chunk=FIRST, timestamp=0, signature=b"s"), "signature of 1 bytes"),
        (RFC, PexResV4(address=IPv6Address("::1"), port=1), "IPv4"),  # type: ignore[arg-type]
        (RFC, PexResV6(address=IPv6Address("::1"), port=65536), "16-bit"),
        (RFC, PexResCert(certificate=b"c" * 65536), "16-bit"),
        (RFC, Handshake(source_channel=1, version=0), "version 0 is reserved"),
        (RFC, Handshake(source_channel=1, version=1, min_version=2), "above version"),
        (RFC, Handshake(source_channel=1, swarm_id=b""), "swarm ID of 0 bytes"),
        (RFC, Handshake(source_channel=1, content_integrity=0), "not a ContentIntegrity"),  # type: ignore[arg-type]
        (RFC, Handshake(source_channel=1, live_discard_window=5), "without a chunk addressing"),
        (RFC, Handshake(source_channel=1, chunk_size=0), "chunk size 0"),
        (
            RFC,
            Handshake(source_channel=1, supported_messages=SupportedMessages(bitmap=bytes(33))),
            "33 bytes",
        ),
        (RFC, "HAVE", "not a PPSPP message"),
    ],
)
def test_encoder_refuses_what_would_not_decode_back(
    params: ChannelParameters, message: object, words: str
) -> None:
    datagram = Datagram(channel=1, messages=(message,))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match=words):
        encode_datagram(datagram, params, profile=EncoderProfile.PLAIN)


def test_encoder_refuses_a_short_data_before_other_messages() -> None:
    short = Data(chunk=FIRST, timestamp=0, data=b"x")
    with pytest.raises(LocalProtocolError, match="must come last"):
        encode_datagram(Datagram(channel=1, messages=(short, Choke())), RFC)
    variable = ChannelParameters(chunk_size=VARIABLE_CHUNK_SIZE)
    with pytest.raises(LocalProtocolError, match="must come last"):
        encode_datagram(Datagram(channel=1, messages=(short, short)), variable)


def test_encoder_refuses_channel_zero_without_handshake_and_oversized_datagrams() -> None:
    with pytest.raises(LocalProtocolError, match="channel 0"):
        encode_datagram(keepalive(0), RFC)
    with pytest.raises(LocalProtocolError, match="channel ID"):
        encode_datagram(keepalive(2**32), RFC)
    big = Datagram(channel=1, messages=(PexResCert(certificate=bytes(40000)),) * 2)
    with pytest.raises(LocalProtocolError, match="over 65507"):
        encode_datagram(big, RFC)


def test_signature_lengths() -> None:
    assert signature_length(LiveSignatureAlgorithm.ECDSAP256SHA256, b"") == 64
    assert signature_length(LiveSignatureAlgorithm.ECDSAP384SHA384, b"") == 96
    assert signature_length(LiveSignatureAlgorithm.ED25519, b"") == 64
    # RSA: algorithm byte, exponent length 3, exponent 65537, a 256-byte modulus.
    rsa = bytes((8, 3)) + (65537).to_bytes(3, "big") + b"m" * 256
    assert signature_length(LiveSignatureAlgorithm.RSASHA256, rsa) == 256
    # An exponent length of 0 is followed by a two-byte length.
    long_form = bytes((5, 0)) + (3).to_bytes(2, "big") + (65537).to_bytes(3, "big") + b"m" * 128
    assert signature_length(LiveSignatureAlgorithm.RSASHA1, long_form) == 128
    for bad in (b"\x08", b"\x08\x03\x01\x00\x01", b"\x08\x00\x00"):
        with pytest.raises(PPSPPError):
            signature_length(LiveSignatureAlgorithm.RSASHA256, bad)
    with pytest.raises(PPSPPError, match="unknown") as caught:
        signature_length(250, b"")
    assert caught.value.code == "unsupported"


def test_parameters_from_hash_names_and_bounds() -> None:
    assert MerkleHashFunction.from_name("SHA-1") is MerkleHashFunction.SHA1
    assert [f.digest_size for f in MerkleHashFunction] == [20, 28, 32, 48, 64]
    with pytest.raises(ValueError, match="md5"):
        MerkleHashFunction.from_name("md5")
    with pytest.raises(ValueError, match="chunk size"):
        ChannelParameters(chunk_size=0)
    with pytest.raises(ValueError, match="signature"):
        ChannelParameters(signature_length=0)
    assert SWIFT.hash_length == 20 and RFC.hash_length == 32
