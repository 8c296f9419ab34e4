"""What the tracker's dashboard shows of a swarm, from what the storage read of it (sans-I/O).

From a :class:`~ppsp.tracker.storage.base.SwarmView` (each swarm's exact number of members and
the members read, with their latest statistics and, where asked, their content maps):

- :func:`swarm_figures`: a swarm's kind (stored or live), seeders and leechers, the traffic its
  members reported and their quality of experience (QoE, what live viewers report:
  :func:`viewer_qoe`, summed up in a :class:`QoeSummary`);
- :func:`peer_rows`: its peers, their addresses shown as :func:`show_address` says (masked by
  default: an IPv4 address's /24, an IPv6 address's /48, no port) and their content-map
  coverage (:func:`map_coverage`).

Where a swarm has more members than were read, counts and sums are scaled from the members
read (``sampled`` is then true); means, minimums and maximums are those of the members read.
Re-exported by :mod:`ppsp.tracker.dashboard`, which keeps what was read lately, the history
and the API's JSON and input.

Layer: sans-I/O (the tracker's core): pure functions and frozen dataclasses.  Imports only
:mod:`ppsp.wire` and the storage interface, never :mod:`ppsp.tracker.dashboard` (which imports
it).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ppsp.tracker.storage.base import SwarmView
from ppsp.wire.fields import DECIMAL_RE, MAX_INTEGER
from ppsp.wire.peer import Property
from ppsp.wire.tracker import ContentMap, PeerAddress, PeerMode, StreamStatistics

__all__ = [
    "LIVE_REPRESENTATION",
    "AddressDisplay",
    "PeerRow",
    "QoeSummary",
    "SwarmFigures",
    "SwarmKind",
    "ViewerQoe",
    "map_coverage",
    "peer_rows",
    "show_address",
    "swarm_figures",
    "viewer_qoe",
]

LIVE_REPRESENTATION = "live"
"""The representation ID of a live stream's chunk maps (docs/PROTOCOL.md, "Live streaming"):
a content map with it says that its swarm is live."""

_MAX_SECONDS = 10_000_000.0
"""Largest delay believed from a report (beyond it a value is taken as nonsense and left out)."""


class AddressDisplay(StrEnum):
    """How the dashboard shows peers' addresses (``--dashboard-addresses``)."""

    MASKED = "masked"
    """The network only: an IPv4 address's /24 (``192.0.2.x``), an IPv6 address's /48."""
    FULL = "full"
    """The whole address with its port."""


class SwarmKind(StrEnum):
    """What a swarm streams, as far as its members' reports tell."""

    STORED = "stored"
    """Stored content: a content map of another representation than ``live``."""
    LIVE = "live"
    """A live stream: a ``live`` content map, or viewers reporting playback figures."""
    UNKNOWN = "unknown"
    """No member reported anything that tells."""


# -- quality of experience ---------------------------------------------------------------------

_CONTINUITY = Property.CONTINUITY_INDEX.value
_STARTUP = Property.STARTUP_DELAY.value
_DELAY = Property.DELAY_BEHIND_SOURCE.value
_SKIPPED = Property.CHUNKS_SKIPPED.value
_PLAYED = "ChunksPlayed"
_FROM_SOURCE = "BytesFromSource"
_FROM_PEERS = "BytesFromPeers"
_QOE_NAMES = frozenset(
    {_CONTINUITY, _STARTUP, _DELAY, _SKIPPED, _PLAYED, _FROM_SOURCE, _FROM_PEERS}
)
"""The extra statistics a live viewer reports (``QoE.as_extra`` of the peer's playback)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerQoe:
    """What one live viewer reported of its playback (None: not reported, or not believable)."""

    continuity: float | None = None
    """Chunks played on time over chunks due, in [0, 1]."""
    startup_delay: float | None = None
    """Seconds from joining to the first chunk played."""
    delay_behind_source: float | None = None
    """Seconds between a chunk's making at the source and its playing."""
    chunks_skipped: int | None = None
    chunks_played: int | None = None
    bytes_from_source: int | None = None
    bytes_from_peers: int | None = None


def _fraction(text: str) -> float | None:
    value = _number(text)
    return value if value is not None and 0.0 <= value <= 1.0 else None


def _seconds(text: str) -> float | None:
    value = _number(text)
    return value if value is not None and 0.0 <= value <= _MAX_SECONDS else None


def _number(text: str) -> float | None:
    # Statistics are tokens of up to 256 characters; float() reads "nan", "1e999", "1_0" too.
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(text: str) -> int | None:
    if DECIMAL_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= MAX_INTEGER else None


def viewer_qoe(stats: StreamStatistics | None) -> ViewerQoe | None:
    """The playback figures in a member's statistics; None when it reported none (a seeder, a
    source, a stored download).  A value that is not a number in its range is left out."""
    if stats is None or not stats.extra:
        return None
    found = {name: value for name, value in stats.extra if name in _QOE_NAMES}
    if not found:
        return None

    def get(name: str) -> str:
        return found.get(name, "")

    return ViewerQoe(
        continuity=_fraction(get(_CONTINUITY)) if _CONTINUITY in found else None,
        startup_delay=_seconds(get(_STARTUP)) if _STARTUP in found else None,
        delay_behind_source=_seconds(get(_DELAY)) if _DELAY in found else None,
        chunks_skipped=_count(get(_SKIPPED)) if _SKIPPED in found else None,
        chunks_played=_count(get(_PLAYED)) if _PLAYED in found else None,
        bytes_from_source=_count(get(_FROM_SOURCE)) if _FROM_SOURCE in found else None,
        bytes_from_peers=_count(get(_FROM_PEERS)) if _FROM_PEERS in found else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class QoeSummary:
    """The live viewers of a swarm together (those read that reported playback figures)."""

    viewers: int
    """Members read that reported playback figures."""
    continuity_mean: float | None = None
    continuity_min: float | None = None
    """The worst viewer's continuity."""
    startup_delay_mean: float | None = None
    delay_mean: float | None = None
    delay_max: float | None = None
    chunks_skipped: int = 0
    bytes_from_source: int = 0
    bytes_from_peers: int = 0

    @property
    def peer_share(self) -> float | None:
        """The share of the viewers' chunk bytes that came from other peers, not the source."""
        total = self.bytes_from_source + self.bytes_from_peers
        return None if total == 0 else self.bytes_from_peers / total


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _summarize_qoe(reports: Sequence[ViewerQoe], scale: float) -> QoeSummary | None:
    if not reports:
        return None
    continuity = [q.continuity for q in reports if q.continuity is not None]
    startup = [q.startup_delay for q in reports if q.startup_delay is not None]
    delay = [q.delay_behind_source for q in reports if q.delay_behind_source is not None]
    return QoeSummary(
        viewers=_scaled(len(reports), scale),
        continuity_mean=_mean(continuity),
        continuity_min=min(continuity) if continuity else None,
        startup_delay_mean=_mean(startup),
        delay_mean=_mean(delay),
        delay_max=max(delay) if delay else None,
        chunks_skipped=_scaled(sum(q.chunks_skipped or 0 for q in reports), scale),
        bytes_from_source=_scaled(sum(q.bytes_from_source or 0 for q in reports), scale),
        bytes_from_peers=_scaled(sum(q.bytes_from_peers or 0 for q in reports), scale),
    )


def _scaled(value: int, scale: float) -> int:
    """A count or sum of the members read, for the whole swarm (within the wire's bound)."""
    if scale != 1.0:
        value = round(value * scale)
    return min(value, MAX_INTEGER)


# -- content maps ------------------------------------------------------------------------------


def map_coverage(content_map: ContentMap | None) -> tuple[int, int] | None:
    """How many chunks a content map holds and how many it describes (None: no map).

    A peer's map describes the chunks of its content (stored content: every chunk; live: the
    window it keeps), so the ratio is the share of them it holds.
    """
    if content_map is None:
        return None
    held = described = 0
    for representation in content_map.representations:
        for segment in representation.segments:
            size = max(0, segment.chunkmap_size)
            bits = int.from_bytes(segment.bitmap, "big")
            spare = len(segment.bitmap) * 8 - size
            # Bits past the size carry nothing (the codecs clear them; never counted here).
            held += (bits >> spare).bit_count() if spare >= 0 else bits.bit_count()
            described += size
    return held, described


def _kind_of_map(content_map: ContentMap | None) -> SwarmKind:
    if content_map is None or not content_map.representations:
        return SwarmKind.UNKNOWN
    for representation in content_map.representations:
        if representation.representation_id == LIVE_REPRESENTATION:
            return SwarmKind.LIVE
    return SwarmKind.STORED


# -- a swarm -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmFigures:
    """A swarm as the dashboard lists it (:func:`swarm_figures`)."""

    swarm_id: str
    kind: SwarmKind
    members: int
    seeders: int
    leechers: int
    read: int
    """Members read (all of them unless the swarm has more than were read)."""
    reporting: int
    """Members read that reported statistics for the swarm."""
    uploaded: int
    """Bytes the members reported uploading in the swarm (the latest report of each)."""
    downloaded: int
    """Bytes the members reported downloading."""
    qoe: QoeSummary | None = None
    """The live viewers' playback figures (None: no member reported any)."""

    @property
    def sampled(self) -> bool:
        """Whether the figures are scaled from a sample of the members."""
        return self.read < self.members


def swarm_figures(view: SwarmView) -> SwarmFigures:
    """The figures of a swarm from what the storage read of it."""
    sample = view.sample
    read = len(sample)
    scale = view.members / read if 0 < read < view.members else 1.0
    seeds = sum(1 for member in sample if member.member.mode is PeerMode.SEED)
    seeders = min(view.members, _scaled(seeds, scale))
    uploaded = downloaded = reporting = 0
    kind = SwarmKind.UNKNOWN
    reports: list[ViewerQoe] = []
    for member in sample:
        mapped = _kind_of_map(member.member.content_map)
        if mapped is SwarmKind.LIVE or (mapped is SwarmKind.STORED and kind is SwarmKind.UNKNOWN):
            kind = mapped  # one live map makes the swarm live
        stats = member.stats
        if stats is None:
            continue
        reporting += 1
        uploaded += stats.uploaded_bytes or 0
        downloaded += stats.downloaded_bytes or 0
        qoe = viewer_qoe(stats)
        if qoe is not None:
            reports.append(qoe)
    if reports:
        kind = SwarmKind.LIVE  # only live viewers report playback figures
    return SwarmFigures(
        swarm_id=view.swarm_id,
        kind=kind,
        members=view.members,
        seeders=seeders,
        leechers=view.members - seeders,
        read=read,
        reporting=reporting,
        uploaded=_scaled(uploaded, scale),
        downloaded=_scaled(downloaded, scale),
        qoe=_summarize_qoe(reports, scale),
    )


# -- its peers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerRow:
    """One peer of a swarm's page."""

    peer_id: str
    mode: PeerMode
    addresses: tuple[str, ...]
    """As :func:`show_address` shows them, each once."""
    held: int | None = None
    """Chunks its content map holds (None: no map stored)."""
    described: int | None = None
    """Chunks its content map describes."""
    uploaded: int | None = None
    downloaded: int | None = None
    links: int | None = None
    """Peers it reported being connected to."""
    qoe: ViewerQoe | None = None

    @property
    def coverage(self) -> float | None:
        """The share of the chunks its map describes that it holds (None: unknown)."""
        if self.held is None or not self.described:
            return None
        return min(1.0, self.held / self.described)


def show_address(address: PeerAddress, display: AddressDisplay) -> str:
    """An address as the dashboard shows it.

    Masked: the network only, an IPv4 address as its /24 (``192.0.2.x``), an IPv6 address as
    its /48 (``2001:db8:1::/48``; an IPv4-mapped one as its IPv4 /24), no port.  Full: the
    address and port (``192.0.2.1:7000``, ``[2001:db8::1]:7000``).
    """
    try:
        ip = ipaddress.ip_address(address.ip)
    except ValueError:
        return "(not an address)"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if display is AddressDisplay.FULL:
        return f"[{ip}]:{address.port}" if ip.version == 6 else f"{ip}:{address.port}"
    if ip.version == 4:
        return str(ip).rsplit(".", 1)[0] + ".x"
    return str(ipaddress.ip_network(f"{ip}/48", strict=False))


def peer_rows(view: SwarmView, display: AddressDisplay) -> list[PeerRow]:
    """The peers read of a swarm: seeders first, then by coverage (most first), then PeerID."""
    rows: list[PeerRow] = []
    for member_view in view.sample:
        member, stats = member_view.member, member_view.stats
        coverage = map_coverage(member.content_map)
        rows.append(
            PeerRow(
                peer_id=member.peer_id,
                mode=member.mode,
                addresses=tuple(dict.fromkeys(show_address(a, display) for a in member.addresses)),
                held=None if coverage is None else coverage[0],
                described=None if coverage is None else coverage[1],
                uploaded=None if stats is None else stats.uploaded_bytes,
                downloaded=None if stats is None else stats.downloaded_bytes,
                links=None if stats is None else stats.concurrent_links,
                qoe=viewer_qoe(stats),
            )
        )
    rows.sort(
        key=lambda row: (
            row.mode is not PeerMode.SEED,
            -(row.coverage if row.coverage is not None else -1.0),
            row.peer_id,
        )
    )
    return rows
