"""What datagrams of thousands of small messages cost the PPSPP seeder, sans I/O.

    python -m bench.ppspp_seeder_hostile [--datagrams 200] [--messages 4095] [--repeat 5]

A :class:`~ppsp.peer.ppspp.Seeder` of 1 MiB (libswift's parameters: SHA-1, 32-bit chunk
ranges, 1 KiB chunks) is fed, in this process and without sockets:

- **on a channel**: ``--datagrams`` datagrams of ``--messages`` HAVEs of every chunk, each on
  a channel of its own opened and confirmed beforehand (from 127.0.6.1, 127.0.6.2, ...: one
  host holds 16 channels at most);
- **opening**: as many opening datagrams of a HANDSHAKE and ``--messages`` - 1 HAVEs, each
  from a new source channel of 127.0.7.7.

The process CPU time (``time.process_time``) of each batch, per datagram: the engine's and
the codec's work alone (the kernel's share of a real socket is not in it).  The fastest of
``--repeat`` batches is the figure.  Prints one line per figure.
"""

from __future__ import annotations

import argparse
import random
import time

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.wire.ppspp import (
    ChannelParameters,
    ChunkAddressing,
    ChunkRange,
    ContentIntegrity,
    Datagram,
    Handshake,
    Have,
    MerkleHashFunction,
    Message,
)

LIBSWIFT = ChannelParameters.libswift()
EVERYTHING = Have(chunk=ChunkRange(start=0, end=2**32 - 1))


def _opening(root: bytes, source: int, *messages: Message) -> bytes:
    hello = Handshake(
        source_channel=source,
        version=1,
        min_version=1,
        swarm_id=root,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    )
    datagram = Datagram(channel=0, messages=(hello, *messages))
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)


def _batch(
    content: SeededContent, datagrams: int, messages: int
) -> tuple[float, float, dict[str, int]]:
    """CPU seconds per datagram on channels and opening, and the seeder's counters."""
    seeder = Seeder(content, timestamp_offset=0.0, config=SeederConfig(max_channels=4096))
    floods: list[tuple[tuple[str, int], bytes]] = []
    for n in range(datagrams):
        address = (f"127.0.6.{1 + n // 16}", 6000 + n)
        seeder.datagram_received(_opening(content.swarm_id, 0x6000 + n), address, 0.0)
        [(_, answer), *_] = seeder.datagrams_to_send()
        reply = decode_datagram(answer, LIBSWIFT).messages[0]
        assert isinstance(reply, Handshake)
        seeder.datagram_received(reply.source_channel.to_bytes(4, "big"), address, 0.0)
        seeder.datagrams_to_send()
        wire = Datagram(channel=reply.source_channel, messages=(EVERYTHING,) * messages)
        floods.append((address, encode_datagram(wire, LIBSWIFT, profile=EncoderProfile.PLAIN)))
    openings = [
        _opening(content.swarm_id, 0x7000 + n, *(EVERYTHING,) * (messages - 1))
        for n in range(datagrams)
    ]
    start = time.process_time()
    for address, wire_bytes in floods:
        seeder.datagram_received(wire_bytes, address, 1.0)
    on_channel = (time.process_time() - start) / datagrams
    start = time.process_time()
    for n, wire_bytes in enumerate(openings):
        seeder.datagram_received(wire_bytes, ("127.0.7.7", 7000 + n), 1.0)
    opening = (time.process_time() - start) / datagrams
    seeder.datagrams_to_send()
    return on_channel, opening, dict(seeder.stats)


def main() -> None:
    """Measure (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=200)
    parser.add_argument("--messages", type=int, default=4095, help="messages per datagram")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    content = SeededContent.from_bytes(random.Random(1).randbytes(1 << 20))
    runs = [_batch(content, args.datagrams, args.messages) for _ in range(args.repeat)]
    on_channel = min(run[0] for run in runs)
    opening = min(run[1] for run in runs)
    stats = runs[-1][2]
    print(
        f"{args.datagrams} datagrams of {args.messages} HAVEs, each on a channel of its own:"
        f" {1000 * on_channel:.2f} ms CPU each (fastest of {args.repeat})"
    )
    print(
        f"{args.datagrams} opening datagrams of {args.messages - 1} HAVEs:"
        f" {1000 * opening:.2f} ms CPU each (fastest of {args.repeat})"
    )
    keys = ("too_many_messages", "malformed", "refused_handshake:too_many_messages")
    print("seeder stats:", {key: stats.get(key, 0) for key in keys})


if __name__ == "__main__":
    main()
