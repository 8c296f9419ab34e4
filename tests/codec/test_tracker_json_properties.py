"""Property tests of the JSON tracker codec: round trips of every message, and fuzzing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs.tracker_json import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from ppsp.errors import TrackerErrorCode, TrackerProtocolError
from ppsp.wire.tracker import AnyRequest, Encoding, ErrorResponse, ProtocolVersion, TrackerResponse
from wire.strategies import (
    JSON_MEMBER_NAMES,
    error_responses,
    json_values,
    mutated,
    requests,
    tracker_responses,
)

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[1] / "data" / "tracker-examples").glob("draft12-*.json")
)
V1 = ProtocolVersion.V1_0
V2 = ProtocolVersion.V1_1
# PPSP_JSON_EXAMPLES raises the number of examples for a long fuzzing run.
SETTINGS = settings(
    max_examples=int(os.environ.get("PPSP_JSON_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- round trips -------------------------------------------------------------------------------


@SETTINGS
@given(requests(V1, Encoding.JSON))
def test_v1_requests_round_trip(msg: AnyRequest) -> None:
    data = encode_request(msg)
    assert orjson.loads(data)["PPSPTrackerProtocol"]["version"] == 1
    assert decode_request(data) == msg


@SETTINGS
@given(requests(V2, Encoding.JSON))
def test_v2_requests_round_trip(msg: AnyRequest) -> None:
    data = encode_request(msg)
    assert orjson.loads(data)["PPSPTrackerProtocol"]["version"] == 2
    assert decode_request(data) == msg


@SETTINGS
@given(st.one_of(tracker_responses(Encoding.JSON), error_responses(Encoding.JSON)))
def test_responses_round_trip(msg: TrackerResponse | ErrorResponse) -> None:
    assert decode_response(encode_response(msg)) == msg


# --- fuzzing: only the protocol's own errors escape, and what decodes re-encodes ---------------


def check(data: bytes) -> None:
    """Decode ``data`` both ways; a decoded message must survive encode/decode unchanged."""
    try:
        request = decode_request(data)
    except TrackerProtocolError:
        pass
    else:
        assert decode_request(encode_request(request)) == request
    for status in (200, 400):
        try:
            response = decode_response(data, status, "Bad Request")
        except TrackerProtocolError:
            continue
        if isinstance(response, ErrorResponse):
            response = ErrorResponse(
                version=response.version,
                transaction_id=response.transaction_id,
                code=TrackerErrorCode(response.code.json_code),
            )
        assert decode_response(encode_response(response)) == response


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@SETTINGS
@given(json_values)
def test_arbitrary_json_values(value: object) -> None:
    check(orjson.dumps(value))
    check(orjson.dumps({"PPSPTrackerProtocol": value}))


@SETTINGS
@given(
    st.sampled_from([1, 2, 3, "1"]),
    st.sampled_from(["CONNECT", "JOIN", "DISCONNECT", "FIND", "STAT_REPORT", None]),
    st.dictionaries(st.sampled_from(JSON_MEMBER_NAMES), json_values, max_size=6),
)
def test_arbitrary_message_bodies(version: object, request_type: object, body: Any) -> None:
    body.update(version=version, request_type=request_type, transaction_id="t", peer_id="p")
    check(orjson.dumps({"PPSPTrackerProtocol": body}))
    body.pop("request_type")
    body["response_type"] = 0
    check(orjson.dumps({"PPSPTrackerProtocol": body}))


def paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a sub-value of a JSON value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths(child, (*prefix, index)))
    return found


def replaced(value: Any, path: tuple[Any, ...], new: object) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


@SETTINGS
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_examples(example: Path, data: st.DataObject) -> None:
    document = orjson.loads(example.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(document)))
        document = replaced(document, path, data.draw(json_values))
    check(orjson.dumps(document))


@SETTINGS
@given(mutated(st.sampled_from(EXAMPLES).map(Path.read_bytes), edits=4))
def test_byte_mutated_examples(data: bytes) -> None:
    check(data)


def test_examples_pass_the_fuzz_check() -> None:
    for example in EXAMPLES:
        check(example.read_bytes())


# --- a member named twice ----------------------------------------------------------------------


def written(value: object, repeat_at: tuple[object, ...], path: tuple[object, ...] = ()) -> bytes:
    """``value`` as JSON text, the first member of the object at ``repeat_at`` written twice
    (the second time with ``null``, so that a parser keeping either one reads another value)."""
    if isinstance(value, dict):
        members = [
            orjson.dumps(key) + b":" + written(child, repeat_at, (*path, key))
            for key, child in value.items()
        ]
        if path == repeat_at:
            members.append(orjson.dumps(next(iter(value))) + b":null")
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, list):
        children = (written(child, repeat_at, (*path, i)) for i, child in enumerate(value))
        return b"[" + b",".join(children) + b"]"
    return orjson.dumps(value)


@SETTINGS
@given(st.one_of(requests(V1, Encoding.JSON), requests(V2, Encoding.JSON)), st.data())
def test_a_member_named_twice_is_refused_wherever_it_is(
    msg: AnyRequest, data: st.DataObject
) -> None:
    document = orjson.loads(encode_request(msg))
    # Written member by member, the document reads as the request...
    assert decode_request(written(document, ("none",))) == msg
    objects = [p for p in paths(document) if isinstance(at(document, p), dict) and at(document, p)]
    repeat_at = data.draw(st.sampled_from(objects))
    # ...and with any one of its members named twice, it is refused, whatever the values.
    try:
        decode_request(written(document, repeat_at))
    except TrackerProtocolError as exc:
        assert exc.code is TrackerErrorCode.BAD_REQUEST
    else:
        raise AssertionError(f"a member named twice at {repeat_at} was read")


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value
