"""Fuzz target for the tracker JSON codec: only the protocol's own errors may escape.

With atheris installed::

    python fuzz/fuzz_tracker_json.py [atheris/libFuzzer options] [corpus dirs]

Without it, the same entry point runs a bounded random-mutation loop over the RFC 7846 draft
examples (``specs/examples/draft12-*``) plus version 2 messages made by the encoder::

    python fuzz/fuzz_tracker_json.py --iterations 20000 --seed 1

Any exception other than :class:`~ppsp.errors.TrackerProtocolError` is a bug, and so is a
decoded message that does not survive ``decode(encode(message))`` unchanged, in JSON and in
the other codecs (XML for requests; XML and the peer codec for peer lists: the field rules every
codec shares, :mod:`ppsp.wire.fields`).  The loop stops and prints the input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import random
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import orjson

from ppsp.codecs import peer_xml as peer_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker_json import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import TrackerErrorCode, TrackerProtocolError
from ppsp.wire.peer import FindResponse as PeerFindResponse
from ppsp.wire.tracker import (
    AddressType,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    SwarmAction,
    TrackerResponse,
)

STATUSES = (200, 400, 401, 403, 404, 413, 500, 503, 302)
REASONS = ("", "PPSP version 1.0", "Bad Request")

EXAMPLES = Path(
    os.environ.get(
        "PPSP_FUZZ_CORPUS",
        str(Path(__file__).resolve().parents[1] / "tests" / "data" / "tracker-examples"),
    )
)

FRAGMENTS = (
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b",",
    b":",
    b"\\",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"NaN",
    b"99999999999999999999999",
    b"18446744073709551616",
    b'"\\ud800"',
    b"\x00",
    b"\xff\xfe",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b'"version": 2',
    b'"version": 3',
    b'"ALL"',
    b'"Stat"',
    b'"peer_mode": "SEED"',
    b'"request_type": "JOIN"',
    b'"request_type": "DISCONNECT"',
    b'"type": "CONTENT_MAP"',
    b'"chunkmap": "A/8D/wP/...."',
    b'"nil"',
    b'"peer_info": [{"peer_id": "a", "peer_addr": {"ip_address": {"address": "::1"}, "port": 1}}]',
)

JSON_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**63,
    1.5,
    "",
    "ALL",
    "nil",
    " spaced ",
    "x" * 300,
    "JOIN",
    "LEAVE",
    "SEEDER",
    "CONTENT_MAP",
    [],
    {},
    [{}],
    {"swarm_id": "1"},
)


def _check_request(data: bytes) -> None:
    try:
        message = decode_request(data)
    except TrackerProtocolError:
        return
    again = decode_request(encode_request(message))
    assert again == message, f"request round trip changed {message!r} into {again!r}"
    in_xml = xml_codec.decode_request(xml_codec.encode_request(message))
    assert in_xml == message, f"XML changed {message!r} into {in_xml!r}"


def _check_response(data: bytes, status: int, reason: str) -> None:
    try:
        message = decode_response(data, status, reason)
    except TrackerProtocolError:
        return
    if isinstance(message, ErrorResponse):
        # The JSON form carries neither the HTTP reason nor codes beyond RFC 7846's six.
        message = ErrorResponse(
            version=message.version,
            transaction_id=message.transaction_id,
            code=TrackerErrorCode(message.code.json_code),
        )
    again = decode_response(encode_response(message))
    assert again == message, f"response round trip changed {message!r} into {again!r}"
    if isinstance(message, TrackerResponse):
        _check_peers(message.peers)


_REQUESTER = PeerInfo(
    addresses=(PeerAddress(ip="198.51.100.1", port=1, type=AddressType.REFLEXIVE),)
)


def _check_peers(peers: tuple[PeerInfo, ...]) -> None:
    """A peer list read from JSON is written by the XML and peer codecs, read back the same."""
    answer = TrackerResponse(
        version=ProtocolVersion.V1_1, transaction_id="t", requester=_REQUESTER, peers=peers
    )
    in_xml = xml_codec.decode_response(xml_codec.encode_response(answer))
    assert isinstance(in_xml, TrackerResponse) and in_xml.peers == peers, peers
    find = PeerFindResponse(transaction_id="1", peers=peers)
    assert peer_codec.decode_response(peer_codec.encode_response(find)) == find, peers


def test_one_input(data: bytes) -> None:
    """Decode ``data`` as a request and as a response; only TrackerProtocolError may escape.

    Whatever decodes must come back unchanged from encoding and decoding it again.
    """
    status = STATUSES[data[0] % len(STATUSES)] if data else 200
    reason = REASONS[data[-1] % len(REASONS)] if data else ""
    _check_request(data)
    _check_response(data, 200, "")
    _check_response(data, status, reason)


def _extension_seeds() -> list[bytes]:
    """Version 2 messages, so that the extension's paths are reached too."""
    ids: dict[str, Any] = {"version": ProtocolVersion.V1_1, "transaction_id": "1", "peer_id": "p"}
    segment = SegmentMap(start_index=0, end_index=24, chunkmap_size=25, bitmap=b"\x03\xff\x03\x80")
    return [
        encode_request(
            JoinRequest(
                swarms=(
                    SwarmAction(swarm_id="1111", peer_mode=PeerMode.LEECH, transaction_id="1.1"),
                ),
                content_group=(RepresentationScope(representation_id="tag0", start_index=20),),
                **ids,
            )
        ),
        encode_request(
            DisconnectRequest(
                scope=DisconnectScope.SWARMS,
                swarms=(SwarmAction(swarm_id="1111", transaction_id="1.1"),),
                **ids,
            )
        ),
        encode_request(DisconnectRequest(scope=DisconnectScope.ALL_SWARMS, **ids)),
        encode_request(
            FindRequest(
                swarm_id="1111",
                content_group=(
                    RepresentationScope(representation_id="tag4", start_index=110, end_index=150),
                ),
                **ids,
            )
        ),
        encode_request(
            StatReportRequest(
                content_maps=(
                    ContentMap(
                        swarm_id="1111",
                        representations=(
                            RepresentationMap(representation_id="tag0", segments=(segment,)),
                        ),
                    ),
                ),
                **ids,
            )
        ),
    ]


def seeds() -> list[bytes]:
    """The starting corpus: the RFC 7846 draft examples (bodies only) and version 2 messages."""
    found = []
    for path in sorted(EXAMPLES.glob("draft12-*")):
        data = path.read_bytes()
        if path.suffix == ".http":
            data = data.partition(b"\n\n")[2]
        found.append(data)
    return found + _extension_seeds()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def mutate_structure(rng: random.Random, data: bytes) -> bytes:
    """Replace a few sub-values of a JSON document with odd ones (or with other sub-values)."""
    document = orjson.loads(data)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(document)
        target = rng.choice(paths)
        if rng.random() < 0.5:
            new = rng.choice(JSON_VALUES)
        else:
            source = rng.choice(paths)
            new = document
            for key in source:
                new = new[key]
        document = _replace(document, target, new)
    return orjson.dumps(document)


def mutate_bytes(rng: random.Random, data: bytes, corpus: Sequence[bytes]) -> bytes:
    """A few random byte-level edits: flips, deletions, insertions, duplications, splices."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randint(0, len(buffer))
        kind = rng.randrange(5)
        if kind == 0 and position < len(buffer):
            buffer[position] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del buffer[position : position + rng.randint(1, 32)]
        elif kind == 2:
            buffer[position:position] = rng.choice(FRAGMENTS)
        elif kind == 3:
            buffer[position:position] = buffer[position : position + rng.randint(1, 128)]
        else:
            other = rng.choice(corpus)
            start = rng.randint(0, len(other))
            buffer[position:] = other[start:]
    return bytes(buffer)


def run_without_atheris(iterations: int, seed: int) -> int:
    """Bounded random-mutation fuzzing; returns a process exit status (0: nothing found)."""
    rng = random.Random(seed)
    corpus = seeds()
    for iteration in range(iterations):
        original = rng.choice(corpus)
        if rng.random() < 0.5:
            data = mutate_structure(rng, original)
        else:
            data = mutate_bytes(rng, original, corpus)
        try:
            test_one_input(data)
        except Exception:
            traceback.print_exc()
            print(f"iteration {iteration}: failing input {data!r}", file=sys.stderr)
            return 1
    print(f"{iterations} inputs, no unexpected exception")
    return 0


def main(argv: list[str]) -> int:
    """Run atheris when it is installed, else the bounded mutation loop."""
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
        parser.add_argument("--iterations", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=0)
        args = parser.parse_args(argv[1:])
        return run_without_atheris(args.iterations, args.seed)
    harness.fuzz_with_atheris(atheris, argv, test_one_input, seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
