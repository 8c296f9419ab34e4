"""The lab's bookkeeping on hand-computed cases and synthetic reports."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ppsp.lab.report import (
    BaselineFigures,
    MiB,
    analyse_vod,
    byte_timeline,
    cdf,
    check_transfers,
    fluid_bound,
    render_markdown,
)

SWARM = "swarm-1"
SIZE = 4 * MiB


# -- the bound --------------------------------------------------------------------------------


def test_bound_aggregate_term_limits_a_large_swarm() -> None:
    # 16 peers, 32 MiB, source 4 MiB/s, peers 2 MiB/s: 16*32/(4+32) = 14.22 s > 32/4 = 8 s.
    bound = fluid_bound(32 * MiB, 4 * MiB, [2 * MiB] * 16)
    assert bound.source_term == pytest.approx(8.0)
    assert bound.download_term == 0.0
    assert bound.aggregate_term == pytest.approx(512 / 36)
    assert bound.seconds == pytest.approx(14.2222, abs=1e-4)
    assert bound.limiting == "aggregate"


def test_bound_source_term_limits_a_small_swarm() -> None:
    # 3 peers, 2 MiB, everyone at 1 MiB/s: F/u_s = 2 s, N*F/(u_s+sum) = 6/4 = 1.5 s.
    bound = fluid_bound(2 * MiB, 1 * MiB, [1 * MiB] * 3)
    assert bound.seconds == pytest.approx(2.0)
    assert bound.aggregate_term == pytest.approx(1.5)
    assert bound.limiting == "source"


def test_bound_download_term_uses_the_slowest_downloader() -> None:
    # d_min = 0.5 MiB/s: 10 MiB / 0.5 = 20 s beats 10/4 = 2.5 s and 3*10/(4+3*8) = 1.07 s.
    bound = fluid_bound(10 * MiB, 4 * MiB, [8 * MiB] * 3, [1 * MiB, 0.5 * MiB, None])
    assert bound.download_term == pytest.approx(20.0)
    assert bound.seconds == pytest.approx(20.0)
    assert bound.limiting == "download"


def test_bound_uncapped_rates_drop_their_terms() -> None:
    assert fluid_bound(MiB, None, [MiB]).seconds == 0.0
    bound = fluid_bound(MiB, MiB, [None, MiB])
    assert bound.aggregate_term == 0.0
    assert bound.seconds == pytest.approx(1.0)
    assert fluid_bound(MiB, MiB, [MiB], [None, None]).download_term == 0.0


def test_bound_heterogeneous_peer_rates_sum() -> None:
    # 4 peers at 1, 2, 3, 4 units, source 2: 4*12/(2+10) = 4 s; 12/2 = 6 s.
    bound = fluid_bound(12, 2.0, [1.0, 2.0, 3.0, 4.0])
    assert bound.aggregate_term == pytest.approx(4.0)
    assert bound.seconds == pytest.approx(6.0)


def test_bound_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        fluid_bound(-1, 1.0, [1.0])
    with pytest.raises(ValueError):
        fluid_bound(1, 0.0, [1.0])


# -- synthetic reports ------------------------------------------------------------------------


def report(
    peer_id: str,
    *,
    wall_offset: float = 1000.0,
    mode: str = "leech",
    joined_at: float = 0.0,
    completed_at: float | None = None,
    received_from: dict[str, int] | None = None,
    uploaded_to: dict[str, int] | None = None,
    arrivals: list[list[Any]] | None = None,
) -> dict[str, Any]:
    received = received_from or {}
    uploaded = uploaded_to or {}
    return {
        "peer_id": peer_id,
        "wall_offset": wall_offset,
        "sessions": [
            {
                "peer_id": peer_id,
                "swarm_id": SWARM,
                "mode": mode,
                "size": SIZE,
                "complete": mode == "seed" or completed_at is not None,
                "joined_at": joined_at,
                "completed_at": completed_at,
                "downloaded_bytes": sum(received.values()),
                "uploaded_bytes": sum(uploaded.values()),
                "received_from": received,
                "uploaded_to": uploaded,
                "arrivals": arrivals or [],
            }
        ],
    }


def swarm_of_three() -> tuple[dict[str, Any], list[tuple[str, dict[str, Any], bool]]]:
    """A source S and peers A, B, C; every count agrees; times on two different clocks."""
    half = SIZE // 2
    quarter = SIZE // 4
    source = report(
        "S", mode="seed", uploaded_to={"A": half, "B": quarter, "C": quarter}, wall_offset=5.0
    )
    # A's clock: wall = t + 1000; joins at wall 1010, completes at 1014.
    a = report(
        "A",
        joined_at=10.0,
        completed_at=14.0,
        received_from={"S": half, "B": half},
        uploaded_to={"B": half, "C": half},
        arrivals=[[11.0, "S", half], [13.0, "B", half]],
    )
    # B's clock: wall = t + 500; joins at wall 1011, completes at 1016.
    b = report(
        "B",
        wall_offset=500.0,
        joined_at=511.0,
        completed_at=516.0,
        received_from={"S": quarter, "A": half, "C": quarter},
        uploaded_to={"A": half, "C": quarter},
        arrivals=[[512.0, "S", quarter], [514.0, "A", half], [515.0, "C", quarter]],
    )
    # C joins at wall 1012, completes at 1017, leaves (churn).
    c = report(
        "C",
        joined_at=12.0,
        completed_at=17.0,
        received_from={"S": quarter, "A": half, "B": quarter},
        uploaded_to={"B": quarter},
        arrivals=[[12.5, "S", quarter], [15.0, "A", half], [16.0, "B", quarter]],
    )
    return source, [("peer-01", a, False), ("peer-02", b, False), ("peer-03", c, True)]


def lab_document(
    command: str, figures: dict[str, Any], plots: list[str] | None = None
) -> dict[str, Any]:
    """A report.json document of a three-peer vod run holding ``figures``."""
    return {
        "command": command,
        "parameters": {
            "peers": 3,
            "source_rate": MiB,
            "peer_rate": MiB,
            "download_rate": None,
            "join_spread": 2.0,
            "churn": 1 / 3,
            "seed": 1,
        },
        "figures": figures,
        "plots": plots or [],
    }


def test_figures_add_up_on_a_consistent_swarm() -> None:
    source, peers = swarm_of_three()
    figures = analyse_vod(
        swarm_id=SWARM,
        source=source,
        peers=peers,
        source_rate=1 * MiB,
        peer_rates=[1 * MiB] * 3,
    )
    assert figures.all_complete
    assert [p.completion_time for p in figures.peers] == [4.0, 5.0, 5.0]
    assert [p.joined_at for p in figures.peers] == [0.0, 1.0, 2.0]
    # Last completion: C at wall 1017, first join A at wall 1010.
    assert figures.last_completion == pytest.approx(7.0)
    # Bound: max(4/1, 3*4/(1+3)) = 4 s.
    assert figures.bound.seconds == pytest.approx(4.0)
    assert figures.ratio == pytest.approx(7.0 / 4.0)
    assert figures.delivered == 3 * SIZE
    assert figures.from_source == SIZE
    assert figures.source_share == pytest.approx(1 / 3)
    assert [p.from_source for p in figures.peers] == [SIZE // 2, SIZE // 4, SIZE // 4]
    assert [p.from_peers for p in figures.peers] == [SIZE // 2, 3 * SIZE // 4, 3 * SIZE // 4]
    assert figures.peers[2].churned
    # Startup and discovery: first chunk and first chunk from a peer, after each join.
    assert [p.first_byte for p in figures.peers] == [1.0, 1.0, 0.5]
    assert [p.first_peer_byte for p in figures.peers] == [3.0, 3.0, 3.0]
    assert [p.senders for p in figures.peers] == [2, 3, 3]
    assert figures.source_uploaded == SIZE
    check = figures.transfers
    assert check.consistent
    assert check.total_sent == check.total_received == 3 * SIZE
    assert check.unkept == 0 and not check.over_received
    assert check.unmatched_sent == check.unmatched_received == 0
    assert len(check.pairs) == 8


def test_timeline_is_cumulative_by_origin_on_one_clock() -> None:
    _, peers = swarm_of_three()
    timeline = byte_timeline([r for _, r, _ in peers], swarm_id=SWARM, source_id="S", t0=1010.0)
    assert timeline.times == (1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 5.0, 6.0)
    assert timeline.from_source[-1] == SIZE
    assert timeline.from_peers[-1] == 2 * SIZE
    assert list(timeline.from_source) == sorted(timeline.from_source)
    assert timeline.from_source[2] == SIZE  # all three source arrivals by t = 2.5


def test_mismatches_are_found_and_classified() -> None:
    source, peers = swarm_of_three()
    # The source counts 64 KiB more to A (a chunk A cancelled); C claims 1000 bytes more from B.
    source["sessions"][0]["uploaded_to"]["A"] += 65536
    peers[2][1]["sessions"][0]["received_from"]["B"] += 1000
    check = check_transfers([source, *(r for _, r, _ in peers)], SWARM)
    assert not check.consistent
    assert check.total_sent - check.total_received == 65536 - 1000
    assert {(m.sender, m.receiver, m.difference) for m in check.mismatches} == {
        ("S", "A", 65536),
        ("B", "C", -1000),
    }
    assert [(m.sender, m.receiver) for m in check.over_received] == [("B", "C")]
    assert check.unkept == 65536


def test_missing_report_is_unmatched_and_incomplete() -> None:
    source, peers = swarm_of_three()
    peers[1] = ("peer-02", None, False)  # type: ignore[assignment]
    figures = analyse_vod(
        swarm_id=SWARM, source=source, peers=peers, source_rate=MiB, peer_rates=[MiB] * 3
    )
    assert not figures.all_complete
    assert figures.last_completion is None and figures.ratio is None
    assert not figures.peers[1].reported
    check = figures.transfers
    # Everything sent to B or received from B has no other side to compare with.
    assert check.unmatched_sent == SIZE // 4 + SIZE // 2 + SIZE // 4
    assert check.unmatched_received == SIZE // 2 + SIZE // 4
    assert all("B" not in (p.sender, p.receiver) for p in check.pairs)


def test_incomplete_peer_has_no_completion_time() -> None:
    source, peers = swarm_of_three()
    session = peers[0][1]["sessions"][0]
    session["complete"] = False
    session["completed_at"] = None
    figures = analyse_vod(
        swarm_id=SWARM, source=source, peers=peers, source_rate=MiB, peer_rates=[MiB] * 3
    )
    assert figures.peers[0].completion_time is None
    assert not figures.all_complete


def test_cdf_counts_missing_values_in_the_denominator() -> None:
    assert cdf([3.0, 1.0, None, 2.0]) == [(1.0, 0.25), (2.0, 0.5), (3.0, 0.75)]
    assert cdf([]) == []


def test_baseline_last_completion_and_bound() -> None:
    baseline = BaselineFigures(
        rate=MiB, size=2 * MiB, joined_at=(0.0, 0.5, 1.0), completion_times=(2.0, 4.0, 5.5)
    )
    assert baseline.last_completion == pytest.approx(6.5)
    assert baseline.bound == pytest.approx(6.0)
    failed = BaselineFigures(rate=MiB, size=MiB, joined_at=(0.0, 1.0), completion_times=(1.0, None))
    assert failed.last_completion is None


def test_markdown_states_the_bound_ratio_share_and_misses() -> None:
    source, peers = swarm_of_three()
    baseline = BaselineFigures(
        rate=MiB, size=SIZE, joined_at=(0.0, 1.0, 2.0), completion_times=(4.0, 8.0, 11.0)
    )
    figures = analyse_vod(
        swarm_id=SWARM,
        source=source,
        peers=peers,
        source_rate=MiB,
        peer_rates=[MiB] * 3,
        baseline=baseline,
    )
    document = lab_document("ppsp lab vod --peers 3", figures.to_json(), ["completion_cdf.png"])
    text = render_markdown(document)
    assert "4.00 s" in text  # the bound
    assert "1.75x" in text  # the ratio
    assert "33.3%" in text  # the source share
    assert "13.00 s" in text  # the baseline's last completion
    assert "Completion target missed by 0.45x" in text
    assert "Source share target missed" in text
    assert "Every pair agrees." in text
    assert "![completion_cdf.png](completion_cdf.png)" in text
    targets = document["figures"]["targets"]
    assert targets["ratio_met"] is False and targets["source_share_met"] is False
    assert math.isclose(document["figures"]["bytes"]["source_share"], 1 / 3)


def test_cancelled_requests_and_discarded_bytes_are_summed() -> None:
    source, peers = swarm_of_three()
    peers[0][1]["sessions"][0].update(cancelled={"timeout": 2, "duplicate": 1}, discarded_bytes=7)
    peers[1][1]["sessions"][0].update(cancelled={"duplicate": 3}, discarded_bytes=5)
    figures = analyse_vod(
        swarm_id=SWARM, source=source, peers=peers, source_rate=1 * MiB, peer_rates=[1 * MiB] * 3
    )
    assert figures.peers[0].cancelled == {"timeout": 2, "duplicate": 1}
    assert figures.peers[2].cancelled == {} and figures.peers[2].discarded == 0
    assert figures.cancelled == {"duplicate": 4, "timeout": 2}
    document = figures.to_json()
    assert document["transfers"]["cancelled"] == {"duplicate": 4, "timeout": 2}
    assert document["transfers"]["discarded"] == 12
    text = render_markdown(lab_document("ppsp lab vod --peers 3", document))
    assert "Requests the peers gave up: duplicate 4, timeout 2" in text
    assert "bytes received and not kept: 12." in text


def test_a_run_behind_nat_is_held_to_the_nat_targets() -> None:
    """Peers behind NAT (``--nat``): 1.5x the bound and 20% from the source, not 1.3x and 15%."""
    source, peers = swarm_of_three()
    figures = analyse_vod(
        swarm_id=SWARM, source=source, peers=peers, source_rate=MiB, peer_rates=[MiB] * 3, nat=True
    )
    targets = figures.to_json()["targets"]
    assert (targets["ratio"], targets["source_share"]) == (1.5, 0.20)
    text = render_markdown(lab_document("ppsp lab vod --peers 3 --nat 0.75", figures.to_json()))
    assert "<= 1.50x" in text and "<= 20%" in text
    assert "<= 1.30x" not in text
    assert "Completion target missed by 0.25x" in text  # 1.75x against 1.5x
