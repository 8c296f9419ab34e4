"""Fuzz target for the tracker XML codec: only the protocol's own errors may escape.

With atheris installed::

    python fuzz/fuzz_tracker_xml.py [atheris/libFuzzer options] [corpus dirs]

Without it, the same entry point runs a bounded random-mutation loop over the draft examples
(``specs/examples/xml*.xml``)::

    python fuzz/fuzz_tracker_xml.py --iterations 20000 --seed 1

Any exception other than :class:`~ppsp.errors.TrackerProtocolError` is a bug, and so is a
decoded message that the codecs do not write back unchanged: the XML codec itself, the JSON
codec where the message's version has a JSON form, and the peer codec for a peer list (the field
rules every codec shares, :mod:`ppsp.wire.fields`).  The loop stops and prints the input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import random
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.codecs import peer_xml as peer_codec
from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker_xml import decode_request, decode_response
from ppsp.errors import TrackerProtocolError
from ppsp.wire.peer import FindResponse as PeerFindResponse
from ppsp.wire.tracker import (
    AddressType,
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    ProtocolVersion,
    StatReportRequest,
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

FALLBACK_SEED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<PPSPTrackerProtocol version="1.1">'
    b"<Request>FIND</Request><PeerID>p</PeerID><TransactionID>1</TransactionID>"
    b"<SwarmID>s</SwarmID></PPSPTrackerProtocol>"
)

FRAGMENTS = (
    b"<",
    b">",
    b"/>",
    b'"',
    b"&",
    b"&amp;",
    b"<SwarmID>ALL</SwarmID>",
    b"</PeerInfo>",
    b"<!DOCTYPE x>",
    b"-1",
    b"99999999999999999999999",
    b"\x00",
    b"\xff\xfe",
    b' version="2.0"',
    b'<Result transactionID="1.0">200 OK</Result>',
    b"<SwarmID>nil</SwarmID>",
    b'<PeerInfo swarmID="s"><PeerID>a</PeerID>',
    b'<PeerAddress ip="2001:DB8::1" port="1"/>',
)

_REQUESTER = PeerInfo(
    addresses=(PeerAddress(ip="198.51.100.1", port=1, type=AddressType.REFLEXIVE),)
)


def _json_expresses(request: AnyRequest) -> bool:
    """Whether the JSON form of the request's version has its method and members."""
    if request.version is ProtocolVersion.V1_1:
        return True
    if isinstance(request, JoinRequest | DisconnectRequest):
        return False
    if isinstance(request, ConnectRequest | FindRequest) and request.content_group:
        return False
    return not (isinstance(request, StatReportRequest) and request.content_maps)


def _check_request(request: AnyRequest) -> None:
    again = xml_codec.decode_request(xml_codec.encode_request(request))
    assert again == request, f"request round trip changed {request!r} into {again!r}"
    if _json_expresses(request):
        in_json = json_codec.decode_request(json_codec.encode_request(request))
        assert in_json == request, f"JSON changed {request!r} into {in_json!r}"


def _check_peers(peers: tuple[PeerInfo, ...]) -> None:
    """A peer list read from XML is written by the JSON and peer codecs, read back the same."""
    answer = TrackerResponse(
        version=ProtocolVersion.V1_1, transaction_id="t", requester=_REQUESTER, peers=peers
    )
    in_json = json_codec.decode_response(json_codec.encode_response(answer))
    assert isinstance(in_json, TrackerResponse)
    assert sorted(map(repr, in_json.peers)) == sorted(map(repr, peers)), peers
    find = PeerFindResponse(transaction_id="1", peers=peers)
    assert peer_codec.decode_response(peer_codec.encode_response(find)) == find, peers


def test_one_input(data: bytes) -> None:
    """Decode ``data`` as a request and as a response; only TrackerProtocolError may escape,
    and what decodes is written back unchanged by every codec that can express it."""
    status = STATUSES[data[0] % len(STATUSES)] if data else 200
    reason = REASONS[data[-1] % len(REASONS)] if data else ""
    try:
        request = decode_request(data)
    except TrackerProtocolError:
        pass
    else:
        _check_request(request)
    for args in ((data,), (data, status, reason)):
        with contextlib.suppress(TrackerProtocolError):
            answer = decode_response(*args)
            if isinstance(answer, TrackerResponse):
                _check_peers(answer.peers)


def seeds() -> list[bytes]:
    """The starting corpus: every XML example of the drafts, or a minimal FIND."""
    found = [path.read_bytes() for path in sorted(EXAMPLES.glob("xml*.xml"))]
    return found or [FALLBACK_SEED]


def mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes]) -> bytes:
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
        data = mutate(rng, rng.choice(corpus), corpus)
        try:
            test_one_input(data)
        except Exception:
            traceback.print_exc()
            print(f"iteration {iteration}: crashing input {data!r}", file=sys.stderr)
            return 1
    print(f"{iterations} inputs, no unexpected exception")
    return 0


def main(argv: list[str]) -> int:
    """Run atheris when it is installed, else the bounded mutation loop."""
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--iterations", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=0)
        args = parser.parse_args(argv[1:])
        return run_without_atheris(args.iterations, args.seed)
    harness.fuzz_with_atheris(atheris, argv, test_one_input, seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
