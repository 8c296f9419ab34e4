"""The NAT lab's pair figures from synthetic ``--report`` documents, and the per-peer record
they read (the address chunks went to and whether it was relayed)."""

from __future__ import annotations

from typing import Any

from ppsp.lab.nat_report import LabPeer, classify_pairs, nat_section, render_nat_markdown
from ppsp.peer.net.session import RemotePeer
from ppsp.wire.common import AddressType, PeerAddress, PeerInfo
from ppsp.wire.peer import TransportOffer

SWARM = "swarm-1"


def _report(
    peer_id: str,
    records: dict[str, dict[str, Any]],
    received: dict[str, int] | None = None,
    uploaded: dict[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    session = {
        "swarm_id": SWARM,
        "peer_id": peer_id,
        "peers": records,
        "received_from": received or {},
        "uploaded_to": uploaded or {},
    }
    return {"peer_id": peer_id, "sessions": [session], **extra}


def _record(transport: str | None = "HTTP", **fields: Any) -> dict[str, Any]:
    return {"transport": transport, "failures": 0, "relayed": False, **fields}


def test_pairs_are_classified_by_who_listed_whom_and_what_moved() -> None:
    peers = [
        # a (public) got chunks from b over HTTP, listed c and d, tried c twice.
        LabPeer(
            name="a",
            natted=False,
            report=_report(
                "A",
                {"B": _record(), "C": _record(None, failures=2), "D": _record(None)},
                received={"B": 100, "C": 0, "SRC": 50},
            ),
        ),
        # b (NATed) listed a only; its own counts say nothing of the bytes it gave a.
        LabPeer(name="b", natted=True, report=_report("B", {"A": _record(None)})),
        # c (NATed) got chunks from d through a relay; only d's count says so.
        LabPeer(
            name="c",
            natted=True,
            report=_report("C", {"D": _record("PPSPP", relayed=True)}),
        ),
        LabPeer(name="d", natted=True, report=_report("D", {}, uploaded={"C": 10})),
        # e listed nobody and nobody listed it: in no pair.
        LabPeer(name="e", natted=False, report=_report("E", {})),
    ]
    by_kind, total = classify_pairs(peers, SWARM)
    # Pairs: a-b (direct), a-c (never: a tried), a-d (not needed: nobody tried), c-d (relayed).
    counts = (total.total, total.direct, total.relayed, total.never, total.not_needed)
    assert counts == (4, 1, 1, 1, 1)
    assert total.idle == 0
    assert total.transports == {"HTTP": 1, "PPSPP": 1}
    nat_public = by_kind["nat-public"]
    assert (nat_public.direct, nat_public.never, nat_public.not_needed) == (1, 1, 1)
    assert (by_kind["nat-nat"].total, by_kind["nat-nat"].relayed) == (1, 1)
    assert by_kind["public-public"].total == 0


def test_a_peer_without_a_report_is_in_no_pair_and_is_named() -> None:
    peers = [
        LabPeer(name="a", natted=True, report=_report("A", {"B": _record()}, received={"B": 5})),
        LabPeer(name="b", natted=False, report=None),
    ]
    section = nat_section(peers, SWARM, {"peer_id": "SRC"}, 0.5)
    assert section["pairs"]["total"] == 0
    assert section["reports_missing"] == ["b"]
    assert section["behind_nat"] == 1 and section["natted"] == ["a"]


def test_the_section_counts_the_source_apart_and_renders() -> None:
    peers = [
        LabPeer(
            name="a",
            natted=True,
            report=_report(
                "A",
                {"SRC": _record("PPSPP"), "B": _record()},
                received={"SRC": 7, "B": 3},
                stun={"reflexive": "10.2.0.1:4000"},
            ),
        ),
        LabPeer(name="b", natted=False, report=_report("B", {"SRC": _record()})),
    ]
    source = {"peer_id": "SRC", "ppspp": {"data_sent": 12}}
    section = nat_section(peers, SWARM, source, 0.5)
    assert section["source"]["natted"] == {"peers": 1, "served": 1, "transports": {"PPSPP": 1}}
    assert section["source"]["public"] == {"peers": 1, "served": 0, "transports": {}}
    assert section["reflexive"] == {"a": "10.2.0.1:4000"}
    assert section["natted_pairs"]["direct"] == 1
    assert section["natted_pairs"]["shares"]["direct"] == 1.0
    text = render_nat_markdown({"nat": section})
    assert "1 of 2 peers behind a NAT" in text
    assert "| with a NATed peer | 1 | 1 (100%) | 0 (0%) | 0 (0%) | 0 (0%) |" in text
    assert "12 PPSPP chunks" in text
    assert render_nat_markdown({}) == ""


def test_a_pair_connected_through_a_relay_without_chunks_is_relayed_and_idle() -> None:
    relay = {"relayed": "10.1.2.1:50000", "ppspp": {"data_sent": 0}}
    peers = [
        # a reached b at b's relayed address; neither needed a chunk of the other.
        LabPeer(
            name="a",
            natted=True,
            symmetric=True,
            report=_report("A", {"B": _record("PPSPP", relayed=True, connected=True)}),
        ),
        LabPeer(name="b", natted=True, symmetric=True, report=_report("B", {}, relay=relay)),
        LabPeer(name="c", natted=True, report=_report("C", {"A": _record(None)})),
    ]
    _, total = classify_pairs(peers, SWARM)
    # a-b: relayed, idle; a-c: not needed.
    assert (total.relayed, total.idle, total.not_needed, total.never) == (1, 1, 1, 0)
    section = nat_section(peers, SWARM, {"peer_id": "SRC"}, 1.0, stun="s:3478", turn="s:3478")
    assert section["symmetric"] == ["a", "b"]
    assert section["relays"] == {"a": None, "b": "10.1.2.1:50000", "c": None}
    assert section["pairs"]["not_needed"] == 1 and section["pairs"]["idle"] == 1
    text = render_nat_markdown({"nat": section})
    assert "2 of them mapping each destination apart" in text
    assert "1 NATed peers allocated a TURN relay" in text
    assert "| nat-nat | 2 | 0 (0%) | 1 (50%) | 0 (0%) | 1 (50%) |" in text


def test_a_remote_s_record_names_the_address_chunks_went_to_and_whether_it_was_relayed() -> None:
    relay = PeerAddress(ip="10.9.0.1", port=5000, type=AddressType.PROXY, peer_protocol="PPSPP")
    info = PeerInfo(peer_id="r", addresses=(PeerAddress(ip="10.1.1.1", port=80), relay))
    remote = RemotePeer("r", info, "http://10.1.1.1:80")
    assert (remote.address, remote.relayed) == (None, False)  # not connected
    remote.offer = TransportOffer(type="HTTP", uri="http://10.1.1.1:80/chunk/{chunk}")
    assert (remote.address, remote.relayed) == ("10.1.1.1:80", False)
    remote.offer = TransportOffer(type="PPSPP", uri="ppspp://10.9.0.1:5000/" + "0" * 64)
    assert (remote.address, remote.relayed) == ("10.9.0.1:5000", True)


def test_a_live_source_s_ppspp_counts_are_read() -> None:
    peers = [LabPeer(name="a", natted=True, report=_report("A", {"SRC": _record("PPSPP")}))]
    source = {"peer_id": "SRC", "ppspp_live": {"data_sent": 9}}
    section = nat_section(peers, SWARM, source, 1.0)
    assert section["source_ppspp"] == {"data_sent": 9} and section["source_ppspp_live"]
    assert "The source sent 9 PPSPP chunks" in render_nat_markdown({"nat": section})
    seeder = nat_section(peers, SWARM, {"peer_id": "SRC", "ppspp": {"data_sent": 3}}, 1.0)
    assert not seeder["source_ppspp_live"]
