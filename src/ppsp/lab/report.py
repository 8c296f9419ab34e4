"""Bookkeeping of a lab run: figures from the peers' ``--report`` files, the bound, report.md.

Everything here is a pure function of the report documents that ``ppsp seed`` and ``ppsp get``
write (see :func:`ppsp.app.commands.write_report`): no processes, no clock, no files, so that
the figures can be tested on synthetic reports.

Times.  Each report's times are its process's monotonic clock; adding its ``wall_offset`` puts
them on the common Unix time line.  A lab's figures are then expressed in seconds since
``t0``, the moment the first peer joined the swarm.

The fluid-model bound for video on demand (Kumar and Ross, "Peer-assisted file distribution:
the minimum distribution time", 2006): with a file of F bytes, a source uploading at ``u_s``,
N peers uploading at ``u_i`` and downloading at ``d_i``, no schedule can complete every peer
before

    T_min = max(F / u_s, F / d_min, N * F / (u_s + sum u_i))

since the source must send every byte at least once, the slowest downloader must receive
every byte, and the N * F bytes delivered cannot flow faster than the sum of all uploads.
The bound assumes every peer is present from the start and stays until the end; a run with a
join spread or with churn is measured against the same bound, which it can only miss more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Report = Mapping[str, Any]
"""One ``--report`` document as decoded JSON."""

MiB = 1024 * 1024

TARGET_RATIO = 1.3
"""Target: the last peer completes within this multiple of the fluid bound."""
TARGET_SOURCE_SHARE = 0.15
"""Target: the source sends at most this share of all bytes delivered to peers."""
TARGET_NAT_RATIO = 1.5
"""Target of a lab run with peers behind NAT (``--nat``): the last peer completes within this
multiple of the fluid bound (punching, relays and the STUN exchange cost time on loopback)."""
TARGET_NAT_SOURCE_SHARE = 0.20
"""Target of a lab run with peers behind NAT: the source's share of the bytes delivered."""


def vod_targets(*, nat: bool) -> dict[str, float]:
    """The vod lab's targets: the loopback lab's, or those of a lab with peers behind NAT."""
    if nat:
        return {"ratio": TARGET_NAT_RATIO, "source_share": TARGET_NAT_SOURCE_SHARE}
    return {"ratio": TARGET_RATIO, "source_share": TARGET_SOURCE_SHARE}


# -- the bound --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FluidBound:
    """The fluid-model minimum distribution time and the terms it is the largest of."""

    source_term: float
    """F / u_s: the source sends every byte once (0 when the source is not capped)."""
    download_term: float
    """F / d_min: the slowest downloader receives every byte (0 when no download is capped)."""
    aggregate_term: float
    """N * F / (u_s + sum u_i): all deliveries through all uploads (0 when any is uncapped)."""

    @property
    def seconds(self) -> float:
        """T_min, the largest of the three terms."""
        return max(self.source_term, self.download_term, self.aggregate_term)

    @property
    def limiting(self) -> str:
        """Which term sets the bound: ``source``, ``download`` or ``aggregate``."""
        terms = {
            "source": self.source_term,
            "download": self.download_term,
            "aggregate": self.aggregate_term,
        }
        return max(terms, key=lambda name: terms[name])


def _over(size: float, rate: float | None) -> float:
    return 0.0 if rate is None or math.isinf(rate) else size / rate


def fluid_bound(
    size: int,
    source_rate: float | None,
    peer_rates: Sequence[float | None],
    download_rates: Sequence[float | None] = (),
) -> FluidBound:
    """The fluid-model bound for ``len(peer_rates)`` peers fetching ``size`` bytes.

    A rate of None is uncapped (infinite).  ``download_rates`` lists the peers' download caps;
    an empty sequence or all None means no peer's download is capped (d_min infinite).
    """
    if size < 0:
        raise ValueError("size must not be negative")
    for rate in (source_rate, *peer_rates, *download_rates):
        if rate is not None and rate <= 0:
            raise ValueError("rates must be positive")
    capped_downloads = [rate for rate in download_rates if rate is not None]
    d_min = min(capped_downloads) if capped_downloads else None
    n = len(peer_rates)
    if source_rate is None or any(rate is None for rate in peer_rates):
        aggregate_rate: float | None = None
    else:
        aggregate_rate = source_rate + sum(rate for rate in peer_rates if rate is not None)
    return FluidBound(
        source_term=_over(size, source_rate),
        download_term=_over(size, d_min),
        aggregate_term=_over(n * size, aggregate_rate),
    )


# -- reading reports --------------------------------------------------------------------------


def session_of(report: Report, swarm_id: str) -> Mapping[str, Any] | None:
    """The report's session of ``swarm_id`` (None when the peer never joined it)."""
    for session in report.get("sessions", ()):
        if session.get("swarm_id") == swarm_id:
            return dict(session)
    return None


def _wall(report: Report, value: float | None) -> float | None:
    if value is None:
        return None
    return float(value) + float(report.get("wall_offset", 0.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerFigures:
    """What one downloading peer did, times in seconds since the lab's ``t0``."""

    name: str
    peer_id: str | None
    churned: bool
    """Whether this peer was one of those that left right after completing."""
    reported: bool
    """Whether its report was found (a peer that crashed writes none)."""
    complete: bool
    joined_at: float | None
    completed_at: float | None
    completion_time: float | None
    """Seconds from its own join to its completion."""
    downloaded: int
    from_source: int
    from_peers: int
    uploaded: int
    first_byte: float | None = None
    """Seconds from its join to its first chunk from anyone (startup)."""
    first_peer_byte: float | None = None
    """Seconds from its join to its first chunk from another peer than the source (discovery)."""
    senders: int = 0
    """How many distinct peers (the source included) it received chunks from."""
    cancelled: dict[str, int] = field(default_factory=dict)
    """Requests it gave up, by reason (timeout, duplicate, late, failed, corrupt, banned)."""
    discarded: int = 0
    """Bytes of chunks it received (whole or in part) and did not keep."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PairCount:
    """Bytes one peer counted as sent to another, and what that other counted as received."""

    sender: str
    receiver: str
    sent: int
    received: int

    @property
    def difference(self) -> int:
        """Sent minus received (positive: bytes sent that the receiver did not count)."""
        return self.sent - self.received


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferCheck:
    """Consistency of the peers' byte counts: what was sent against what was received."""

    total_sent: int
    """Sum over every report of its ``uploaded_to`` counts."""
    total_received: int
    """Sum over every report of its ``received_from`` counts."""
    pairs: tuple[PairCount, ...]
    """Every (sender, receiver) pair with both reports at hand."""
    unmatched_sent: int
    """Bytes counted as sent to peers whose report is missing (or unknown peer IDs)."""
    unmatched_received: int
    """Bytes counted as received from peers whose report is missing."""

    @property
    def mismatches(self) -> tuple[PairCount, ...]:
        """Pairs whose two counts differ."""
        return tuple(pair for pair in self.pairs if pair.sent != pair.received)

    @property
    def over_received(self) -> tuple[PairCount, ...]:
        """Pairs whose receiver counted more than its sender sent: a bookkeeping error.

        The opposite difference (sent more than received) is expected to some degree: a sender
        counts every byte it writes, a receiver only the chunks it keeps, so a chunk cancelled
        in flight (an endgame duplicate) is counted on one side only.
        """
        return tuple(pair for pair in self.pairs if pair.received > pair.sent)

    @property
    def unkept(self) -> int:
        """Bytes sent that their receiver did not keep (sum of positive pair differences)."""
        return sum(max(0, pair.difference) for pair in self.pairs)

    @property
    def over_received_bytes(self) -> int:
        """Bytes received beyond what their senders counted (sum of negative differences)."""
        return sum(max(0, -pair.difference) for pair in self.pairs)

    @property
    def consistent(self) -> bool:
        """Whether totals and every pair agree."""
        return self.total_sent == self.total_received and not self.mismatches


def check_transfers(reports: Iterable[Report], swarm_id: str) -> TransferCheck:
    """Compare every peer's ``uploaded_to`` with the receivers' ``received_from``."""
    sent: dict[tuple[str, str], int] = {}
    received: dict[tuple[str, str], int] = {}
    known: set[str] = set()
    for report in reports:
        session = session_of(report, swarm_id)
        peer_id = str(report.get("peer_id", ""))
        known.add(peer_id)
        if session is None:
            continue
        for receiver, nbytes in dict(session.get("uploaded_to") or {}).items():
            sent[(peer_id, receiver)] = sent.get((peer_id, receiver), 0) + int(nbytes)
        for sender, nbytes in dict(session.get("received_from") or {}).items():
            received[(sender, peer_id)] = received.get((sender, peer_id), 0) + int(nbytes)
    pairs = [
        PairCount(sender=s, receiver=r, sent=sent.get((s, r), 0), received=received.get((s, r), 0))
        for s, r in sorted(set(sent) | set(received))
        if s in known and r in known
    ]
    return TransferCheck(
        total_sent=sum(sent.values()),
        total_received=sum(received.values()),
        pairs=tuple(pair for pair in pairs if pair.sent or pair.received),
        unmatched_sent=sum(n for (s, r), n in sent.items() if r not in known),
        unmatched_received=sum(n for (s, r), n in received.items() if s not in known),
    )


def peer_figures(
    name: str,
    report: Report | None,
    *,
    swarm_id: str,
    source_id: str,
    t0: float,
    churned: bool = False,
) -> PeerFigures:
    """One peer's figures from its report (or the empty figures of a peer without one)."""
    session = session_of(report, swarm_id) if report is not None else None
    if report is None or session is None:
        return PeerFigures(
            name=name,
            peer_id=None if report is None else str(report.get("peer_id")),
            churned=churned,
            reported=report is not None,
            complete=False,
            joined_at=None,
            completed_at=None,
            completion_time=None,
            downloaded=0,
            from_source=0,
            from_peers=0,
            uploaded=0,
        )
    joined = _wall(report, session.get("joined_at"))
    completed = _wall(report, session.get("completed_at"))
    by_peer = {str(k): int(v) for k, v in dict(session.get("received_from") or {}).items()}
    from_source = by_peer.get(source_id, 0)
    arrivals = [(float(when), str(sender)) for when, sender, _ in session.get("arrivals") or ()]
    joined_local = float(session.get("joined_at") or 0.0)
    first_any = min((when for when, _ in arrivals), default=None)
    first_peer = min((when for when, sender in arrivals if sender != source_id), default=None)
    complete = bool(session.get("complete")) and completed is not None
    return PeerFigures(
        name=name,
        peer_id=str(report.get("peer_id")),
        churned=churned,
        reported=True,
        complete=complete,
        joined_at=None if joined is None else joined - t0,
        completed_at=None if completed is None or not complete else completed - t0,
        completion_time=(
            completed - joined
            if complete and joined is not None and completed is not None
            else None
        ),
        downloaded=int(session.get("downloaded_bytes", 0)),
        from_source=from_source,
        from_peers=sum(by_peer.values()) - from_source,
        uploaded=int(session.get("uploaded_bytes", 0)),
        first_byte=None if first_any is None else first_any - joined_local,
        first_peer_byte=None if first_peer is None else first_peer - joined_local,
        senders=sum(1 for nbytes in by_peer.values() if nbytes > 0),
        cancelled={str(k): int(v) for k, v in dict(session.get("cancelled") or {}).items()},
        discarded=int(session.get("discarded_bytes") or 0),
    )


def first_join(reports: Iterable[Report | None], swarm_id: str) -> float | None:
    """The Unix time at which the first of these peers joined the swarm."""
    times = []
    for report in reports:
        if report is None:
            continue
        session = session_of(report, swarm_id)
        if session is not None and session.get("joined_at") is not None:
            joined = _wall(report, session["joined_at"])
            assert joined is not None
            times.append(joined)
    return min(times) if times else None


# -- curves -----------------------------------------------------------------------------------


def cdf(values: Iterable[float | None]) -> list[tuple[float, float]]:
    """Points (value, fraction of all entries at or below it); None entries never arrive.

    The fraction is over every entry, so a curve with missing values stops below 1.
    """
    entries = list(values)
    present = sorted(v for v in entries if v is not None)
    if not entries:
        return []
    return [(value, (i + 1) / len(entries)) for i, value in enumerate(present)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ByteTimeline:
    """Cumulative bytes delivered to the peers over time, split by origin."""

    times: tuple[float, ...]
    """Seconds since ``t0``, ascending."""
    from_source: tuple[int, ...]
    from_peers: tuple[int, ...]


def byte_timeline(
    reports: Iterable[Report | None], *, swarm_id: str, source_id: str, t0: float
) -> ByteTimeline:
    """Merge every peer's ``arrivals`` into cumulative curves of bytes from the source/peers."""
    events: list[tuple[float, bool, int]] = []
    for report in reports:
        if report is None:
            continue
        session = session_of(report, swarm_id)
        if session is None:
            continue
        offset = float(report.get("wall_offset", 0.0))
        for when, sender, nbytes in session.get("arrivals") or ():
            events.append((float(when) + offset - t0, str(sender) == source_id, int(nbytes)))
    events.sort(key=lambda event: event[0])
    times: list[float] = []
    source: list[int] = []
    peers: list[int] = []
    total_source = total_peers = 0
    for when, is_source, nbytes in events:
        if is_source:
            total_source += nbytes
        else:
            total_peers += nbytes
        times.append(when)
        source.append(total_source)
        peers.append(total_peers)
    return ByteTimeline(times=tuple(times), from_source=tuple(source), from_peers=tuple(peers))


# -- the whole run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineFigures:
    """The client-server baseline: N plain HTTP downloads from one server capped at u_s."""

    rate: float
    size: int
    joined_at: tuple[float, ...]
    """Each client's start, seconds after the first client's."""
    completion_times: tuple[float | None, ...]
    """Each client's download time (None: it failed or timed out)."""
    errors: tuple[str, ...] = ()

    @property
    def last_completion(self) -> float | None:
        """Seconds from the first client's start to the last completion (None if any failed)."""
        if not self.completion_times or any(t is None for t in self.completion_times):
            return None
        return max(
            start + t
            for start, t in zip(self.joined_at, self.completion_times, strict=True)
            if t is not None
        )

    @property
    def bound(self) -> float:
        """N * F / u_s: the least time the one server needs to send every copy."""
        return len(self.completion_times) * self.size / self.rate


@dataclass(frozen=True, slots=True, kw_only=True)
class VodFigures:
    """Every figure of a vod lab run."""

    swarm_id: str
    size: int
    source_id: str
    source_uploaded: int
    peers: tuple[PeerFigures, ...]
    bound: FluidBound
    transfers: TransferCheck
    timeline: ByteTimeline
    baseline: BaselineFigures | None = None
    targets: dict[str, float] = field(default_factory=lambda: vod_targets(nat=False))

    @property
    def all_complete(self) -> bool:
        """Whether every peer completed."""
        return bool(self.peers) and all(peer.complete for peer in self.peers)

    @property
    def last_completion(self) -> float | None:
        """Seconds from the first join to the last peer's completion (None if any did not)."""
        if not self.all_complete:
            return None
        return max(peer.completed_at for peer in self.peers if peer.completed_at is not None)

    @property
    def ratio(self) -> float | None:
        """The last completion as a multiple of the fluid bound."""
        last = self.last_completion
        if last is None or self.bound.seconds <= 0:
            return None
        return last / self.bound.seconds

    @property
    def delivered(self) -> int:
        """Bytes the peers received and kept, from anyone."""
        return sum(peer.from_source + peer.from_peers for peer in self.peers)

    @property
    def from_source(self) -> int:
        """Bytes the peers received from the source."""
        return sum(peer.from_source for peer in self.peers)

    @property
    def cancelled(self) -> dict[str, int]:
        """Requests the peers gave up, by reason, summed over the peers."""
        total: dict[str, int] = {}
        for peer in self.peers:
            for reason, count in peer.cancelled.items():
                total[reason] = total.get(reason, 0) + count
        return dict(sorted(total.items()))

    @property
    def source_share(self) -> float | None:
        """The source's share of all bytes delivered (None when nothing was delivered)."""
        return self.from_source / self.delivered if self.delivered else None

    def to_json(self) -> dict[str, Any]:
        """Every figure as a JSON-ready dictionary (the ``figures`` part of report.json)."""
        times = [peer.completion_time for peer in self.peers if peer.completion_time is not None]
        ratio, share = self.ratio, self.source_share
        return {
            "swarm_id": self.swarm_id,
            "size": self.size,
            "source": {"peer_id": self.source_id, "uploaded_bytes": self.source_uploaded},
            "peers": [asdict(peer) for peer in self.peers],
            "all_complete": self.all_complete,
            "bound": {
                "seconds": self.bound.seconds,
                "limiting": self.bound.limiting,
                "source_term": self.bound.source_term,
                "download_term": self.bound.download_term,
                "aggregate_term": self.bound.aggregate_term,
            },
            "last_completion": self.last_completion,
            "ratio": ratio,
            "completion_time": {
                "min": min(times) if times else None,
                "mean": sum(times) / len(times) if times else None,
                "max": max(times) if times else None,
            },
            "bytes": {
                "delivered": self.delivered,
                "from_source": self.from_source,
                "from_peers": self.delivered - self.from_source,
                "source_share": share,
                "source_uploaded": self.source_uploaded,
                "source_uploaded_share": (
                    self.source_uploaded / self.delivered if self.delivered else None
                ),
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
                "mismatches": [
                    {**asdict(pair), "difference": pair.difference}
                    for pair in self.transfers.mismatches
                ],
                "pairs": len(self.transfers.pairs),
                "cancelled": self.cancelled,
                "discarded": sum(peer.discarded for peer in self.peers),
            },
            "baseline": None
            if self.baseline is None
            else {
                **asdict(self.baseline),
                "last_completion": self.baseline.last_completion,
                "bound": self.baseline.bound,
            },
            "targets": {
                "ratio": self.targets["ratio"],
                "ratio_met": ratio is not None and ratio <= self.targets["ratio"],
                "source_share": self.targets["source_share"],
                "source_share_met": share is not None and share <= self.targets["source_share"],
            },
        }


def analyse_vod(
    *,
    swarm_id: str,
    source: Report,
    peers: Sequence[tuple[str, Report | None, bool]],
    source_rate: float | None,
    peer_rates: Sequence[float | None],
    download_rates: Sequence[float | None] = (),
    baseline: BaselineFigures | None = None,
    nat: bool = False,
) -> VodFigures:
    """Figures of a vod run from the source's report and each peer's (name, report, churned).

    ``peer_rates`` and ``download_rates`` are the caps the peers were started with (one per
    peer; None for uncapped), which the bound needs; ``nat``: peers ran behind NAT, so the
    figures are held to :func:`vod_targets` of such a run.
    """
    source_session = session_of(source, swarm_id)
    source_id = str(source.get("peer_id", ""))
    peer_reports = [report for _, report, _ in peers]
    t0 = first_join(peer_reports, swarm_id) or 0.0
    figures = tuple(
        peer_figures(name, report, swarm_id=swarm_id, source_id=source_id, t0=t0, churned=churned)
        for name, report, churned in peers
    )
    size = int(source_session.get("size") or 0) if source_session else 0
    return VodFigures(
        swarm_id=swarm_id,
        size=size,
        source_id=source_id,
        source_uploaded=int(source_session.get("uploaded_bytes", 0)) if source_session else 0,
        peers=figures,
        bound=fluid_bound(size, source_rate, peer_rates, download_rates),
        transfers=check_transfers([source, *(r for r in peer_reports if r is not None)], swarm_id),
        timeline=byte_timeline(peer_reports, swarm_id=swarm_id, source_id=source_id, t0=t0),
        baseline=baseline,
        targets=vod_targets(nat=nat),
    )


# -- report.md --------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _mib(value: float) -> str:
    return f"{value / MiB:.2f} MiB"


def _rate(value: float | None) -> str:
    return "uncapped" if value is None else f"{value / MiB:.2f} MiB/s"


def render_markdown(document: Mapping[str, Any], *, after_targets: str = "") -> str:
    """The readable summary (report.md) of a report.json document; ``after_targets``, a
    section of its own (e.g. the NAT lab's PPSPP against HTTP only), follows the targets."""
    params = document["parameters"]
    fig = document["figures"]
    bound, targets, volume = fig["bound"], fig["targets"], fig["bytes"]
    lines = [
        "# ppsp lab vod",
        "",
        f"Command: `{document['command']}`",
        "",
        f"{params['peers']} peers fetch {_mib(fig['size'])} from one source capped at "
        f"{_rate(params['source_rate'])}; peers upload at {_rate(params['peer_rate'])}, "
        f"download {_rate(params.get('download_rate'))}; joins spread over "
        f"{params['join_spread']:.1f} s; churn {params['churn']:.0%} "
        f"(seed {params['seed']}).",
        "",
        "## Result",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| fluid bound T_min ({bound['limiting']} term) | {_seconds(bound['seconds'])} | |",
        f"| last peer complete (from first join) | {_seconds(fig['last_completion'])} | |",
    ]
    ratio = fig["ratio"]
    ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
    lines.append(f"| ratio to the bound | {ratio_text} | <= {targets['ratio']:.2f}x |")
    share = volume["source_share"]
    share_text = "-" if share is None else f"{share:.1%}"
    lines.append(
        f"| source share of bytes delivered | {share_text} | <= {targets['source_share']:.0%} |"
    )
    sent_share = volume["source_uploaded_share"]
    lines.append(
        "| source bytes sent / bytes delivered | "
        f"{'-' if sent_share is None else f'{sent_share:.1%}'} | |"
    )
    joins = [p["joined_at"] for p in fig["peers"] if p["joined_at"] is not None]
    if joins:
        lines.append(
            f"| joins observed over (planned {params['join_spread']:.1f} s; process start-up "
            f"adds to it) | {_seconds(max(joins))} | |"
        )
    times = fig["completion_time"]
    lines.append(
        f"| completion time per peer (min / mean / max) | {_seconds(times['min'])} / "
        f"{_seconds(times['mean'])} / {_seconds(times['max'])} | |"
    )
    baseline = fig.get("baseline")
    if baseline is not None:
        lines.append(
            f"| client-server baseline, last complete | {_seconds(baseline['last_completion'])} "
            f"(bound N*F/u_s {_seconds(baseline['bound'])}) | |"
        )
        if baseline["last_completion"] and fig["last_completion"]:
            speedup = baseline["last_completion"] / fig["last_completion"]
            lines.append(f"| swarm speed-up over the baseline | {speedup:.2f}x | |")
    lines += ["", "## Targets", ""]
    if not fig["all_complete"]:
        missing = [p["name"] for p in fig["peers"] if not p["complete"]]
        lines.append(f"- Not every peer completed: {', '.join(missing)}.")
    if ratio is not None:
        if targets["ratio_met"]:
            lines.append(f"- Completion target met: {ratio:.2f}x <= {targets['ratio']:.2f}x.")
        else:
            over = fig["last_completion"] - targets["ratio"] * bound["seconds"]
            lines.append(
                f"- Completion target missed by {ratio - targets['ratio']:.2f}x "
                f"({over:.2f} s later than {targets['ratio']:.2f} x T_min = "
                f"{targets['ratio'] * bound['seconds']:.2f} s)."
            )
    if share is not None:
        if targets["source_share_met"]:
            lines.append(
                f"- Source share target met: {share:.1%} <= {targets['source_share']:.0%}."
            )
        else:
            extra = volume["from_source"] - targets["source_share"] * volume["delivered"]
            lines.append(
                f"- Source share target missed by {share - targets['source_share']:.1%} "
                f"points ({_mib(extra)} more from the source than "
                f"{targets['source_share']:.0%} of {_mib(volume['delivered'])})."
            )
    if after_targets:
        lines += ["", after_targets.strip("\n")]
    transfers = fig["transfers"]
    lines += ["", "## Bytes sent against bytes received", ""]
    lines.append(
        f"Sent (sum of uploaded_to): {transfers['total_sent']} bytes; received (sum of "
        f"received_from): {transfers['total_received']} bytes; "
        f"{transfers['pairs']} sender/receiver pairs."
    )
    cancelled = transfers.get("cancelled")
    if cancelled is not None:
        reasons = ", ".join(f"{reason} {count}" for reason, count in cancelled.items())
        lines.append(
            f"Requests the peers gave up: {reasons or 'none'}; bytes received and not kept: "
            f"{transfers.get('discarded', 0)}."
        )
    if transfers["consistent"]:
        lines.append("Every pair agrees.")
    else:
        lines.append(
            f"{len(transfers['mismatches'])} pairs differ. Sent but not kept by the receiver "
            f"(chunks cancelled in flight, e.g. endgame duplicates): {transfers['unkept']} "
            f"bytes; pairs where the receiver counted more than was sent (a bookkeeping "
            f"error): {transfers['over_received']} ({transfers['over_received_bytes']} bytes)."
        )
        lines += [
            "",
            "| sender | receiver | sent | received | difference |",
            "|---|---|---|---|---|",
        ]
        for pair in transfers["mismatches"][:40]:
            lines.append(
                f"| {pair['sender'][:12]} | {pair['receiver'][:12]} | {pair['sent']} | "
                f"{pair['received']} | {pair['difference']} |"
            )
    if transfers["unmatched_sent"] or transfers["unmatched_received"]:
        lines.append(
            f"\nUnmatched (the other side's report is missing): sent "
            f"{transfers['unmatched_sent']} bytes, "
            f"received {transfers['unmatched_received']} bytes."
        )
    lines += [
        "",
        "## Peers",
        "",
        "| peer | joined | first chunk | first from a peer | complete after | from source "
        "| from peers | senders | uploaded | leaves |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for peer in fig["peers"]:
        lines.append(
            f"| {peer['name']} | {_seconds(peer['joined_at'])} | "
            f"{_seconds(peer.get('first_byte'))} | {_seconds(peer.get('first_peer_byte'))} | "
            f"{_seconds(peer['completion_time'])} | {_mib(peer['from_source'])} | "
            f"{_mib(peer['from_peers'])} | {peer.get('senders', '-')} | "
            f"{_mib(peer['uploaded'])} | "
            f"{'yes' if peer['churned'] else 'no'} |"
        )
    cpu = document.get("cpu")
    if cpu:
        lines += [
            "",
            "## CPU",
            "",
            f"The tracker, source and peers used {cpu['total']:.1f} CPU seconds over the "
            f"{cpu['wall']:.1f} s of the swarm on {cpu['cores']} cores: "
            f"{cpu['load']:.0%} of the machine (processes that had already left are not "
            "counted). Near 100%, a run measures the CPU rather than the rate caps.",
        ]
    plots = document.get("plots") or []
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({name})" for name in plots]
    lines.append("")
    return "\n".join(lines)
