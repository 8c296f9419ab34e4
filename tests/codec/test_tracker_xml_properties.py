"""Property tests of the tracker XML codec: round trips and robustness against any input."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.tracker_xml import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import TrackerProtocolError
from ppsp.wire.tracker import AnyRequest, ErrorResponse, TrackerResponse
from wire.strategies import error_responses, mutated, requests, tracker_responses

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(requests())
def test_request_round_trip(message: AnyRequest) -> None:
    assert decode_request(encode_request(message)) == message


@PROPERTY
@given(tracker_responses())
def test_response_round_trip(message: TrackerResponse) -> None:
    assert decode_response(encode_response(message)) == message


@PROPERTY
@given(error_responses())
def test_error_response_round_trip(message: ErrorResponse) -> None:
    data = encode_response(message)
    assert decode_response(data, message.code.http_status, message.reason or "") == message


# ---------------------------------------------------------------------------- robustness

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[1] / "data" / "tracker-examples").glob("xml*.xml")
)
SEEDS = [path.read_bytes() for path in EXAMPLES] or [b"<PPSPTrackerProtocol/>"]
statuses = st.sampled_from([200, 400, 401, 403, 404, 413, 500, 503, 302, 999])
reasons = st.sampled_from(["", "PPSP version 1.0", "Bad Request"])


def _decode_everything(data: bytes, status: int, reason: str) -> None:
    with contextlib.suppress(TrackerProtocolError):
        decode_request(data)
    with contextlib.suppress(TrackerProtocolError):
        decode_response(data, status, reason)


@PROPERTY
@given(st.binary(max_size=2048), statuses, reasons)
def test_arbitrary_bytes_only_raise_protocol_errors(data: bytes, status: int, reason: str) -> None:
    _decode_everything(data, status, reason)


def _encoded(message: AnyRequest | TrackerResponse) -> bytes:
    if isinstance(message, TrackerResponse):
        return encode_response(message)
    return encode_request(message)


XML_FRAGMENTS = st.sampled_from(
    [
        b"<",
        b">",
        b"/",
        b'"',
        b"&",
        b"&amp;",
        b"<SwarmID>",
        b"</PeerInfo>",
        b"ALL",
        b"-1",
        b"\x00",
        b"\xff",
        b"1.0",
        b' version="2.0"',
    ]
)
# A valid document (an example or a freshly encoded message) with a few random edits.
mutated_documents = mutated(
    st.sampled_from(SEEDS) | st.one_of(requests(), tracker_responses()).map(_encoded),
    XML_FRAGMENTS,
)


@PROPERTY
@given(mutated_documents, statuses, reasons)
def test_mutated_documents_only_raise_protocol_errors(
    data: bytes, status: int, reason: str
) -> None:
    _decode_everything(data, status, reason)


@PROPERTY
@given(mutated_documents)
def test_whatever_decodes_round_trips(data: bytes) -> None:
    """Any document the decoder accepts re-encodes to an equal message."""
    try:
        message = decode_request(data)
    except TrackerProtocolError:
        return
    assert decode_request(encode_request(message)) == message
