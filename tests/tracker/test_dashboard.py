"""The dashboard's sans-I/O part: figures, masking, coverage, the history ring, the API's input."""

from __future__ import annotations

import random

import pytest

from ppsp.errors import DashboardRequestError
from ppsp.tracker import dashboard
from ppsp.tracker.dashboard import (
    AddressDisplay,
    History,
    RecentReads,
    SwarmFigures,
    SwarmKind,
    map_coverage,
    parse_page,
    parse_swarm_id,
    peer_rows,
    show_address,
    swarm_figures,
    viewer_qoe,
)
from ppsp.tracker.storage import swarm_index
from ppsp.tracker.storage.base import MemberView, StorageCounts, SwarmMember, SwarmView
from ppsp.wire.fields import MAX_INTEGER
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    PeerMode,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)

MASKED, FULL = AddressDisplay.MASKED, AddressDisplay.FULL


def address(ip: str, port: int = 7000, kind: AddressType = AddressType.HOST) -> PeerAddress:
    family = AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4
    return PeerAddress(ip=ip, port=port, family=family, type=kind)


def cmap(representation: str, size: int, bitmap: bytes, start: int = 0) -> ContentMap:
    return ContentMap(
        swarm_id="s",
        representations=(
            RepresentationMap(
                representation_id=representation,
                segments=(
                    SegmentMap(
                        start_index=start,
                        end_index=start + size - 1,
                        chunkmap_size=size,
                        bitmap=bitmap,
                    ),
                ),
            ),
        ),
    )


def member(
    peer_id: str,
    mode: PeerMode = PeerMode.LEECH,
    *,
    stats: StreamStatistics | None = None,
    content_map: ContentMap | None = None,
    addresses: tuple[PeerAddress, ...] = (),
) -> MemberView:
    return MemberView(
        member=SwarmMember(
            peer_id=peer_id, mode=mode, addresses=addresses, content_map=content_map
        ),
        stats=stats,
    )


def viewer_stats(**extra: str) -> StreamStatistics:
    return StreamStatistics(swarm_id="s", extra=tuple(extra.items()))


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "masked", "full"),
    [
        ("192.0.2.17", "192.0.2.x", "192.0.2.17:7000"),
        ("127.0.0.1", "127.0.0.x", "127.0.0.1:7000"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48", "[2001:db8:1234:5678::1]:7000"),
        ("::1", "::/48", "[::1]:7000"),
        ("::ffff:198.51.100.7", "198.51.100.x", "198.51.100.7:7000"),
        ("not-an-ip", "(not an address)", "(not an address)"),
    ],
)
def test_addresses_are_masked_unless_shown_full(ip: str, masked: str, full: str) -> None:
    assert show_address(address(ip), MASKED) == masked
    assert show_address(address(ip), FULL) == full


def test_a_masked_address_says_nothing_of_the_host_or_port() -> None:
    shown = {show_address(address(f"203.0.113.{i}", 1000 + i), MASKED) for i in range(256)}
    assert shown == {"203.0.113.x"}
    shown = {show_address(address(f"2001:db8:7::{i:x}", i + 1), MASKED) for i in range(100)}
    assert shown == {"2001:db8:7::/48"}


# -- coverage and QoE ---------------------------------------------------------------------------


def test_coverage_counts_held_chunks_of_what_the_map_describes() -> None:
    assert map_coverage(None) is None
    assert map_coverage(cmap("main", 12, b"\xff\xf0")) == (12, 12)
    assert map_coverage(cmap("main", 12, b"\xa0\x10")) == (3, 12)
    # Bits past the size are never counted, whatever a map holds there.
    assert map_coverage(cmap("main", 4, b"\x0f")) == (0, 4)
    both = ContentMap(
        swarm_id="s",
        representations=(
            *cmap("a", 8, b"\x0f").representations,
            *cmap("b", 3, b"\xe0").representations,
        ),
    )
    assert map_coverage(both) == (7, 11)
    assert map_coverage(ContentMap(swarm_id="s", representations=())) == (0, 0)


def test_viewer_qoe_reads_what_live_viewers_report() -> None:
    assert viewer_qoe(None) is None
    assert viewer_qoe(StreamStatistics(swarm_id="s", extra=(("OnlineTime", "5"),))) is None
    qoe = viewer_qoe(
        viewer_stats(
            StartupDelay="0.750",
            ContinuityIndex="0.9500",
            ChunksSkipped="2",
            DelayBehindSource="3.100",
            ChunksPlayed="38",
            BytesFromSource="1000",
            BytesFromPeers="3000",
        )
    )
    assert qoe == dashboard.ViewerQoe(
        continuity=0.95,
        startup_delay=0.75,
        delay_behind_source=3.1,
        chunks_skipped=2,
        chunks_played=38,
        bytes_from_source=1000,
        bytes_from_peers=3000,
    )


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "1e999", "-1", "1.5", "x", "0x10", "1" * 256, ""]
)
def test_unbelievable_qoe_values_are_left_out(value: str) -> None:
    qoe = viewer_qoe(
        viewer_stats(
            ContinuityIndex=value, StartupDelay=value, DelayBehindSource=value, ChunksSkipped=value
        )
    )
    assert qoe is not None  # a viewer all the same, its figures unknown
    assert qoe.continuity is None or 0.0 <= qoe.continuity <= 1.0
    assert qoe.startup_delay is None or 0.0 <= qoe.startup_delay <= 1e7
    assert qoe.chunks_skipped is None or 0 <= qoe.chunks_skipped <= MAX_INTEGER
    if value in ("nan", "inf", "-inf", "1e999", "-1", "x", "0x10", "1" * 256, ""):
        assert qoe.continuity is None and qoe.startup_delay is None


# -- a swarm's figures ---------------------------------------------------------------------------


def test_a_stored_swarm_is_told_by_its_maps_and_counted() -> None:
    view = SwarmView(
        swarm_id="s",
        members=3,
        sample=(
            member(
                "seed",
                PeerMode.SEED,
                content_map=cmap("main", 8, b"\xff"),
                stats=StreamStatistics(swarm_id="s", uploaded_bytes=500),
            ),
            member("a", stats=StreamStatistics(swarm_id="s", downloaded_bytes=300)),
            member("b"),
        ),
    )
    figures = swarm_figures(view)
    assert figures.kind is SwarmKind.STORED
    assert (figures.members, figures.seeders, figures.leechers) == (3, 1, 2)
    assert (figures.read, figures.reporting, figures.sampled) == (3, 2, False)
    assert (figures.uploaded, figures.downloaded) == (500, 300)
    assert figures.qoe is None


def test_a_live_swarm_is_told_by_a_live_map_or_by_its_viewers() -> None:
    live_map = cmap(dashboard.LIVE_REPRESENTATION, 8, b"\xf0", start=100)
    source = member("source", PeerMode.SEED, content_map=live_map)
    assert swarm_figures(SwarmView(swarm_id="s", members=1, sample=(source,))).kind is (
        SwarmKind.LIVE
    )
    # A live map anywhere makes it live, whatever came first.
    stored_first = (member("x", content_map=cmap("main", 8, b"\xff")), source)
    assert swarm_figures(SwarmView(swarm_id="s", members=2, sample=stored_first)).kind is (
        SwarmKind.LIVE
    )
    viewers = tuple(
        member(
            f"v{i}",
            stats=viewer_stats(
                ContinuityIndex=str(c),
                DelayBehindSource=str(d),
                BytesFromSource="100",
                BytesFromPeers="300",
                ChunksSkipped="1",
            ),
        )
        for i, (c, d) in enumerate([(1.0, 2.0), (0.9, 4.0)])
    )
    figures = swarm_figures(SwarmView(swarm_id="s", members=2, sample=viewers))
    assert figures.kind is SwarmKind.LIVE
    qoe = figures.qoe
    assert qoe is not None
    assert qoe.viewers == 2
    assert qoe.continuity_mean == pytest.approx(0.95) and qoe.continuity_min == 0.9
    assert qoe.delay_mean == pytest.approx(3.0) and qoe.delay_max == 4.0
    assert (qoe.chunks_skipped, qoe.bytes_from_source, qoe.bytes_from_peers) == (2, 200, 600)
    assert qoe.peer_share == pytest.approx(0.75)
    nothing = swarm_figures(SwarmView(swarm_id="s", members=1, sample=(member("a"),)))
    assert nothing.kind is SwarmKind.UNKNOWN


def test_figures_of_a_sampled_swarm_are_scaled_and_bounded() -> None:
    sample = tuple(
        member(
            f"p{i}",
            PeerMode.SEED if i % 4 == 0 else PeerMode.LEECH,
            stats=StreamStatistics(swarm_id="s", uploaded_bytes=MAX_INTEGER, downloaded_bytes=10),
        )
        for i in range(8)
    )
    figures = swarm_figures(SwarmView(swarm_id="s", members=80, sample=sample))
    assert figures.sampled and figures.read == 8
    assert (figures.seeders, figures.leechers) == (20, 60)
    assert figures.downloaded == 800
    assert figures.uploaded == MAX_INTEGER  # never past what a wire integer holds
    empty = swarm_figures(SwarmView(swarm_id="s", members=5, sample=()))
    assert (empty.seeders, empty.leechers, empty.uploaded) == (0, 5, 0)


def test_peer_rows_show_seeders_first_then_the_most_complete() -> None:
    view = SwarmView(
        swarm_id="s",
        members=4,
        sample=(
            member("half", content_map=cmap("main", 8, b"\xf0")),
            member("none", addresses=(address("192.0.2.1"), address("192.0.2.1", 4000))),
            member("seed", PeerMode.SEED, content_map=cmap("main", 8, b"\xff")),
            member(
                "most",
                content_map=cmap("main", 8, b"\xfe"),
                stats=StreamStatistics(
                    swarm_id="s", uploaded_bytes=1, downloaded_bytes=2, concurrent_links=3
                ),
            ),
        ),
    )
    rows = peer_rows(view, MASKED)
    assert [row.peer_id for row in rows] == ["seed", "most", "half", "none"]
    assert rows[1].coverage == pytest.approx(7 / 8)
    assert (rows[1].held, rows[1].described) == (7, 8)
    assert (rows[1].uploaded, rows[1].downloaded, rows[1].links) == (1, 2, 3)
    assert rows[3].coverage is None
    assert rows[3].addresses == ("192.0.2.x",)  # one network, shown once
    assert peer_rows(view, FULL)[3].addresses == ("192.0.2.1:7000", "192.0.2.1:4000")


# -- the history ---------------------------------------------------------------------------------


def counts(peers: int = 1) -> StorageCounts:
    return StorageCounts(peers=peers, swarms=1, memberships=peers)


def figures(
    swarm_id: str, members: int = 1, uploaded: int = 0, downloaded: int = 0
) -> SwarmFigures:
    stats = StreamStatistics(
        swarm_id=swarm_id, uploaded_bytes=uploaded, downloaded_bytes=downloaded
    )
    sample = tuple(
        member(f"{swarm_id}-{i}", stats=stats if i == 0 else None) for i in range(members)
    )
    return swarm_figures(SwarmView(swarm_id=swarm_id, members=members, sample=sample))


def test_the_history_takes_a_sample_per_interval() -> None:
    history = History(interval=10.0, span=60.0)
    assert history.wait(1000.0) == 0.0  # the first sample at once
    history.record(1000.0, counts(), [])
    assert history.wait(1000.0) == 10.0
    assert history.wait(1004.0) == 6.0
    assert history.wait(1010.0) == 0.0
    history.skip(1010.0)  # the storage failed: a gap, and another try an interval later
    assert history.wait(1015.0) == 5.0
    # A clock far behind never makes a wait longer than the interval.
    assert history.wait(0.0) == 10.0


def test_the_history_is_a_bounded_ring_of_the_last_span() -> None:
    history = History(interval=10.0, span=60.0)
    for step in range(100):
        history.record(10.0 * step, counts(step), [figures("s")])
    series = history.totals_json(990.0)
    # Samples at 940 ... 990: those of the last 60 s.
    assert series["t"] == [-50.0, -40.0, -30.0, -20.0, -10.0, 0.0]
    assert series["peers"] == [94, 95, 96, 97, 98, 99]
    swarm = history.swarm_json("s", 990.0)
    assert swarm is not None and len(swarm["t"]) == 6


def test_rates_come_from_consecutive_samples_and_never_go_negative() -> None:
    history = History(interval=10.0, span=600.0)
    history.record(0.0, counts(), [figures("s", uploaded=0, downloaded=0)])
    history.record(10.0, counts(), [figures("s", uploaded=1000, downloaded=5000)])
    history.record(20.0, counts(), [figures("s", uploaded=500, downloaded=5000)])  # one left
    history.record(100.0, counts(), [figures("s", uploaded=9000, downloaded=9000)])  # a gap
    swarm = history.swarm_json("s", 100.0)
    assert swarm is not None
    assert swarm["up_rate"] == [None, 100.0, 0.0, None]
    assert swarm["down_rate"] == [None, 500.0, 0.0, None]
    totals = history.totals_json(100.0)
    assert totals["up_rate"] == [None, 100.0, 0.0, None]
    latest = history.latest("s")
    assert latest is not None and latest.members == 1
    assert history.latest("other") is None and history.swarm_json("other", 0.0) is None


def test_the_history_follows_a_bounded_number_of_swarms() -> None:
    history = History(interval=10.0, span=30.0, max_swarms=3)
    assert history.to_sample(["a", "b", "a", "c", "d"]) == ["a", "b", "c"]
    history.record(0.0, counts(), [figures(s) for s in ("a", "b", "c", "d")])
    assert history.followed == ["a", "b", "c"]
    assert history.to_sample(["d", "e"]) == ["a", "b", "c"]  # no room
    # A swarm without a member for the whole span is forgotten, which makes room.
    for t in (10.0, 20.0):
        history.record(t, counts(), [figures("a"), figures("b"), figures("c", members=0)])
    assert "c" in history.followed  # its members of t=0 are still in the span at 20
    history.record(30.0, counts(), [figures("a"), figures("b"), figures("c", members=0)])
    assert history.followed == ["a", "b"]
    assert history.to_sample(["d", "e"]) == ["a", "b", "d"]
    # A swarm offered without members is not followed.
    history.record(40.0, counts(), [figures("a"), figures("b"), figures("d", members=0)])
    assert history.followed == ["a", "b"]


def test_a_clock_set_back_starts_the_history_again() -> None:
    history = History(interval=10.0, span=60.0)
    history.record(1000.0, counts(), [figures("s")])
    history.record(1010.0, counts(), [figures("s")])
    history.record(500.0, counts(), [figures("s")])
    assert history.totals_json(500.0)["t"] == [0.0]
    swarm = history.swarm_json("s", 500.0)
    assert swarm is not None and swarm["t"] == [0.0]


def test_a_history_needs_a_sensible_shape() -> None:
    for kwargs in ({"interval": 0.0}, {"interval": 10.0, "span": 5.0}, {"max_swarms": -1}):
        with pytest.raises(ValueError):
            History(**kwargs)  # type: ignore[arg-type]


# -- the API's input -----------------------------------------------------------------------------


def test_pages_default_and_bound() -> None:
    assert parse_page({}) == (1, dashboard.DEFAULT_PER_PAGE)
    assert parse_page({"page": "3", "per_page": "50", "other": "x"}) == (3, 50)
    assert parse_page({"page": str(dashboard.MAX_PAGE)})[0] == dashboard.MAX_PAGE


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("page", "0"),
        ("page", "-1"),
        ("page", "+1"),
        ("page", " 1"),
        ("page", "1.0"),
        ("page", "1e3"),
        ("page", ""),
        ("page", "١٢"),  # digits of another script
        ("page", "1000001"),
        ("page", "9" * 5000),  # no int() of a huge string
        ("per_page", "0"),
        ("per_page", "51"),
        ("per_page", "all"),
    ],
)
def test_bad_pages_are_refused_in_one_line(name: str, value: str) -> None:
    with pytest.raises(DashboardRequestError) as caught:
        parse_page({name: value})
    assert caught.value.status == 400
    message = str(caught.value)
    assert name in message and "\n" not in message and len(message) < 100


@pytest.mark.parametrize(
    "text", ["", "ALL", "nil", "a b", "tab\there", "nul\x00", "x" * 257, "\x85"]
)
def test_bad_swarm_ids_are_refused(text: str) -> None:
    with pytest.raises(DashboardRequestError) as caught:
        parse_swarm_id(text)
    assert caught.value.status == 400 and "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["s", "a/b", "ä€😀", "x" * 256, "all", "NIL", "?#%"])
def test_swarm_ids_the_codecs_accept_are_accepted(text: str) -> None:
    assert parse_swarm_id(text) == text


# -- the memory backend's index of swarms ----------------------------------------------------------


def test_the_sorted_index_stays_sorted_through_splits_and_removals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(swarm_index, "_BLOCK", 4)  # blocks split and empty often
    rng = random.Random(5)
    index = swarm_index.SortedIds()
    held: set[str] = set()
    for _ in range(3000):
        key = f"{rng.randrange(400):03d}"
        if key in held and rng.random() < 0.6:
            index.remove(key)
            held.discard(key)
        elif key not in held:
            index.add(key)
            held.add(key)
        if rng.random() < 0.05:
            index.remove("absent")  # nothing happens
    expected = sorted(held)
    assert index.page(0, 10_000) == expected
    for offset in (0, 1, 7, len(expected) - 3, len(expected), len(expected) + 5):
        assert index.page(offset, 9) == expected[offset : offset + 9]
    assert index.page(0, 0) == []
    for key in list(held):
        index.remove(key)
    assert index.page(0, 10) == []


def test_recent_reads_are_kept_for_their_interval_and_bounded_in_number() -> None:
    reads: RecentReads[int] = RecentReads(seconds=2.0, size=2)
    reads.put("a", 10.0, 1)
    assert reads.get("a", 10.0) == 1 and reads.get("a", 11.9) == 1
    assert reads.get("a", 12.0) is None  # read again after the interval
    assert reads.get("b", 10.0) is None
    reads.put("a", 20.0, 1)
    reads.put("b", 20.0, 2)
    reads.put("c", 20.0, 3)  # a third swarm: the oldest read is forgotten
    assert len(reads) == 2
    assert (reads.get("a", 20.0), reads.get("b", 20.0), reads.get("c", 20.0)) == (None, 2, 3)
    assert reads.get("c", 19.0) is None  # a clock that went back reads anew
    assert RecentReads(seconds=2.0, size=0).get("a", 0.0) is None
