"""A tracker request's ContentGroup in both codecs: each range read once, at most
``MAX_SCOPE_ITEMS`` distinct ranges (the cost of a chunk-scoped peer list grows with them)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppsp.codecs import tracker_json, tracker_xml
from ppsp.errors import BadRequest, LocalProtocolError
from ppsp.wire.fields import MAX_SCOPE_ITEMS, distinct_scope
from ppsp.wire.tracker import FindRequest, ProtocolVersion, RepresentationScope
from wire.strategies import scopes

V11 = ProtocolVersion.V1_1


def xml_find(items: list[RepresentationScope]) -> bytes:
    group = "".join(
        f"<Representation id={quoteattr(item.representation_id)}>"
        f'<SegmentInfo startIndex="{item.start_index}"'
        + ("" if item.end_index is None else f' endIndex="{item.end_index}"')
        + "/></Representation>"
        for item in items
    )
    return (
        '<PPSPTrackerProtocol version="1.1"><Request>FIND</Request><PeerID>p</PeerID>'
        f"<TransactionID>7</TransactionID><SwarmID>{escape('s')}</SwarmID>"
        f"<ContentGroup>{group}</ContentGroup></PPSPTrackerProtocol>"
    ).encode()


def json_find(items: list[RepresentationScope]) -> bytes:
    group = [
        {"representation_id": item.representation_id, "start_index": item.start_index}
        | ({} if item.end_index is None else {"end_index": item.end_index})
        for item in items
    ]
    find = {"swarm_id": "s", "content_group": group}
    return orjson.dumps(
        {
            "PPSPTrackerProtocol": {
                "version": 2,
                "request_type": "FIND",
                "transaction_id": "7",
                "peer_id": "p",
                "find": find,
            }
        }
    )


READERS = [
    pytest.param(xml_find, tracker_xml.decode_request, id="xml"),
    pytest.param(json_find, tracker_json.decode_request, id="json"),
]

ONE = RepresentationScope(representation_id="r", start_index=0)


@pytest.mark.parametrize(("write", "read"), READERS)
def test_a_range_repeated_is_read_once(write: object, read: object) -> None:
    # The review's FIND: one representation named 256 times (the most a group may hold).
    message = read(write([ONE] * 256))  # type: ignore[operator]
    assert isinstance(message, FindRequest)
    assert message.content_group == (ONE,)


@pytest.mark.parametrize(("write", "read"), READERS)
def test_more_distinct_ranges_than_the_bound_are_a_bad_request(write: object, read: object) -> None:
    items = [RepresentationScope(representation_id=f"r{i}", start_index=i) for i in range(16)]
    assert len(read(write(items)).content_group) == MAX_SCOPE_ITEMS  # type: ignore[operator]
    extra = RepresentationScope(representation_id="r16", start_index=0)
    with pytest.raises(BadRequest) as info:
        read(write([*items, extra]))  # type: ignore[operator]
    assert info.value.transaction_id == "7"


CODECS = [
    pytest.param(tracker_xml.encode_request, tracker_xml.decode_request, id="xml"),
    pytest.param(tracker_json.encode_request, tracker_json.decode_request, id="json"),
]


@pytest.mark.parametrize(("encode", "decode"), CODECS)
def test_writers_write_each_range_once_and_refuse_past_the_bound(
    encode: object, decode: object
) -> None:
    def find(*scope: RepresentationScope) -> FindRequest:
        return FindRequest(
            version=V11, transaction_id="7", peer_id="p", swarm_id="s", content_group=scope
        )

    assert decode(encode(find(ONE, ONE))).content_group == (ONE,)  # type: ignore[operator]
    many = [RepresentationScope(representation_id="r", start_index=i) for i in range(17)]
    with pytest.raises(LocalProtocolError):
        encode(find(*many))  # type: ignore[operator]


@given(
    st.lists(scopes(), min_size=1, max_size=MAX_SCOPE_ITEMS + 3, unique=True).flatmap(
        lambda pool: st.lists(st.sampled_from(pool), max_size=60)
    )
)
def test_both_codecs_read_a_group_as_its_distinct_ranges_in_order(
    items: list[RepresentationScope],
) -> None:
    distinct = tuple(dict.fromkeys(items))
    for write, read in (
        (xml_find, tracker_xml.decode_request),
        (json_find, tracker_json.decode_request),
    ):
        if len(distinct) > MAX_SCOPE_ITEMS:
            with pytest.raises(BadRequest):
                read(write(items))
            with pytest.raises(ValueError):
                distinct_scope(items)
        else:
            message = read(write(items))
            assert isinstance(message, FindRequest)
            assert message.content_group == distinct == distinct_scope(items)
