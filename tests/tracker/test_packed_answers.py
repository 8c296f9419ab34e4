"""Packed peers answer as unpacked ones: the memory backend's packed addresses (issue 16).

The memory backend keeps a peer's addresses packed (``wire/packed.py``) and the codecs write
a listed peer's addresses from per-shape templates when its entry is no longer kept
(``peerlist.LISTED``).  For random registrations, a FIND's answer is the same, byte for byte,
whether the addresses were packed or kept as they came, and whether written by the templates or
by the general writers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker_json import encode as json_encode
from ppsp.codecs.tracker_xml.write import encode_response_tree
from ppsp.tracker import peerlist
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage import memory_records
from ppsp.tracker.storage.base import PeerRecord
from ppsp.tracker.storage.memory import MemoryStorage
from ppsp.tracker.storage.memory_swarms import stored_of
from ppsp.wire import packed as packed_module
from ppsp.wire.fields import canonical_ip
from ppsp.wire.packed import MAX_LAYOUTS, MAX_SHAPES, forget_kept, pack, unpack
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ConnectRequest,
    FindRequest,
    PeerAddress,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

tokens = st.text(alphabet="abcXYZ09-._:/&<>\"'", min_size=1, max_size=8)
ipv4 = st.ip_addresses(v=4).map(str)
# As decoders hand them over: in canonical text.
ipv6 = st.ip_addresses(v=6).map(lambda address: canonical_ip(str(address), 6)[0])


@st.composite
def addresses(draw: st.DrawFn) -> PeerAddress:
    """An address a peer may advertise: mostly IPv4, sometimes IPv6, any shape."""
    family = draw(st.sampled_from([AddressFamily.IPV4] * 4 + [AddressFamily.IPV6]))
    ip = draw(ipv4 if family is AddressFamily.IPV4 else ipv6)
    return PeerAddress(
        ip=ip,
        port=draw(st.integers(1, 65535)),
        family=family,
        priority=draw(st.none() | st.integers(0, 1000)),
        type=draw(st.sampled_from([None, AddressType.HOST, AddressType.PROXY])),
        connection=draw(st.none() | tokens),
        asn=draw(st.none() | tokens),
        peer_protocol=draw(st.none() | st.sampled_from(["PPSP-PP/0.1", "PPSPP"]) | tokens),
    )


@pytest.fixture(autouse=True)
def fresh_tables() -> Iterator[None]:
    """Each example starts with no kept entry and no kept tuple."""
    peerlist.LISTED.clear()
    forget_kept()
    yield
    peerlist.LISTED.clear()
    forget_kept()


def run(coro: Any) -> Any:
    """Run a coroutine of the memory backend (it never suspends)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("suspended")


def find_answer(
    registrations: list[tuple[PeerAddress, ...]], seed: int
) -> tuple[TrackerResponse, int]:
    """Register each peer (a fast CONNECT into swarm ``s``), then the last one's FIND; the
    answer and how many peers the storage keeps packed."""
    storage = MemoryStorage(seed=seed)
    tracker = Tracker(
        storage,
        TrackerConfig(limits=DEFAULT_LIMITS.off()),
        rng=random.Random(seed),
    )
    for i, advertised in enumerate(registrations):
        run(
            tracker.handle(
                ConnectRequest(
                    version=V11,
                    transaction_id="1",
                    peer_id=f"{i:016x}",
                    peer_addresses=advertised,
                    swarm_actions=(
                        SwarmAction(
                            swarm_id="s", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH
                        ),
                    ),
                ),
                observed=(f"192.0.{i // 250}.{i % 250 + 1}", 40000 + i),
                now=10.0,
            )
        )
    last = len(registrations) - 1
    answer = run(
        tracker.handle(
            FindRequest(
                version=V11,
                transaction_id="2",
                peer_id=f"{last:016x}",
                swarm_id="s",
                peer_num=PeerNum(count=30),
            ),
            observed=(f"192.0.{last // 250}.{last % 250 + 1}", 40000 + last),
            now=11.0,
        )
    )
    assert isinstance(answer, TrackerResponse)
    return answer, sum(isinstance(stored_of(peer), bytes) for peer in storage._peers.values())


def encodings(answer: TrackerResponse) -> dict[str, bytes]:
    """The answer as the server writes it, in both encodings."""
    return {
        "xml": xml_codec.encode_response(answer),
        "json": json_codec.encode_response(answer, check=False),
    }


@PROPERTY
@given(
    registrations=st.lists(st.lists(addresses(), max_size=3).map(tuple), min_size=2, max_size=25),
    seed=st.integers(0, 1000),
)
def test_a_find_answers_the_same_bytes_whether_addresses_are_packed_or_not(
    registrations: list[tuple[PeerAddress, ...]], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed, packed_peers = find_answer(registrations, seed)
    written = encodings(packed)
    # The general path: the storage keeps every tuple as it came, each entry written anew.
    peerlist.LISTED.clear()
    forget_kept()
    with monkeypatch.context() as patch:
        patch.setattr(memory_records, "pack", lambda addresses: None)
        unpacked, none_packed = find_answer(registrations, seed)
    # Every peer has its IPv4 REFLEXIVE address: packed unless it advertised an IPv6 one (or
    # the process's table of shapes or of layouts is full: the examples of the whole run fill
    # them).
    assert none_packed == 0
    assert (
        packed_peers
        >= sum(
            all(a.family is AddressFamily.IPV4 for a in advertised) for advertised in registrations
        )
        or len(packed_module._SHAPES) >= MAX_SHAPES
        or len(packed_module._LAYOUTS) >= MAX_LAYOUTS
    )
    assert unpacked == packed
    assert encodings(unpacked) == written
    # The templates write what the general writers write.
    assert written["xml"] == encode_response_tree(packed)
    assert written["json"] == json_codec.encode_response(packed, check=True)
    # And every listed peer reads back with the addresses it was stored with.
    assert xml_codec.decode_response(written["xml"]).peers == packed.peers


@PROPERTY
@given(st.lists(addresses() | ipv4.map(lambda ip: PeerAddress(ip=ip, port=1)), max_size=4))
def test_packed_addresses_read_back_equal(items: list[PeerAddress]) -> None:
    found = pack(tuple(items))
    if found is None:
        assert any(a.family is AddressFamily.IPV6 for a in items) or (
            len(packed_module._SHAPES) >= MAX_SHAPES or len(packed_module._LAYOUTS) >= MAX_LAYOUTS
        )
        return
    assert len(found) == (2 + 6 * len(items) if items else 0)
    assert unpack(found) == tuple(items)
    forget_kept()
    assert unpack(found) == tuple(items)  # built again, not kept


@pytest.mark.parametrize(
    "ip", ["010.0.0.1", "1.2.3", "10.0.0.256", "+1.2.3.4", "1_0.0.0.1", " 1.2.3.4", "::1"]
)
def test_addresses_that_would_not_read_back_equal_are_not_packed(ip: str) -> None:
    assert pack((PeerAddress(ip=ip, port=7000),)) is None


@pytest.mark.parametrize("port", [0, 65536, True])
def test_ports_out_of_bounds_are_not_packed(port: int) -> None:
    assert pack((PeerAddress(ip="10.0.0.1", port=port),)) is None


@PROPERTY
@given(addresses())
def test_json_address_template_writes_the_general_writers_object(address: PeerAddress) -> None:
    written = json_encode._address_template(address)
    if written is not None:
        assert written == json_encode._checked_address_json(address)
        assert list(written) == list(json_encode._address_json(address))


def test_a_full_table_of_shapes_keeps_further_addresses_unpacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packed_module, "_SHAPES", [])
    monkeypatch.setattr(packed_module, "_SHAPE_IDS", {})
    monkeypatch.setattr(packed_module, "_LAYOUTS", [])
    monkeypatch.setattr(packed_module, "_LAYOUT_IDS", {})
    monkeypatch.setattr(packed_module, "MAX_SHAPES", 2)
    # The kept tuples and packed forms name shapes and layouts: tables of this test's own.
    monkeypatch.setattr(packed_module, "_unpacked", [{}, {}])
    monkeypatch.setattr(packed_module, "_pieces", [{}, {}])
    storage = MemoryStorage()
    records = []
    for i in range(4):
        # Each peer claims its own ASN: a shape of its own.
        address = PeerAddress(ip=f"10.0.0.{i}", port=7000, asn=f"AS{i}")
        reflexive = PeerAddress(ip=f"10.0.0.{i}", port=7000, type=AddressType.REFLEXIVE)
        record = PeerRecord(
            peer_id=f"p{i}",
            version=V11,
            state=PeerState.TRACKING,
            addresses=(address, reflexive),
            deadline=10.0,
        )
        records.append(record)
        run(storage.update(record, join=(("s", PeerMode.LEECH),)))
    kept = [stored_of(storage._peers[f"p{i}"]) for i in range(4)]
    # The REFLEXIVE shape and AS0 fill the table: only the first peer is packed.
    assert isinstance(kept[0], bytes)
    assert all(isinstance(held, tuple) for held in kept[1:])
    for record in records:
        assert run(storage.get_peer(record.peer_id)) == record
    members = {member.peer_id: member for member in run(storage.members("s"))}
    assert {m.peer_id: m.addresses for m in members.values()} == {
        r.peer_id: r.addresses for r in records
    }


def test_a_full_table_of_layouts_keeps_further_peers_unpacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Addresses are packed as 2 bytes of layout (the sequence of their shapes) and 6 bytes
    each; a sequence of shapes the full table of layouts lacks is kept as it came."""
    monkeypatch.setattr(packed_module, "_LAYOUTS", [])
    monkeypatch.setattr(packed_module, "_LAYOUT_IDS", {})
    monkeypatch.setattr(packed_module, "_unpacked", [{}, {}])
    monkeypatch.setattr(packed_module, "MAX_LAYOUTS", 1)
    one = PeerAddress(ip="10.0.0.1", port=7000)
    reflexive = PeerAddress(ip="10.0.0.2", port=4000, type=AddressType.REFLEXIVE)
    packed = pack((one, reflexive))
    assert packed is not None and len(packed) == 14 and packed[-2:] == (4000).to_bytes(2, "big")
    assert pack((replace(one, port=1), replace(reflexive, ip="10.9.9.9"))) is not None  # same
    assert pack((reflexive, one)) is None  # another layout: the table is full
    assert pack(()) == b"" and unpack(b"") == ()
    assert unpack(packed) == (one, reflexive)
