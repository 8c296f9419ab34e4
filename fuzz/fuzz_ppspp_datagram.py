"""Fuzz harness for the RFC 7574 (PPSPP) datagram codec (h11 ``fuzz/`` style).

Properties checked on every input, under each of a few channels' parameters (RFC 7574's
defaults, libswift's, 32-bit bins with variable chunk sizes, 64-bit byte ranges with live
signatures):

* the decoder raises nothing but :class:`~ppsp.errors.MalformedDatagram`;
* under a bound on its messages (``max_messages``) it reads the same, or, past the bound,
  raises :class:`~ppsp.errors.TooManyMessages` with the messages before it;
* whatever decodes re-encodes (plain profile) to the very same bytes, and decodes back to the
  same datagram;
* whatever decodes can be written for libswift (its profile) and read back, unless a
  HANDSHAKE in it announces a chunk size (which libswift is not told).

Run with atheris when it is installed (``python fuzz/fuzz_ppspp_datagram.py [libFuzzer
flags]``); otherwise a bounded random-mutation loop over valid seed datagrams runs
(``python fuzz/fuzz_ppspp_datagram.py [iterations] [seed]``).
"""

from __future__ import annotations

import random
import sys
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.errors import MalformedDatagram, TooManyMessages
from ppsp.wire.ppspp import (
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
    MerkleHashFunction,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    SignedIntegrity,
    SupportedMessages,
    Unchoke,
)

PARAMETERS: tuple[ChannelParameters, ...] = (
    ChannelParameters(),
    ChannelParameters.libswift(),
    ChannelParameters(chunk_addressing=ChunkAddressing.BIN_32, chunk_size=VARIABLE_CHUNK_SIZE),
    ChannelParameters(
        chunk_addressing=ChunkAddressing.BYTE_RANGE_64,
        merkle_hash=MerkleHashFunction.SHA512,
        signature_length=64,
    ),
)
"""The channels every input is read for."""

_FIRST = ChunkRange(start=0, end=0)
_HELLO = Handshake(
    source_channel=0x01020304,
    version=1,
    min_version=1,
    swarm_id=bytes(range(20)),
    content_integrity=ContentIntegrity.MERKLE,
    merkle_hash=MerkleHashFunction.SHA1,
    chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    supported_messages=SupportedMessages.from_types(range(14)),
    chunk_size=16,
)

SEED_DATAGRAMS: tuple[tuple[ChannelParameters, Datagram], ...] = (
    (PARAMETERS[1], Datagram(channel=0, messages=(_HELLO, Have(chunk=_FIRST)))),
    (PARAMETERS[0], Datagram(channel=7, messages=(Handshake(source_channel=0),))),
    (
        PARAMETERS[1],
        Datagram(
            channel=7,
            messages=(
                Integrity(chunk=ChunkRange(start=0, end=3), hash=bytes(20)),
                Integrity(chunk=ChunkRange(start=1, end=1), hash=bytes(20)),
                Data(chunk=_FIRST, timestamp=0x0004E94180B7DB44, data=b"Hello world!"),
            ),
        ),
    ),
    (
        PARAMETERS[0],
        Datagram(
            channel=8,
            messages=(
                Ack(chunk=_FIRST, delay=100),
                Have(chunk=ChunkRange(start=0, end=9)),
                Request(chunk=ChunkRange(start=10, end=20)),
                Cancel(chunk=ChunkRange(start=15, end=15)),
                PexReq(),
                Choke(),
                Unchoke(),
                PexResV4(address=IPv4Address("192.0.2.7"), port=6778),
                PexResV6(address=IPv6Address("2001:db8::7"), port=6778),
                PexResCert(certificate=b"\x30\x03\x02\x01\x00"),
            ),
        ),
    ),
    (
        PARAMETERS[2],
        Datagram(
            channel=9,
            messages=(Have(chunk=Bin(number=7)), Data(chunk=Bin(number=4), timestamp=1, data=b"v")),
        ),
    ),
    (
        PARAMETERS[3],
        Datagram(
            channel=9,
            messages=(
                SignedIntegrity(
                    chunk=ChunkRange(start=0, end=1023), timestamp=2, signature=bytes(64)
                ),
                Data(chunk=ChunkRange(start=0, end=2), timestamp=3, data=b"abc"),
                Integrity(chunk=ChunkRange(start=0, end=1023), hash=bytes(64)),
            ),
        ),
    ),
    (PARAMETERS[0], Datagram(channel=0xFFFFFFFF)),
)

SEEDS: tuple[bytes, ...] = tuple(
    encode_datagram(datagram, params, profile=EncoderProfile.PLAIN)
    for params, datagram in SEED_DATAGRAMS
)
"""Valid datagrams of every message type: the corpus the mutation loop starts from."""


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    for params in PARAMETERS:
        try:
            datagram = decode_datagram(data, params)
        except MalformedDatagram:
            continue
        _check_bound(data, params, datagram, bound=len(data) % 5)
        again = encode_datagram(datagram, params, profile=EncoderProfile.PLAIN)
        if again != data:
            raise AssertionError(f"datagram does not re-encode to its bytes: {datagram!r}")
        if decode_datagram(again, params) != datagram:
            raise AssertionError(f"datagram does not round-trip: {datagram!r}")
        if any(
            isinstance(message, Handshake) and message.chunk_size is not None
            for message in datagram.messages
        ):
            continue  # libswift hears no chunk size: the DATA after it would read differently
        for_libswift = encode_datagram(datagram, params, profile=EncoderProfile.LIBSWIFT)
        decode_datagram(for_libswift, params)


def _check_bound(data: bytes, params: ChannelParameters, whole: Datagram, bound: int) -> None:
    """Read under ``bound``: the same datagram within it, its first messages past it."""
    try:
        bounded = decode_datagram(data, params, max_messages=bound)
    except TooManyMessages as error:
        if len(whole.messages) <= bound or error.messages != whole.messages[:bound]:
            raise AssertionError(f"refused under a bound of {bound}: {whole!r}") from None
        return
    if len(whole.messages) > bound or bounded != whole:
        raise AssertionError(f"read differently under a bound of {bound}: {whole!r}")


_TOKENS = (
    b"\x00",
    b"\xff",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    bytes(range(14)),
    b"\x02\x00\x14",
    b"\x07\xff\xff\xff\xff",
    b"\x08\x20",
    b"\x0d\xff\xff",
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits of ``data`` (:func:`harness.mutate` over this target's corpus)."""
    return harness.mutate(data, rng, SEEDS, _TOKENS)


def run_random(iterations: int = 20_000, seed: int = 0) -> int:
    """The fallback fuzzer: the seed corpus, then ``iterations`` mutations of it;
    returns inputs run.  A finding is printed to stderr with its input, then raised."""
    return harness.run_random(test_one_input, SEEDS, _TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 20_000)
