"""Capture real PPSPP datagrams between two libswift processes as test vectors.

Run by hand from the repository root (it builds libswift first when needed)::

    .venv/bin/python tests/interop/capture_vectors.py [OUTPUT_DIR]

OUTPUT_DIR defaults to ``tests/ppspp/vectors``.  For each content below (reproducible random
bytes), a libswift seeder serves it and a libswift leecher downloads it through a recording UDP
relay (``interop.libswift.exchange``); the script writes ``libswift-<size>-bytes.json`` with the
datagrams in the order the relay passed them, each with its direction, and a header describing
the exchange (root hash, sizes, the handshake options each side sent, message counts).
``tests/ppspp/vectors/README.md`` documents the format.  The timestamps, delay samples and channel
IDs inside the datagrams differ from run to run; the content and root hashes do not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

CONTENTS = (5000, 100_000)
"""File sizes captured: a few chunks with a short last one, and about 100 KiB."""
CHUNK_SIZE = 1024
KEEP_PER_DIRECTION = 40
"""A capture bigger than INLINE_LIMIT keeps the first datagrams of each direction only."""
INLINE_LIMIT = 200 * 1024
"""Captures whose datagrams take less than this in hex are kept whole."""


def content(size: int) -> bytes:
    """The captured file of ``size`` bytes: ``random.Random(size).randbytes(size)``."""
    return random.Random(size).randbytes(size)


def describe(swift: Path, size: int, workdir: Path) -> dict[str, Any]:
    """Run one exchange and build the vector file's contents."""
    from interop.libswift import TO_LEECHER, TO_SEEDER, exchange
    from interop.observe import parse

    data = content(size)
    result = asyncio.run(exchange(swift, data, workdir, CHUNK_SIZE))
    if result.copy != data:
        raise SystemExit(f"libswift's copy of {size} bytes differs from the source")
    handshakes: dict[str, Any] = {}
    counts: dict[str, Counter[str]] = {TO_SEEDER: Counter(), TO_LEECHER: Counter()}
    entries: list[dict[str, Any]] = []
    for datagram in result.datagrams:
        channel, messages = parse(datagram.data)
        counts[datagram.direction].update(message.name for message in messages)
        if not messages:
            counts[datagram.direction]["(keep-alive)"] += 1
        for message in messages:
            if message.name == "HANDSHAKE" and datagram.direction not in handshakes:
                handshakes[datagram.direction] = {
                    "destination_channel": f"{channel:08x}",
                    "source_channel": f"{message.fields['source_channel']:08x}",
                    "options": [
                        {"name": name, "value": value} for name, value in message.fields["options"]
                    ],
                }
        entries.append(
            {
                "direction": datagram.direction,
                "hex": datagram.data.hex(),
                "messages": [message.name for message in messages],
            }
        )
    truncated = 2 * sum(len(datagram.data) for datagram in result.datagrams) >= INLINE_LIMIT
    if truncated:
        kept: Counter[str] = Counter()
        shortened = []
        for entry in entries:
            if kept[entry["direction"]] < KEEP_PER_DIRECTION:
                kept[entry["direction"]] += 1
                shortened.append(entry)
        entries = shortened
    header: dict[str, Any] = {
        "source": "two libswift (dda307f) processes on loopback through a recording UDP relay, "
        "made by tests/interop/capture_vectors.py",
        "root_hash": result.root_hash,
        "file_size": size,
        "chunk_size": CHUNK_SIZE,
        "merkle_hash": "sha1",
        "chunk_addressing": "32-bit chunk ranges",
        "content": {
            "recipe": f"random.Random({size}).randbytes({size})",
            "sha1": hashlib.sha1(data).hexdigest(),
        },
        "handshake": handshakes,
        "message_counts": {
            direction: dict(sorted(counter.items())) for direction, counter in counts.items()
        },
        "datagram_count": {
            direction: sum(d.direction == direction for d in result.datagrams)
            for direction in (TO_SEEDER, TO_LEECHER)
        },
        "truncated": truncated,
    }
    if size <= 8192:
        header["content"]["hex"] = data.hex()
    return {**header, "datagrams": entries}


def dump(vector: dict[str, Any]) -> str:
    """The vector as JSON: the header indented, one datagram a line."""
    header = {key: value for key, value in vector.items() if key != "datagrams"}
    text = json.dumps(header, indent=1)
    lines = ",\n  ".join(json.dumps(entry) for entry in vector["datagrams"])
    return f'{text[:-2]},\n "datagrams": [\n  {lines}\n ]\n}}\n'


def main() -> None:
    """Capture every content of CONTENTS into the output folder (first argument)."""
    tests = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(tests))
    from interop.libswift import build

    output = Path(sys.argv[1]) if len(sys.argv) > 1 else tests / "ppspp" / "vectors"
    output.mkdir(parents=True, exist_ok=True)
    swift = build()
    for size in CONTENTS:
        with tempfile.TemporaryDirectory(prefix="ppsp-capture-") as workdir:
            vector = describe(swift, size, Path(workdir))
        path = output / f"libswift-{size}-bytes.json"
        path.write_text(dump(vector))
        print(f"{path}: {len(vector['datagrams'])} datagrams, root hash {vector['root_hash']}")


if __name__ == "__main__":
    main()
