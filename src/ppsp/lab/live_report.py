"""Bookkeeping of a live lab run: figures from the viewers' ``--report`` files, targets, report.md.

Pure functions of the report documents that ``ppsp live`` and ``ppsp watch`` write (see
:func:`ppsp.app.commands.write_report`) and of the decoding results of each viewer's output
file: no processes, no clock, no files, so that every figure can be tested on synthetic reports.

Times.  Live nodes run on the wall clock, so their report times are Unix times already
(``wall_offset`` is about 0; it is added anyway).  The figures put times in seconds since
``t0``, the moment the first viewer joined the swarm.

The figures, per viewer: the continuity index (chunks played on time over chunks due), the
startup delay (from the start of ``ppsp watch`` to the first chunk written to its outputs, a
start point that decodes at once), the delay behind the source (a chunk's arrival at the source
to its presentation by a player that began with the first chunk when it was written), chunks
skipped, and the decode errors PyAV met in the viewer's ``-o`` file (docs/PROTOCOL.md, "Live
streaming", has the definitions).  For the swarm: the source's share of all bytes delivered,
i.e. bytes the viewers received from the source over all bytes the viewers received, and the
bytes the source uploaded over the same total (larger when chunks the source sent were not
kept, e.g. cancelled or arriving after their deadline).

The targets (the live streaming issue): continuity >= 0.99 for every viewer, startup delay
<= 3 s, delay behind the source <= 5 s, source share <= 20%.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ppsp.lab.report import (
    ByteTimeline,
    Report,
    TransferCheck,
    byte_timeline,
    check_transfers,
    first_join,
    session_of,
)

TARGET_CONTINUITY = 0.99
"""Target: every viewer plays at least this fraction of its due chunks on time."""
TARGET_STARTUP = 3.0
"""Target: seconds from a viewer's start to its first chunk played, at most."""
TARGET_DELAY = 5.0
"""Target: seconds a viewer plays behind the source, at most."""
TARGET_SOURCE_SHARE = 0.20
"""Target: the source sends at most this share of all bytes the viewers receive."""

EXIT_FFMPEG_INTERRUPTED = 255
"""ffmpeg's exit status when a signal stopped it: the encoder's normal end in a lab."""

kbit = 1000 / 8
"""Bytes per second in one kbit/s."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeResult:
    """What PyAV made of one viewer's output file."""

    size: int = 0
    """Bytes in the file."""
    frames: int = 0
    """Video frames decoded."""
    errors: int = 0
    """Packets whose decoding raised an error."""
    corrupt: int = 0
    """Packets the demuxer flagged as corrupt."""
    readable: bool = True
    """Whether the file could be opened as a media container at all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerFigures:
    """What one viewer did, times in seconds (``joined_at``/``left_at`` since the lab's t0)."""

    name: str
    peer_id: str | None
    churned: bool
    """Whether this viewer was one of those that left early."""
    reported: bool
    """Whether its report with a live playback was found."""
    joined_at: float | None = None
    first_index: int | None = None
    """The chunk it started playing at."""
    startup_delay: float | None = None
    continuity_index: float | None = None
    chunks_played: int = 0
    chunks_skipped: int = 0
    delay_behind_source: float | None = None
    from_source: int = 0
    """Bytes received from the source (its ``received_from`` entry for the source)."""
    from_peers: int = 0
    """Bytes received from other viewers."""
    uploaded: int = 0
    senders: int = 0
    """Distinct senders (the source included) it received bytes from."""
    first_byte: float | None = None
    """Seconds from its join to its first chunk from anyone."""
    forged_rejected: int = 0
    stale_rejected: int = 0
    frames: int = 0
    decode_errors: int = 0
    corrupt_packets: int = 0
    output_bytes: int = 0
    output_readable: bool = False
    left_after: float | None = None
    """For a churned viewer: seconds from its start to its stop (SIGINT)."""


def viewer_figures(
    name: str,
    report: Report | None,
    *,
    swarm_id: str,
    source_id: str,
    t0: float,
    churned: bool = False,
    left_after: float | None = None,
    decoded: DecodeResult | None = None,
) -> ViewerFigures:
    """One viewer's figures from its report and the decoding of its output.

    ``left_after`` is, for a churned viewer, how many seconds after its start it was stopped.
    """
    decode = decoded or DecodeResult(readable=False)
    session = session_of(report, swarm_id) if report is not None else None
    live = dict(session.get("live") or {}) if session is not None else {}
    if report is None or session is None or "continuity_index" not in live:
        return ViewerFigures(
            name=name,
            peer_id=None if report is None else str(report.get("peer_id")),
            churned=churned,
            reported=False,
            left_after=left_after,
            frames=decode.frames,
            decode_errors=decode.errors,
            corrupt_packets=decode.corrupt,
            output_bytes=decode.size,
            output_readable=decode.readable,
        )
    offset = float(report.get("wall_offset", 0.0))
    joined_local = float(session.get("joined_at") or 0.0)
    by_peer = {str(k): int(v) for k, v in dict(session.get("received_from") or {}).items()}
    from_source = by_peer.get(source_id, 0)
    arrivals = [float(event[0]) for event in session.get("arrivals") or ()]
    first_any = min(arrivals, default=None)
    return ViewerFigures(
        name=name,
        peer_id=str(report.get("peer_id")),
        churned=churned,
        reported=True,
        joined_at=joined_local + offset - t0,
        first_index=_int_or_none(live.get("first_index")),
        startup_delay=_float_or_none(live.get("startup_delay")),
        continuity_index=_float_or_none(live.get("continuity_index")),
        chunks_played=int(live.get("chunks_played") or 0),
        chunks_skipped=int(live.get("chunks_skipped") or 0),
        delay_behind_source=_float_or_none(live.get("delay_behind_source")),
        from_source=from_source,
        from_peers=sum(by_peer.values()) - from_source,
        uploaded=int(session.get("uploaded_bytes", 0)),
        senders=sum(1 for nbytes in by_peer.values() if nbytes > 0),
        first_byte=None if first_any is None else first_any - joined_local,
        forged_rejected=int(live.get("forged_rejected") or 0),
        stale_rejected=int(live.get("stale_rejected") or 0),
        left_after=left_after,
        frames=decode.frames,
        decode_errors=decode.errors,
        corrupt_packets=decode.corrupt,
        output_bytes=decode.size,
        output_readable=decode.readable,
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


# -- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetCheck:
    """One target against the run: met or not, and by how much the worst value misses it."""

    name: str
    """``continuity``, ``startup_delay``, ``delay_behind_source`` or ``source_share``."""
    target: float
    at_least: bool
    """True when the value must be at least the target, False when at most."""
    worst: float | None
    """The worst value among the viewers (or the swarm's value); None when none is known."""
    failing: tuple[str, ...] = ()
    """Viewers missing the target, or with no value at all (a swarm-wide target: empty)."""
    unmeasured: tuple[str, ...] = ()
    """The failing viewers that have no value at all (no report, or never played)."""
    met: bool = False

    @property
    def miss(self) -> float | None:
        """How far the worst value is on the wrong side of the target (0 when met)."""
        if self.worst is None:
            return None
        gap = self.target - self.worst if self.at_least else self.worst - self.target
        return max(0.0, gap)


def _per_viewer(
    name: str, target: float, at_least: bool, values: Sequence[tuple[str, float | None]]
) -> TargetCheck:
    known = [value for _, value in values if value is not None]
    worst = (min(known) if at_least else max(known)) if known else None
    failing = tuple(
        viewer
        for viewer, value in values
        if value is None or (value < target if at_least else value > target)
    )
    return TargetCheck(
        name=name,
        target=target,
        at_least=at_least,
        worst=worst,
        failing=failing,
        unmeasured=tuple(viewer for viewer, value in values if value is None),
        met=bool(values) and not failing,
    )


# -- the whole run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveFigures:
    """Every figure of a live lab run."""

    swarm_id: str
    source_id: str
    source_uploaded: int
    """Bytes the source uploaded to anyone."""
    source_chunks: int | None
    """Chunks the source produced (its window's newest index plus one; None if unknown)."""
    chunk_ms: int | None
    viewers: tuple[ViewerFigures, ...]
    transfers: TransferCheck
    timeline: ByteTimeline

    @property
    def delivered(self) -> int:
        """Bytes the viewers received, from anyone."""
        return sum(v.from_source + v.from_peers for v in self.viewers)

    @property
    def from_source(self) -> int:
        """Bytes the viewers received from the source."""
        return sum(v.from_source for v in self.viewers)

    @property
    def source_share(self) -> float | None:
        """Bytes received from the source over all bytes received (None: nothing delivered)."""
        return self.from_source / self.delivered if self.delivered else None

    @property
    def source_uploaded_share(self) -> float | None:
        """Bytes the source uploaded over all bytes the viewers received."""
        return self.source_uploaded / self.delivered if self.delivered else None

    def targets(self) -> tuple[TargetCheck, ...]:
        """The four targets of the issue, checked."""
        share = self.source_share
        return (
            _per_viewer(
                "continuity",
                TARGET_CONTINUITY,
                True,
                [(v.name, v.continuity_index) for v in self.viewers],
            ),
            _per_viewer(
                "startup_delay",
                TARGET_STARTUP,
                False,
                [(v.name, v.startup_delay) for v in self.viewers],
            ),
            _per_viewer(
                "delay_behind_source",
                TARGET_DELAY,
                False,
                [(v.name, v.delay_behind_source) for v in self.viewers],
            ),
            TargetCheck(
                name="source_share",
                target=TARGET_SOURCE_SHARE,
                at_least=False,
                worst=share,
                met=share is not None and share <= TARGET_SOURCE_SHARE,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """Every figure as a JSON-ready dictionary (the ``figures`` part of report.json)."""

        def spread(values: list[float]) -> dict[str, float | None]:
            return {
                "min": min(values) if values else None,
                "mean": sum(values) / len(values) if values else None,
                "max": max(values) if values else None,
            }

        return {
            "swarm_id": self.swarm_id,
            "source": {
                "peer_id": self.source_id,
                "uploaded_bytes": self.source_uploaded,
                "chunks": self.source_chunks,
                "chunk_ms": self.chunk_ms,
            },
            "viewers": [asdict(v) for v in self.viewers],
            "continuity_index": spread(
                [v.continuity_index for v in self.viewers if v.continuity_index is not None]
            ),
            "startup_delay": spread(
                [v.startup_delay for v in self.viewers if v.startup_delay is not None]
            ),
            "delay_behind_source": spread(
                [v.delay_behind_source for v in self.viewers if v.delay_behind_source is not None]
            ),
            "chunks_played": sum(v.chunks_played for v in self.viewers),
            "chunks_skipped": sum(v.chunks_skipped for v in self.viewers),
            "decode_errors": sum(v.decode_errors for v in self.viewers),
            "bytes": {
                "delivered": self.delivered,
                "from_source": self.from_source,
                "from_peers": self.delivered - self.from_source,
                "source_share": self.source_share,
                "source_uploaded": self.source_uploaded,
                "source_uploaded_share": self.source_uploaded_share,
            },
            "transfers": {
                "total_sent": self.transfers.total_sent,
                "total_received": self.transfers.total_received,
                "consistent": self.transfers.consistent,
                "unkept": self.transfers.unkept,
                "over_received": len(self.transfers.over_received),
                "over_received_bytes": self.transfers.over_received_bytes,
                "unmatched_sent": self.transfers.unmatched_sent,
                "unmatched_received": self.transfers.unmatched_received,
                "pairs": len(self.transfers.pairs),
            },
            "targets": [
                {
                    **asdict(check),
                    "miss": check.miss,
                    "failing": list(check.failing),
                    "unmeasured": list(check.unmeasured),
                }
                for check in self.targets()
            ],
        }


def analyse_live(
    *,
    swarm_id: str,
    source: Report | None,
    viewers: Sequence[tuple[str, Report | None, bool]],
    decoded: Mapping[str, DecodeResult] | None = None,
    left_after: Mapping[str, float] | None = None,
) -> LiveFigures:
    """Figures of a live run from the source's report and each viewer's (name, report, churned).

    ``decoded`` maps viewer names to what PyAV made of their output files (a viewer missing
    from it counts as an unreadable output); ``left_after`` maps churned viewers' names to the
    seconds they ran before they were stopped.
    """
    source_session = session_of(source, swarm_id) if source is not None else None
    source_id = str(source.get("peer_id", "")) if source is not None else ""
    source_live = dict(source_session.get("live") or {}) if source_session else {}
    newest = source_live.get("window_newest")
    reports = [report for _, report, _ in viewers]
    t0 = first_join(reports, swarm_id) or 0.0
    decodes = decoded or {}
    return LiveFigures(
        swarm_id=swarm_id,
        source_id=source_id,
        source_uploaded=int(source_session.get("uploaded_bytes", 0)) if source_session else 0,
        source_chunks=None if newest is None else int(newest) + 1,
        chunk_ms=_int_or_none(source_live.get("chunk_ms")),
        viewers=tuple(
            viewer_figures(
                name,
                report,
                swarm_id=swarm_id,
                source_id=source_id,
                t0=t0,
                churned=churned,
                left_after=(left_after or {}).get(name),
                decoded=decodes.get(name),
            )
            for name, report, churned in viewers
        ),
        transfers=check_transfers(
            [r for r in (source, *reports) if r is not None],
            swarm_id,
        ),
        timeline=byte_timeline(reports, swarm_id=swarm_id, source_id=source_id, t0=t0),
    )


def rate_series(
    timeline: ByteTimeline, *, bin_s: float = 1.0
) -> tuple[list[float], list[float], list[float]]:
    """Per-bin rates (bytes/s) from the source and from peers: (bin starts, source, peers)."""
    if bin_s <= 0:
        raise ValueError("bin_s must be positive")
    if not timeline.times:
        return [], [], []
    bins = int(max(timeline.times) // bin_s) + 1
    source = [0.0] * bins
    peers = [0.0] * bins
    last_source = last_peers = 0
    for when, total_source, total_peers in zip(
        timeline.times, timeline.from_source, timeline.from_peers, strict=True
    ):
        slot = max(0, int(when // bin_s))
        source[slot] += (total_source - last_source) / bin_s
        peers[slot] += (total_peers - last_peers) / bin_s
        last_source, last_peers = total_source, total_peers
    return [i * bin_s for i in range(bins)], source, peers


# -- report.md --------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _mb(value: float) -> str:
    return f"{value / 1e6:.2f} MB"


def _kbit(value: float | None) -> str:
    return "uncapped" if value is None else f"{value / kbit:.0f} kbit/s"


TARGET_LABELS = {
    "continuity": "continuity index, every viewer",
    "startup_delay": "startup delay, every viewer",
    "delay_behind_source": "delay behind the source, every viewer",
    "source_share": "source share of bytes delivered",
}


def _target_value(name: str, value: float | None) -> str:
    if name == "continuity":
        return _ratio(value)
    if name == "source_share":
        return _share(value)
    return _seconds(value)


def describe_target(check: Mapping[str, Any]) -> str:
    """One sentence: the target, whether it is met, and by how much it is missed."""
    name = check["name"]
    label = TARGET_LABELS.get(name, name)
    sign = ">=" if check["at_least"] else "<="
    target = _target_value(name, check["target"])
    worst = _target_value(name, check["worst"])
    which = "worst" if name != "source_share" else "value"
    if check["met"]:
        return f"{label} {sign} {target}: met ({which} {worst})."
    unmeasured = list(check.get("unmeasured") or [])
    failing = [v for v in check.get("failing") or [] if v not in unmeasured]
    who = f"; {_viewers(failing, 'misses', 'miss')} it: {', '.join(failing)}" if failing else ""
    if unmeasured:
        who += f"; {_viewers(unmeasured, 'has', 'have')} no value: {', '.join(unmeasured)}"
    if check["worst"] is None:
        return f"{label} {sign} {target}: not met, no value measured{who}."
    miss = check["miss"]
    if not miss:
        return f"{label} {sign} {target}: not met ({which} measured {worst}){who}."
    if name == "source_share":
        by = f"{miss * 100:.1f} points"
    elif name == "continuity":
        by = f"{miss:.4f}"
    else:
        by = f"{miss:.2f} s"
    return f"{label} {sign} {target}: missed by {by} ({which} {worst}){who}."


def _viewers(names: Sequence[str], one: str, many: str) -> str:
    return f"1 viewer {one}" if len(names) == 1 else f"{len(names)} viewers {many}"


def render_live_markdown(document: Mapping[str, Any]) -> str:
    """The readable summary (report.md) of a live lab's report.json document."""
    params = document["parameters"]
    fig = document["figures"]
    volume = fig["bytes"]
    source = fig["source"]
    lines = [
        "# ppsp lab live",
        "",
        f"Command: `{document['command']}`",
        "",
        f"{params['peers']} viewers watch a {_kbit(params['bitrate'])} live test pattern "
        f"(H.264 in MPEG-TS, {params['frame_size']}, {params['chunk_ms']} ms chunks) from one "
        f"source uploading at {_kbit(params['source_rate'])}; viewers' upload "
        f"{_kbit(params['peer_rate'])}; joins spread over {params['join_spread']:.1f} s, then "
        f"{params['duration']:.1f} s after the last join; churn {params['churn']:.0%} "
        f"(seed {params['seed']}).",
        "",
        "## Targets",
        "",
    ]
    lines += [f"- {describe_target(check)}" for check in fig["targets"]]
    lines += [
        "",
        "## Result",
        "",
        "| figure | value |",
        "|---|---|",
        f"| chunks the source produced | {'-' if source['chunks'] is None else source['chunks']} |",
    ]
    for key, label, show in (
        ("continuity_index", "continuity index", _ratio),
        ("startup_delay", "startup delay", _seconds),
        ("delay_behind_source", "delay behind the source", _seconds),
    ):
        spread = fig[key]
        lines.append(
            f"| {label} (min / mean / max) | {show(spread['min'])} / {show(spread['mean'])} / "
            f"{show(spread['max'])} |"
        )
    lines += [
        f"| chunks played / skipped (all viewers) | {fig['chunks_played']} / "
        f"{fig['chunks_skipped']} |",
        f"| decode errors (all viewers) | {fig['decode_errors']} |",
        f"| bytes the viewers received | {_mb(volume['delivered'])} |",
        f"| ... from the source / from peers | {_mb(volume['from_source'])} / "
        f"{_mb(volume['from_peers'])} |",
        f"| source share of bytes delivered | {_share(volume['source_share'])} |",
        f"| source bytes uploaded / bytes delivered | "
        f"{_share(volume['source_uploaded_share'])} ({_mb(volume['source_uploaded'])} "
        "uploaded) |",
    ]
    transfers = fig["transfers"]
    lines.append(f"| bytes sent but not kept (late or cancelled) | {_mb(transfers['unkept'])} |")
    lines += [
        "",
        "## Viewers",
        "",
        "| viewer | joined | first chunk | startup | continuity | played | skipped "
        "| behind source | from source | from peers | uploaded | frames | decode errors | leaves |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in fig["viewers"]:
        left = v.get("left_after")
        leaves = "no" if not v["churned"] else f"after {_seconds(left)}" if left else "yes"
        lines.append(
            f"| {v['name']} | {_seconds(v['joined_at'])} | "
            f"{'-' if v['first_index'] is None else v['first_index']} | "
            f"{_seconds(v['startup_delay'])} | {_ratio(v['continuity_index'])} | "
            f"{v['chunks_played']} | {v['chunks_skipped']} | "
            f"{_seconds(v['delay_behind_source'])} | {_mb(v['from_source'])} | "
            f"{_mb(v['from_peers'])} | {_mb(v['uploaded'])} | {v['frames']} | "
            f"{v['decode_errors']}{'' if v['output_readable'] else ' (unreadable)'} | {leaves} |"
        )
    exits = document.get("exits") or {}
    odd = {
        name: code
        for name, code in exits.items()
        if code != 0 and not (name == "encoder" and code == EXIT_FFMPEG_INTERRUPTED)
    }
    if odd:
        listed = ", ".join(f"{name} ({code})" for name, code in sorted(odd.items()))
        lines += ["", f"Processes that did not exit with status 0: {listed}."]
        failures = document.get("failures") or {}
        last = sorted({failures[name] for name in odd if failures.get(name)})
        if last:
            lines += ["Their last lines on stderr:", ""]
            lines += [f"    {line}" for line in last[:10]]
    cpu = document.get("cpu")
    if cpu:
        lines += [
            "",
            "## CPU",
            "",
            f"The lab's processes (tracker, encoder, source, viewers) used {cpu['total']:.1f} "
            f"CPU seconds over {cpu['wall']:.1f} s on {cpu['cores']} cores: {cpu['load']:.0%} "
            "of the machine. The encoder used "
            f"{cpu['processes'].get('encoder') or 0:.1f} s, the source "
            f"{cpu['processes'].get('source') or 0:.1f} s.",
        ]
        machine = cpu.get("machine_busy")
        if machine is not None:
            lines.append(
                f"The whole machine was {machine:.0%} busy meanwhile (other work included); "
                "near 100%, skips and delays measure the CPU rather than the protocol."
            )
    plots = document.get("plots") or []
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({name})" for name in plots]
    lines.append("")
    return "\n".join(lines)
