"""The live lab's bookkeeping on synthetic reports: figures, targets, curves, report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ppsp.lab.live import LiveLabSettings, encoder_args, plan_live
from ppsp.lab.live_report import (
    TARGET_SOURCE_SHARE,
    DecodeResult,
    analyse_live,
    describe_target,
    kbit,
    rate_series,
    render_live_markdown,
)

SWARM = "live-swarm"
T0 = 1_700_000_000.0


def _source(uploaded_to: dict[str, int], newest: int = 59) -> dict[str, Any]:
    return {
        "peer_id": "src",
        "wall_offset": 0.0,
        "sessions": [
            {
                "swarm_id": SWARM,
                "joined_at": T0 - 5.0,
                "uploaded_bytes": sum(uploaded_to.values()),
                "uploaded_to": uploaded_to,
                "received_from": {},
                "arrivals": [],
                "live": {"source": True, "chunk_ms": 500, "window_newest": newest},
            }
        ],
    }


def _viewer(
    peer_id: str,
    *,
    joined: float,
    received: dict[str, int],
    arrivals: list[tuple[float, str, int]],
    played: int = 40,
    skipped: int = 0,
    startup: float | None = 1.5,
    delay: float | None = 2.5,
    uploaded_to: dict[str, int] | None = None,
    wall_offset: float = 0.0,
) -> dict[str, Any]:
    due = played + skipped
    return {
        "peer_id": peer_id,
        "wall_offset": wall_offset,
        "sessions": [
            {
                "swarm_id": SWARM,
                "joined_at": joined - wall_offset,
                "uploaded_bytes": sum((uploaded_to or {}).values()),
                "uploaded_to": uploaded_to or {},
                "received_from": received,
                "arrivals": [[when - wall_offset, who, n] for when, who, n in arrivals],
                "live": {
                    "source": False,
                    "chunk_ms": 500,
                    "first_index": 10,
                    "startup_delay": startup,
                    "continuity_index": None if due == 0 else played / due,
                    "chunks_played": played,
                    "chunks_skipped": skipped,
                    "delay_behind_source": delay,
                    "forged_rejected": 0,
                    "stale_rejected": 1,
                },
            }
        ],
    }


def _swarm() -> tuple[dict[str, Any], list[tuple[str, dict[str, Any] | None, bool]]]:
    # a: 300 from the source, 100 from b; b: 100 from the source, 300 from a.
    a = _viewer(
        "a",
        joined=T0,
        received={"src": 300, "b": 100},
        arrivals=[(T0 + 0.5, "src", 300), (T0 + 2.5, "b", 100)],
        uploaded_to={"b": 300},
    )
    b = _viewer(
        "b",
        joined=T0 + 1.0,
        received={"src": 100, "a": 300},
        arrivals=[(T0 + 1.2, "src", 100), (T0 + 1.7, "a", 300)],
        played=98,
        skipped=2,
        startup=3.5,
        delay=6.0,
        uploaded_to={"a": 100},
        wall_offset=0.25,
    )
    return _source({"a": 300, "b": 150}), [("viewer-01", a, False), ("viewer-02", b, True)]


def test_viewer_figures_come_from_the_live_report_and_received_from() -> None:
    source, viewers = _swarm()
    figures = analyse_live(
        swarm_id=SWARM,
        source=source,
        viewers=viewers,
        decoded={"viewer-01": DecodeResult(size=1000, frames=250, errors=2, corrupt=1)},
        left_after={"viewer-02": 12.5},
    )
    a, b = figures.viewers
    assert (a.name, a.peer_id, a.reported, a.churned) == ("viewer-01", "a", True, False)
    assert a.joined_at == pytest.approx(0.0)
    assert b.joined_at == pytest.approx(1.0)  # wall_offset applied
    assert (a.from_source, a.from_peers, a.senders) == (300, 100, 2)
    assert (b.from_source, b.from_peers) == (100, 300)
    assert a.first_byte == pytest.approx(0.5)
    assert b.first_byte == pytest.approx(0.2)
    assert b.continuity_index == pytest.approx(0.98)
    assert (b.chunks_played, b.chunks_skipped, b.startup_delay) == (98, 2, 3.5)
    assert (a.frames, a.decode_errors, a.corrupt_packets, a.output_bytes) == (250, 2, 1, 1000)
    assert a.output_readable
    assert not b.output_readable  # no decoding result: counted as unreadable
    assert (b.churned, b.left_after, a.left_after) == (True, 12.5, None)
    assert a.stale_rejected == 1
    assert figures.source_chunks == 60
    assert figures.chunk_ms == 500


def test_source_share_counts_what_viewers_received_and_what_the_source_sent() -> None:
    source, viewers = _swarm()
    figures = analyse_live(swarm_id=SWARM, source=source, viewers=viewers)
    assert figures.delivered == 800
    assert figures.from_source == 400
    assert figures.source_share == pytest.approx(0.5)
    assert figures.source_uploaded == 450
    assert figures.source_uploaded_share == pytest.approx(450 / 800)
    # The source sent b 150 bytes and b kept 100: 50 bytes unkept; the rest agrees.
    assert figures.transfers.unkept == 50
    assert not figures.transfers.over_received


def test_targets_name_the_viewers_that_miss_them_and_by_how_much() -> None:
    source, viewers = _swarm()
    figures = analyse_live(swarm_id=SWARM, source=source, viewers=viewers)
    checks = {check.name: check for check in figures.targets()}
    continuity = checks["continuity"]
    assert not continuity.met
    assert continuity.failing == ("viewer-02",)
    assert continuity.worst == pytest.approx(0.98)
    assert continuity.miss == pytest.approx(0.01)
    startup = checks["startup_delay"]
    assert (startup.met, startup.failing, startup.worst) == (False, ("viewer-02",), 3.5)
    assert startup.miss == pytest.approx(0.5)
    delay = checks["delay_behind_source"]
    assert delay.miss == pytest.approx(1.0)
    share = checks["source_share"]
    assert not share.met
    assert share.failing == ()
    assert share.miss == pytest.approx(0.5 - TARGET_SOURCE_SHARE)


def test_targets_are_met_when_every_viewer_is_within_them() -> None:
    a = _viewer("a", joined=T0, received={"src": 100, "b": 900}, arrivals=[])
    b = _viewer("b", joined=T0, received={"src": 100, "a": 900}, arrivals=[])
    figures = analyse_live(
        swarm_id=SWARM,
        source=_source({"a": 100, "b": 100}),
        viewers=[("viewer-01", a, False), ("viewer-02", b, False)],
    )
    checks = figures.targets()
    assert all(check.met for check in checks), checks
    assert all(check.miss == 0.0 for check in checks)
    assert figures.source_share == pytest.approx(0.1)


def test_a_viewer_without_report_or_playback_fails_every_per_viewer_target() -> None:
    source, viewers = _swarm()
    never_played = _viewer(
        "c", joined=T0 + 2, received={}, arrivals=[], played=0, startup=None, delay=None
    )
    figures = analyse_live(
        swarm_id=SWARM,
        source=source,
        viewers=[*viewers, ("viewer-03", None, False), ("viewer-04", never_played, False)],
    )
    missing = figures.viewers[2]
    assert (missing.reported, missing.peer_id, missing.continuity_index) == (False, None, None)
    checks = {c.name: c for c in figures.targets()}
    for name in ("continuity", "startup_delay", "delay_behind_source"):
        assert "viewer-03" in checks[name].failing
        assert "viewer-04" in checks[name].failing
    # The worst value is among those measured.
    assert checks["startup_delay"].worst == pytest.approx(3.5)


def test_no_viewers_and_no_source_give_empty_figures() -> None:
    figures = analyse_live(swarm_id=SWARM, source=None, viewers=[])
    assert figures.source_share is None
    assert figures.source_chunks is None
    checks = figures.targets()
    assert not any(check.met for check in checks)
    assert all(check.miss is None for check in checks)
    document = figures.to_json()
    assert document["continuity_index"] == {"min": None, "mean": None, "max": None}


def test_timeline_and_rates_split_source_and_peer_bytes() -> None:
    source, viewers = _swarm()
    timeline = analyse_live(swarm_id=SWARM, source=source, viewers=viewers).timeline
    # Arrivals at 0.5 (src 300), 1.2 (src 100), 1.7 (a 300), 2.5 (b 100) since t0.
    assert timeline.times == pytest.approx((0.5, 1.2, 1.7, 2.5))
    assert timeline.from_source == (300, 400, 400, 400)
    assert timeline.from_peers == (0, 0, 300, 400)
    starts, from_source, from_peers = rate_series(timeline, bin_s=1.0)
    assert starts == [0.0, 1.0, 2.0]
    assert from_source == [300.0, 100.0, 0.0]
    assert from_peers == [0.0, 300.0, 100.0]
    halves = rate_series(timeline, bin_s=0.5)
    assert sum(halves[1]) * 0.5 == pytest.approx(400)
    assert rate_series(analyse_live(swarm_id=SWARM, source=None, viewers=[]).timeline) == (
        [],
        [],
        [],
    )
    with pytest.raises(ValueError):
        rate_series(timeline, bin_s=0)


def test_describe_target_says_met_or_by_how_much_it_is_missed() -> None:
    source, viewers = _swarm()
    checks = analyse_live(swarm_id=SWARM, source=source, viewers=viewers).to_json()["targets"]
    text = {check["name"]: describe_target(check) for check in checks}
    assert "missed by 0.0100 (worst 0.9800); 1 viewer misses it: viewer-02" in text["continuity"]
    assert "missed by 0.50 s (worst 3.50 s)" in text["startup_delay"]
    assert "missed by 1.00 s (worst 6.00 s)" in text["delay_behind_source"]
    assert "missed by 30.0 points (value 50.0%)" in text["source_share"]
    met = {**checks[0], "met": True, "worst": 1.0, "failing": []}
    assert describe_target(met) == "continuity index, every viewer >= 0.9900: met (worst 1.0000)."


def test_markdown_lists_targets_viewers_and_plots() -> None:
    source, viewers = _swarm()
    figures = analyse_live(swarm_id=SWARM, source=source, viewers=viewers)
    settings = LiveLabSettings(out=Path("x"), peers=2, bitrate=500 * kbit)
    document = {
        "command": "ppsp lab live --peers 2",
        "parameters": {
            "peers": 2,
            "bitrate": settings.bitrate,
            "frame_size": settings.frame_size,
            "chunk_ms": 500,
            "source_rate": settings.source_upload,
            "peer_rate": None,
            "join_spread": 2.0,
            "duration": 8.0,
            "churn": 0.5,
            "seed": 1,
        },
        "figures": figures.to_json(),
        "exits": {"encoder": 255, "viewer-01": 0, "viewer-02": 1},
        "cpu": {
            "total": 3.0,
            "wall": 10.0,
            "cores": 2,
            "load": 0.15,
            "processes": {"encoder": 0.2, "source": 0.8},
            "machine_busy": 0.5,
        },
        "plots": ["viewers.png", "bytes_over_time.png"],
    }
    text = render_live_markdown(document)
    assert "2 viewers watch a 500 kbit/s live test pattern" in text
    assert "source uploading at 1500 kbit/s" in text
    assert "| viewer-02 | 1.00 s | 10 | 3.50 s | 0.9800 | 98 | 2 | 6.00 s |" in text
    assert "| source share of bytes delivered | 50.0% |" in text
    assert "not exit with status 0: viewer-02 (1)." in text  # ffmpeg's 255 on SIGINT is normal
    assert "![viewers.png](viewers.png)" in text
    assert "50% busy" in text


def test_plan_is_reproducible_and_churned_viewers_leave_before_the_end() -> None:
    settings = LiveLabSettings(out=Path("x"), peers=10, join_spread=20, churn=0.3, seed=4)
    first, second = plan_live(settings), plan_live(settings)
    assert first == second
    assert first.joins == sorted(first.joins)
    assert all(0 <= offset <= 20 for offset in first.joins)
    assert len(first.leaves) == 3
    end = first.joins[-1] + settings.duration
    for index, after in first.leaves.items():
        watch = end - first.joins[index]
        assert 0.3 * watch <= after <= 0.7 * watch
    assert plan_live(LiveLabSettings(out=settings.out, peers=10, seed=5)).leaves == {}
    assert settings.source_upload == 3 * settings.bitrate


def test_encoder_keeps_the_bitrate_with_cbr_settings() -> None:
    settings = LiveLabSettings(out=Path("x"), bitrate=2000 * kbit)
    args = encoder_args(settings, Path("/tmp/fifo"))
    for option in ("-b:v", "-maxrate", "-minrate", "-bufsize"):
        assert args[args.index(option) + 1] == "2000000"
    assert "-re" in args
    assert args[-1] == "/tmp/fifo"
    assert "nal-hrd=cbr" in args[args.index("-x264-params") + 1]


def test_describe_target_names_viewers_without_a_value_apart() -> None:
    source, viewers = _swarm()
    healthy = _viewer("c", joined=T0, received={"src": 10}, arrivals=[])
    figures = analyse_live(
        swarm_id=SWARM,
        source=source,
        viewers=[
            ("viewer-01", viewers[0][1], False),
            ("viewer-03", healthy, False),
            ("viewer-04", None, False),
        ],
    )
    checks = {check["name"]: check for check in figures.to_json()["targets"]}
    continuity = checks["continuity"]
    assert continuity["unmeasured"] == ["viewer-04"]
    assert describe_target(continuity) == (
        "continuity index, every viewer >= 0.9900: not met (worst measured 1.0000); "
        "1 viewer has no value: viewer-04."
    )


def test_markdown_quotes_the_last_stderr_line_of_failed_processes() -> None:
    source, viewers = _swarm()
    figures = analyse_live(swarm_id=SWARM, source=source, viewers=viewers)
    document = {
        "command": "ppsp lab live",
        "parameters": {
            "peers": 2,
            "bitrate": 250000.0,
            "frame_size": "320x180",
            "chunk_ms": 500,
            "source_rate": 750000.0,
            "peer_rate": 250000.0,
            "join_spread": 2.0,
            "duration": 8.0,
            "churn": 0.0,
            "seed": 1,
        },
        "figures": figures.to_json(),
        "exits": {"viewer-01": 1, "viewer-02": 1, "encoder": 255},
        "failures": {"viewer-01": "ImportError: x", "viewer-02": "ImportError: x"},
    }
    text = render_live_markdown(document)
    assert "viewers' upload 2000 kbit/s" in text
    assert text.count("    ImportError: x") == 1


def test_decode_output_counts_the_errors_ffmpeg_reports(tmp_path: Path) -> None:
    # A recording that starts between key frames decodes with PyAV without an exception,
    # but FFmpeg reports every frame before the first key frame: those count as errors.
    from ppsp.app.media import make_sample_video
    from ppsp.lab.live import decode_output

    whole = make_sample_video(
        tmp_path / "whole.ts", seconds=2, width=160, height=96, container="mpegts"
    )
    data = whole.read_bytes()
    middle = tmp_path / "middle.ts"
    cut = len(data) // 4 // 188 * 188  # a quarter in: within the first second's frames
    middle.write_bytes(data[cut:])
    good = decode_output(whole)
    assert good.readable and good.frames >= 40 and good.errors == 0
    bad = decode_output(middle)
    assert bad.readable and bad.errors > 0
    assert decode_output(tmp_path / "missing.ts") == DecodeResult(readable=False)
