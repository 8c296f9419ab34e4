"""The tracker's fast paths say and refuse exactly what their reference forms do.

The server encodes answers from string templates (XML) or without decoding its own output
(JSON, ``check=False``), keeps validated address fragments in caches and each listed entry's
written form in the entry, and samples swarms before ranking them.  These properties tie each
shortcut to the slower reference it replaces.
"""

from __future__ import annotations

import base64
import functools
import subprocess
import sys
import textwrap
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker_xml import templates
from ppsp.codecs.tracker_xml.write import encode_response_tree
from ppsp.errors import LocalProtocolError
from ppsp.tracker.peerlist import to_peer_infos
from ppsp.tracker.storage import SwarmMember
from ppsp.wire import fields
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.encoded import EncodedForms
from ppsp.wire.packed import PackedPeerInfo, pack, packed_peer_info
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    Encoding,
    ErrorResponse,
    FindRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    ProtocolVersion,
    TrackerResponse,
)
from wire.strategies import error_responses, tracker_responses

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V11 = ProtocolVersion.V1_1


def _kept_forms(info: PeerInfo) -> list[object]:
    """The forms the codecs keep in an entry, one per slot (None: nothing kept)."""
    return [getattr(info, name, None) for name in EncodedForms.__slots__]


def _outcome(encode: object, msg: object) -> bytes | str:
    """The bytes an encoder writes, or the name of the error it raises."""
    try:
        return encode(msg)  # type: ignore[operator,no-any-return]
    except LocalProtocolError:
        return "LocalProtocolError"


# -- XML: templates versus the element tree ------------------------------------------------------


@PROPERTY
@given(st.one_of(tracker_responses(), error_responses()))
def test_xml_templates_write_the_element_tree_bytes(
    message: TrackerResponse | ErrorResponse,
) -> None:
    assert xml_codec.encode_response(message) == encode_response_tree(message)
    # A second time: now the fragments come from the forms kept for entries and addresses.
    assert xml_codec.encode_response(message) == encode_response_tree(message)


def _response(address: PeerAddress, *, peer_id: str = "p1", swarm: str = "s1") -> TrackerResponse:
    return TrackerResponse(
        version=V11,
        transaction_id="1",
        requester=PeerInfo(
            peer_id="me",
            addresses=(PeerAddress(ip="10.0.0.1", port=1, type=AddressType.REFLEXIVE),),
        ),
        peers=(PeerInfo(peer_id=peer_id, addresses=(address,), swarm_id=swarm),),
    )


GOOD = PeerAddress(ip="192.0.2.1", port=1, peer_protocol="PPSP-PP/0.1")
BAD_ADDRESSES = [
    replace(GOOD, ip="not-an-ip"),
    replace(GOOD, ip="2001:db8::1"),  # family says IPv4
    replace(GOOD, port=65536),
    replace(GOOD, port=True),  # equal to port 1, and invalid
    replace(GOOD, port=1.0),  # type: ignore[arg-type]
    replace(GOOD, priority=-1),
    replace(GOOD, peer_protocol="a\x01b"),
    replace(GOOD, asn="x\x7f"),
    replace(GOOD, connection="c" * 600),
]


@pytest.mark.parametrize("encode", [xml_codec.encode_response, json_codec.encode_response])
@pytest.mark.parametrize("bad", BAD_ADDRESSES, ids=repr)
def test_a_cached_valid_address_never_stands_for_an_invalid_one(
    encode: object, bad: PeerAddress
) -> None:
    _outcome(encode, _response(GOOD))  # GOOD is now cached
    assert _outcome(encode, _response(bad)) == "LocalProtocolError"
    if encode is json_codec.encode_response:
        with pytest.raises(LocalProtocolError):
            json_codec.encode_response(_response(bad), check=False)


@pytest.mark.parametrize("field", ["peer_id", "swarm"])
def test_invalid_identifiers_are_refused_by_every_writer(field: str) -> None:
    with pytest.raises(LocalProtocolError):
        xml_codec.encode_response(_response(GOOD, **{field: "a b"}))
    msg = _response(GOOD, **{field: "a\x01b"})
    with pytest.raises(LocalProtocolError):
        json_codec.encode_response(msg)
    with pytest.raises(LocalProtocolError):
        json_codec.encode_response(msg, check=False)
    with pytest.raises(LocalProtocolError):
        json_codec.encode_response(replace(_response(GOOD), transaction_id=""), check=False)


def test_xml_address_cache_is_bounded() -> None:
    kept = templates._ADDRESS_FORMS
    for i in range(kept.limit + 10):
        address = PeerAddress(ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", port=1)
        xml_codec.encode_response(_response(address))
    assert len(kept) <= kept.limit


# -- JSON: check=False versus the decoding self-check ---------------------------------------------


@PROPERTY
@given(st.one_of(tracker_responses(Encoding.JSON), error_responses(Encoding.JSON)))
def test_json_unchecked_encoding_matches_the_checked_one(
    message: TrackerResponse | ErrorResponse,
) -> None:
    checked = _outcome(json_codec.encode_response, message)
    assert _outcome(lambda m: json_codec.encode_response(m, check=False), message) == checked
    if isinstance(checked, bytes):
        assert json_codec.decode_response(checked) == message


@PROPERTY
@given(
    st.lists(
        st.builds(
            PeerAddress,
            ip=st.sampled_from(["192.0.2.1", "::1", "::ffff:1.2.3.4", "1.2.3", "x", "fe80::1%1"]),
            port=st.one_of(st.integers(-1, 70000), st.booleans()),
            family=st.sampled_from(AddressFamily),
            priority=st.none() | st.integers(-1, 2**64),
            type=st.none() | st.sampled_from(AddressType),
            connection=st.none() | st.text(max_size=3),
            asn=st.none() | st.text(max_size=3),
            peer_protocol=st.none() | st.text(max_size=3),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_json_and_xml_address_validation_agree_with_their_references(
    addresses: list[PeerAddress],
) -> None:
    msg = TrackerResponse(
        version=V11,
        transaction_id="1",
        peers=tuple(
            PeerInfo(peer_id="p", addresses=(a,), swarm_id="s")
            for a in addresses
            if a.type is not AddressType.REFLEXIVE
        ),
    )
    checked = _outcome(json_codec.encode_response, msg)
    assert _outcome(lambda m: json_codec.encode_response(m, check=False), msg) == checked
    assert _outcome(xml_codec.encode_response, msg) == _outcome(encode_response_tree, msg)


@PROPERTY
@given(tracker_responses(Encoding.JSON), st.sampled_from(["s", None]))
def test_json_answers_listing_one_swarm_match_the_checked_encoding(
    message: TrackerResponse, swarm_id: str | None
) -> None:
    # The unchecked writer's shortcut for one swarm's peers without results (FIND, JOIN).
    one_swarm = replace(
        message, results=(), peers=tuple(replace(p, swarm_id=swarm_id) for p in message.peers)
    )
    checked = _outcome(json_codec.encode_response, one_swarm)
    assert _outcome(lambda m: json_codec.encode_response(m, check=False), one_swarm) == checked


def test_peer_info_caches_tell_apart_peers_and_swarms_sharing_addresses() -> None:
    shared = (GOOD,)
    for peer_id, swarm in [("p1", "s1"), ("p2", "s1"), ("p1", "s2"), ("p1", "s1")]:
        msg = replace(
            _response(GOOD),
            peers=(PeerInfo(peer_id=peer_id, addresses=shared, swarm_id=swarm),),
        )
        assert xml_codec.encode_response(msg) == encode_response_tree(msg)
        assert json_codec.encode_response(msg, check=False) == json_codec.encode_response(msg)


# -- Chunk maps: one reader for every codec -----------------------------------------------------


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
        st.text(alphabet="ABCab+/=\n 019", max_size=20),
    ),
    st.integers(-1, 330),
)
def test_chunk_maps_decode_as_the_bitmap_class_does(text: str, size: int) -> None:
    """``fields.chunkmap_bytes``, which every codec reads chunk maps with, reads what the bitmap
    class reads, and refuses what it refuses."""
    try:
        found: bytes | None = fields.chunkmap_bytes(text, size)
    except ValueError:
        found = None
    try:
        expected: bytes | None = ChunkBitmap.from_base64(text, size).to_bytes()
    except ValueError:
        expected = None
    assert found == expected


def test_namespaced_attributes_are_read_by_local_name() -> None:
    body = (
        b'<PPSPTrackerProtocol xmlns:p="urn:x" p:version="1.1"><Request>FIND</Request>'
        b"<TransactionID>1</TransactionID><PeerID>a</PeerID><SwarmID>s</SwarmID>"
        b'<PeerNum p:abilityNAT="HIGH">3</PeerNum></PPSPTrackerProtocol>'
    )
    request = xml_codec.decode_request(body)
    assert isinstance(request, FindRequest)
    assert request.version is V11
    assert request.peer_num is not None and request.peer_num.ability_nat == "HIGH"


# -- entries kept in members, encoded forms kept in entries ---------------------------------------


def test_an_unchanged_member_is_listed_as_the_same_entry() -> None:
    member = SwarmMember(peer_id="p1", mode=PeerMode.LEECH, addresses=(GOOD,))
    first = to_peer_infos([member], "s1")[0]
    assert to_peer_infos([member], "s1")[0] is first
    assert first == PeerInfo(peer_id="p1", addresses=(GOOD,), swarm_id="s1")
    # Listed for another swarm: an entry of that swarm, never the kept one.
    other = to_peer_infos([member], "s2")[0]
    assert other == PeerInfo(peer_id="p1", addresses=(GOOD,), swarm_id="s2")
    # A member whose addresses changed is a new object: a new entry.
    moved = replace(member, addresses=(replace(GOOD, port=2),))
    assert to_peer_infos([moved], "s2")[0].addresses == moved.addresses
    # An equal copy is another member: its own entry, equal to the kept one.
    copy = replace(member)
    assert copy == member
    assert to_peer_infos([copy], "s1")[0] == first


@pytest.mark.parametrize(
    "encode",
    [xml_codec.encode_response, lambda m: json_codec.encode_response(m, check=False)],
    ids=["xml", "json"],
)
def test_an_entry_encoded_twice_writes_the_same_bytes_as_a_fresh_entry(encode: Any) -> None:
    msg = _response(GOOD)
    first = encode(msg)
    assert encode(msg) == first  # from the form kept in the entry
    fresh = replace(msg, peers=tuple(replace(p) for p in msg.peers))
    assert encode(fresh) == first
    # The same entry in another answer (other transaction ID, requester) is still right.
    other = replace(msg, transaction_id="2", requester=None)
    assert encode(other) == encode(replace(other, peers=tuple(replace(p) for p in other.peers)))


@pytest.mark.parametrize("encode", [xml_codec.encode_response, json_codec.encode_response])
@pytest.mark.parametrize("bad", BAD_ADDRESSES, ids=repr)
def test_an_invalid_entry_keeps_no_form_and_is_refused_every_time(
    encode: object, bad: PeerAddress
) -> None:
    msg = _response(bad)
    for _ in range(2):
        assert _outcome(encode, msg) == "LocalProtocolError"
        if encode is json_codec.encode_response:
            with pytest.raises(LocalProtocolError):
                json_codec.encode_response(msg, check=False)
    assert _kept_forms(msg.peers[0]) == [None, None]


def test_kept_forms_are_not_part_of_an_entry_value() -> None:
    info = PeerInfo(peer_id="p1", addresses=(GOOD,), swarm_id="s1")
    xml_codec.encode_response(replace(_response(GOOD), peers=(info,)))
    json_codec.encode_response(replace(_response(GOOD), peers=(info,)), check=False)
    assert None not in _kept_forms(info)
    copy = replace(info)
    assert copy == info and hash(copy) == hash(info) and repr(copy) == repr(info)
    assert _kept_forms(copy) == [None, None]
    with pytest.raises((AttributeError, TypeError)):
        setattr(info, EncodedForms.__slots__[0], "x")


# -- plain identifiers: listed entries written without checks per character ---------------------

EDGE_IDS = [
    *(f"a{chr(code)}b" for code in range(0x20, 0x7F)),  # every printable ASCII in the middle
    "x" * fields.MAX_TOKEN_LENGTH,
    "x" * (fields.MAX_TOKEN_LENGTH + 1),
    "é",
    "a\u0085b",
    "ALL",
    "nil",
    "",
]


@pytest.mark.parametrize("swarm", ["s1", "s&1", "ALL", "nil", "a b"])
def test_listed_entries_write_what_the_reference_writers_write(swarm: str) -> None:
    # Fresh entries (nothing kept) take the plain writers when their IDs are plain ASCII; the
    # bytes, or the refusal, are the element tree's (XML) and the self-checked encoding's
    # (JSON) for IDs at every edge of the plain alphabets.
    for peer_id in EDGE_IDS:
        msg = _response(replace(GOOD, port=2), peer_id=peer_id, swarm=swarm)
        assert _outcome(xml_codec.encode_response, msg) == _outcome(encode_response_tree, msg)
        msg = _response(replace(GOOD, port=2), peer_id=peer_id, swarm=swarm)
        fast = _outcome(lambda m: json_codec.encode_response(m, check=False), msg)
        assert fast == _outcome(json_codec.encode_response, msg), peer_id


def test_plain_identifiers_are_written_without_the_token_table() -> None:
    # At 100,000 peers the IDs of the peers listed do not fit a bounded table: plain ones
    # (printable ASCII without markup characters) are written directly, not kept (issue 16).
    templates._TOKEN_CACHE.clear()
    for i in range(50):
        xml_codec.encode_response(_response(GOOD, peer_id=f"peer{i:05d}", swarm="swarm-1"))
    assert templates._TOKEN_CACHE == {}
    xml_codec.encode_response(_response(GOOD, peer_id="p&q", swarm="swarm-1"))
    assert len(templates._TOKEN_CACHE) == 1  # one that needs escaping is still kept


# -- packed entries: written from the bytes, the same as the unpacked entry ----------------------


def _packed_like(message: TrackerResponse) -> TrackerResponse:
    """``message`` with every listed peer whose addresses pack carried packed
    (:class:`~ppsp.wire.packed.PackedPeerInfo`, as the memory storage's peer lists carry them)."""
    peers = []
    for info in message.peers:
        packed = pack(info.addresses) if info.peer_id is not None else None
        peers.append(packed_peer_info(info.peer_id, packed, info.swarm_id) if packed else info)
    return replace(message, peers=tuple(peers))


@PROPERTY
@given(tracker_responses(), tracker_responses(Encoding.JSON))
def test_packed_entries_are_written_as_their_unpacked_entries(
    xml_message: TrackerResponse, json_message: TrackerResponse
) -> None:
    """Both codecs write an entry from its packed addresses byte for byte as they write the
    unpacked entry, and refuse what they refuse of it (IDs and shapes of every kind, IPv6 and
    other unpacked addresses beside packed ones)."""
    for encode, message in (
        (xml_codec.encode_response, xml_message),
        (encode_response_tree, xml_message),
        (json_codec.encode_response, json_message),
        (functools.partial(json_codec.encode_response, check=False), json_message),
    ):
        packed = _packed_like(message)
        assert packed == message
        assert _outcome(xml_codec.encode_response, packed) == _outcome(
            encode_response_tree, message
        )
        expected = _outcome(encode, message)
        assert _outcome(encode, packed) == expected
        # A second time: now from the forms kept in the entries.
        assert _outcome(encode, packed) == expected


@pytest.mark.usefixtures("fresh_packed_tables")
def test_a_packed_entry_is_written_without_unpacking_its_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The common entry (plain IDs, an advertised address and the observed one) is written
    from the bytes: reading its addresses (building them) is not needed."""
    addresses = (
        PeerAddress(ip="10.1.2.3", port=7001, type=AddressType.HOST, peer_protocol="PPSP-PP/0.1"),
        PeerAddress(ip="192.0.2.7", port=40001, type=AddressType.REFLEXIVE),
    )
    packed = pack(addresses)
    assert packed is not None
    plain = TrackerResponse(
        version=V11,
        transaction_id="1",
        peers=(PeerInfo(peer_id="peer-1", addresses=addresses, swarm_id="swarm-1"),),
    )
    # The tracker's own use of the JSON codec: each value checked as it is written.
    expected = [xml_codec.encode_response(plain), json_codec.encode_response(plain, check=False)]

    def unpacked(self: PackedPeerInfo) -> tuple[PeerAddress, ...]:
        raise AssertionError("the packed entry's addresses were built")

    monkeypatch.setattr(PackedPeerInfo, "addresses", property(unpacked))
    listed = replace(plain, peers=(packed_peer_info("peer-1", packed, "swarm-1"),))
    written = [xml_codec.encode_response(listed), json_codec.encode_response(listed, check=False)]
    assert written == expected


@pytest.mark.usefixtures("fresh_packed_tables")
@pytest.mark.parametrize(
    "swarms", [("swarm-1", "swarm-1"), ("swarm-1", "swarm-2"), ("s%d", "ALL"), ("", "swarm-1")]
)
def test_packed_entries_with_percent_signs_and_swarms_in_turn_are_written_as_unpacked(
    swarms: tuple[str, str],
) -> None:
    """Entries written by a layout's template: a ``%`` in an ID or in a shape's fields is text,
    and each entry's swarm ID is checked (a reserved one refused) whatever the entry before
    it carried."""
    addresses = (
        PeerAddress(ip="10.1.2.3", port=7001, type=AddressType.HOST, connection="5%-lte"),
        PeerAddress(ip="192.0.2.7", port=40001, type=AddressType.REFLEXIVE, peer_protocol="%s%d"),
    )
    packed = pack(addresses)
    assert packed is not None
    plain = TrackerResponse(
        version=V11,
        transaction_id="1",
        peers=tuple(
            PeerInfo(peer_id=f"peer-{n}%s", addresses=addresses, swarm_id=swarm)
            for n, swarm in enumerate(swarms)
        ),
    )
    listed = replace(
        plain,
        peers=tuple(packed_peer_info(p.peer_id, packed, p.swarm_id) for p in plain.peers),
    )
    for encode in (
        xml_codec.encode_response,
        json_codec.encode_response,
        functools.partial(json_codec.encode_response, check=False),
    ):
        assert _outcome(encode, listed) == _outcome(encode, plain)
    assert _outcome(xml_codec.encode_response, listed) == _outcome(encode_response_tree, plain)


def test_the_first_packed_entry_a_process_writes_has_its_swarm_id_checked() -> None:
    """The swarm ID checked once per answer: in a fresh process nothing counts as checked yet,
    not even the empty string (a swarm ID no answer may carry)."""
    code = textwrap.dedent(
        """
        from ppsp.codecs import tracker_xml
        from ppsp.errors import LocalProtocolError
        from ppsp.wire.common import PeerInfo
        from ppsp.wire.packed import pack, packed_peer_info
        from ppsp.wire.tracker import AddressType, PeerAddress, ProtocolVersion, TrackerResponse

        addresses = (PeerAddress(ip="10.1.2.3", port=7001, type=AddressType.HOST),)
        entry = packed_peer_info("peer-1", pack(addresses), "")
        answer = TrackerResponse(version=ProtocolVersion.V1_1, transaction_id="1", peers=(entry,))
        try:
            tracker_xml.encode_response(answer)
        except LocalProtocolError:
            print("refused")
        else:
            print("written")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "refused"
