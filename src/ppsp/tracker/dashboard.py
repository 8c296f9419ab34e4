"""What the tracker's dashboard shows, from what the storage holds (sans-I/O).

The dashboard (``GET /`` and its JSON API, :mod:`ppsp.tracker.net.dashboard`) reads swarms
through :meth:`~ppsp.tracker.storage.Storage.swarm_views`: each swarm's exact number of members
and its members (all of them, or a random sample of :data:`MEMBERS_READ`), each with the latest
statistics of its STAT_REPORTs and, where asked, its content map.  This module turns that into
what is shown, and keeps the history of the last hour:

- :func:`swarm_figures`: a swarm's kind (stored or live), seeders and leechers, the traffic its
  members reported and their quality of experience (QoE, what live viewers report);
- :func:`peer_rows`: its peers, their addresses shown as :func:`show_address` says (masked by
  default: an IPv4 address's /24, an IPv6 address's /48, no port) and their content-map
  coverage (:func:`map_coverage`);
- :class:`RecentReads`: what was read of each swarm lately, answered again for
  :data:`READ_AGAIN_AFTER` seconds (at most :data:`READS_KEPT` swarms), so that the API
  reads a swarm's members and content maps at most once per interval, however often it is
  asked;
- :class:`History`: a bounded ring of samples, one per :data:`HISTORY_INTERVAL` for
  :data:`HISTORY_SPAN`, of the tracker's counts and of up to :data:`HISTORY_SWARMS` swarms;
  the time of each sample is passed in;
- :func:`parse_page` and :func:`parse_swarm_id`: the API's input, refused with
  :class:`~ppsp.errors.DashboardRequestError` (400) and a one-line message.

The first two, with the types they answer, are in :mod:`ppsp.tracker.dashboard_figures`
(importable from here too).  Where a swarm has more members than were read, counts and sums
are scaled from the members read (``sampled`` is then true); means, minimums and maximums are
those of the members read.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ppsp.errors import DashboardRequestError
from ppsp.tracker.dashboard_figures import (
    LIVE_REPRESENTATION,
    AddressDisplay,
    PeerRow,
    QoeSummary,
    SwarmFigures,
    SwarmKind,
    ViewerQoe,
    map_coverage,
    peer_rows,
    show_address,
    swarm_figures,
    viewer_qoe,
)
from ppsp.tracker.storage.base import StorageCounts
from ppsp.wire.fields import is_swarm_id

__all__ = [
    "DEFAULT_PER_PAGE",
    "HISTORY_INTERVAL",
    "HISTORY_SPAN",
    "HISTORY_SWARMS",
    "LIVE_REPRESENTATION",
    "MAPS_READ_LISTED",
    "MAX_PAGE",
    "MAX_PER_PAGE",
    "MEMBERS_READ",
    "READS_KEPT",
    "READ_AGAIN_AFTER",
    "AddressDisplay",
    "History",
    "PeerRow",
    "QoeSummary",
    "RecentReads",
    "SwarmFigures",
    "SwarmKind",
    "SwarmSample",
    "TotalsSample",
    "ViewerQoe",
    "figures_json",
    "map_coverage",
    "parse_page",
    "parse_swarm_id",
    "peer_json",
    "peer_rows",
    "show_address",
    "swarm_figures",
    "viewer_qoe",
]

DEFAULT_PER_PAGE = 20
"""Swarms on a page of ``GET /api/swarms`` unless ``per_page`` says otherwise."""

MAX_PER_PAGE = 50
"""Most swarms on one page."""

MAX_PAGE = 1_000_000
"""Highest page number asked for (the tracker holds at most a million swarms by default)."""

MEMBERS_READ = 200
"""Members read per swarm (all of a smaller swarm, a random sample of a larger one)."""

MAPS_READ_LISTED = 4
"""Content maps read per swarm of a page of the list: enough to tell its kind."""

READ_AGAIN_AFTER = 2.0
"""Seconds what the API read of a swarm is answered again before the swarm is read anew."""

READS_KEPT = 256
"""Most swarms whose reads are kept at once (the least recently read are forgotten first)."""

HISTORY_INTERVAL = 10.0
"""Seconds between two samples of the history."""

HISTORY_SPAN = 3600.0
"""Seconds of history kept (the last hour)."""

HISTORY_SWARMS = 100
"""Most swarms whose history is kept."""


# -- what was read lately ----------------------------------------------------------------------

_Read = TypeVar("_Read")


class RecentReads(Generic[_Read]):
    """What was read of each swarm lately, by swarm ID, each kept ``seconds`` from when it was
    read, at most ``size`` of them (the oldest read forgotten first); time is passed in.

    The dashboard's API answers from it: a swarm's members and content maps are read (and
    its figures computed) at most once per ``seconds``, whatever the number of requests, so
    that what a request costs does not grow with the content maps of the swarm's members.
    """

    def __init__(self, *, seconds: float = READ_AGAIN_AFTER, size: int = READS_KEPT) -> None:
        if not (seconds >= 0 and size >= 0):
            raise ValueError("a read is kept a time of zero or more, and so many of them")
        self.seconds = seconds
        self.size = size
        self._kept: collections.OrderedDict[str, tuple[float, _Read]] = collections.OrderedDict()

    def get(self, swarm_id: str, now: float) -> _Read | None:
        """What was read of the swarm less than ``seconds`` before ``now`` (None: nothing)."""
        found = self._kept.get(swarm_id)
        if found is None:
            return None
        if not 0 <= now - found[0] < self.seconds:  # too old, or the clock went back
            del self._kept[swarm_id]
            return None
        return found[1]

    def put(self, swarm_id: str, now: float, read: _Read) -> None:
        """Keep ``read`` as what was read of the swarm at ``now``."""
        if self.size == 0:
            return
        self._kept.pop(swarm_id, None)
        while len(self._kept) >= self.size:
            self._kept.popitem(last=False)
        self._kept[swarm_id] = (now, read)

    def __len__(self) -> int:
        return len(self._kept)


# -- the history -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TotalsSample:
    """The tracker at one sample: its counts, and the traffic rates of the swarms followed."""

    t: float
    peers: int
    swarms: int
    memberships: int
    up_rate: float | None
    """Bytes per second the followed swarms' members reported uploading since the sample
    before (None: no swarm had a sample before)."""
    down_rate: float | None


@dataclass(frozen=True, slots=True)
class SwarmSample:
    """One swarm at one sample."""

    t: float
    members: int
    seeders: int
    uploaded: int
    downloaded: int
    up_rate: float | None
    """Bytes per second more reported uploaded than at the sample before (never negative:
    members that leave take their counts with them)."""
    down_rate: float | None
    continuity: float | None
    """The mean continuity of its live viewers."""


class History:
    """The last ``span`` seconds of the tracker and of up to ``max_swarms`` swarms, a sample
    every ``interval`` seconds; time is passed in.

    The swarms followed are the first ones offered (:meth:`to_sample`) while there is room; a
    swarm is forgotten once it has had no member for the whole span, which makes room for
    another.  A clock that goes back (a wall clock set back) starts the history again.
    """

    def __init__(
        self,
        *,
        interval: float = HISTORY_INTERVAL,
        span: float = HISTORY_SPAN,
        max_swarms: int = HISTORY_SWARMS,
    ) -> None:
        if not (interval > 0 and span >= interval and max_swarms >= 0):
            raise ValueError("a history needs a positive interval within its span")
        self.interval = interval
        self.span = span
        self.max_swarms = max_swarms
        self._capacity = math.ceil(span / interval)
        self._totals: collections.deque[TotalsSample] = collections.deque(maxlen=self._capacity)
        self._swarms: dict[str, collections.deque[SwarmSample]] = {}
        self._due: float | None = None  # when the next sample is due; None: at once

    @property
    def followed(self) -> list[str]:
        """The swarms whose history is kept."""
        return list(self._swarms)

    def wait(self, now: float) -> float:
        """Seconds until the next sample is due (0: now)."""
        if self._due is None or now >= self._due:
            return 0.0
        return min(self._due - now, self.interval)

    def to_sample(self, offered: Iterable[str]) -> list[str]:
        """The swarms to read for the next sample: those followed, then swarms of ``offered``
        not followed yet, while there is room."""
        chosen = list(self._swarms)
        room = self.max_swarms - len(chosen)
        seen = set(chosen)
        for swarm_id in offered:
            if room <= 0:
                break
            if swarm_id not in seen:
                seen.add(swarm_id)
                chosen.append(swarm_id)
                room -= 1
        return chosen

    def skip(self, now: float) -> None:
        """No sample could be taken now (the storage failed): try again an interval later."""
        self._due = now + self.interval

    def record(self, now: float, counts: StorageCounts, figures: Iterable[SwarmFigures]) -> None:
        """Add the sample taken at ``now``: the tracker's counts and the figures of the swarms
        read (those followed, and new ones while there is room)."""
        if self._totals and now < self._totals[-1].t:
            self._totals.clear()
            self._swarms.clear()
        self._due = now + self.interval
        up_total = down_total = 0.0
        rated = False
        for figure in figures:
            series = self._swarms.get(figure.swarm_id)
            if series is None:
                if figure.members == 0 or len(self._swarms) >= self.max_swarms:
                    continue
                series = self._swarms[figure.swarm_id] = collections.deque(maxlen=self._capacity)
            sample = self._swarm_sample(now, figure, series[-1] if series else None)
            series.append(sample)
            if sample.up_rate is not None and sample.down_rate is not None:
                up_total += sample.up_rate
                down_total += sample.down_rate
                rated = True
        self._totals.append(
            TotalsSample(
                t=now,
                peers=counts.peers,
                swarms=counts.swarms,
                memberships=counts.memberships,
                up_rate=up_total if rated else None,
                down_rate=down_total if rated else None,
            )
        )
        self._forget(now)

    def _swarm_sample(
        self, now: float, figure: SwarmFigures, before: SwarmSample | None
    ) -> SwarmSample:
        up_rate = down_rate = None
        # A rate needs the sample just before (not one from before a gap in the history).
        if before is not None and 0 < now - before.t <= 2.5 * self.interval:
            elapsed = now - before.t
            up_rate = max(0, figure.uploaded - before.uploaded) / elapsed
            down_rate = max(0, figure.downloaded - before.downloaded) / elapsed
        return SwarmSample(
            t=now,
            members=figure.members,
            seeders=figure.seeders,
            uploaded=figure.uploaded,
            downloaded=figure.downloaded,
            up_rate=up_rate,
            down_rate=down_rate,
            continuity=None if figure.qoe is None else figure.qoe.continuity_mean,
        )

    def _forget(self, now: float) -> None:
        """Drop samples older than the span, and swarms without a member in all of it."""
        oldest = now - self.span
        while self._totals and self._totals[0].t <= oldest:
            self._totals.popleft()
        for swarm_id, series in list(self._swarms.items()):
            while series and series[0].t <= oldest:
                series.popleft()
            if not any(sample.members for sample in series):
                del self._swarms[swarm_id]

    def latest(self, swarm_id: str) -> SwarmSample | None:
        """The swarm's last sample (None: not followed)."""
        series = self._swarms.get(swarm_id)
        return series[-1] if series else None

    def totals_json(self, now: float) -> dict[str, Any]:
        """The tracker's series, each sample's time in seconds before ``now``."""
        samples = list(self._totals)
        return {
            "interval": self.interval,
            "span": self.span,
            "t": [_age(s.t, now) for s in samples],
            "peers": [s.peers for s in samples],
            "swarms": [s.swarms for s in samples],
            "memberships": [s.memberships for s in samples],
            "up_rate": [_rate(s.up_rate) for s in samples],
            "down_rate": [_rate(s.down_rate) for s in samples],
            "followed": len(self._swarms),
        }

    def swarm_json(self, swarm_id: str, now: float) -> dict[str, Any] | None:
        """The swarm's series (None: its history is not kept)."""
        series = self._swarms.get(swarm_id)
        if series is None:
            return None
        samples = list(series)
        return {
            "interval": self.interval,
            "span": self.span,
            "t": [_age(s.t, now) for s in samples],
            "members": [s.members for s in samples],
            "seeders": [s.seeders for s in samples],
            "leechers": [s.members - s.seeders for s in samples],
            "up_rate": [_rate(s.up_rate) for s in samples],
            "down_rate": [_rate(s.down_rate) for s in samples],
            "continuity": [_round(s.continuity, 4) for s in samples],
        }


def _age(t: float, now: float) -> float:
    return round(min(0.0, t - now), 1)


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# -- JSON --------------------------------------------------------------------------------------


def _qoe_json(qoe: QoeSummary | None) -> dict[str, Any] | None:
    if qoe is None:
        return None
    share = qoe.peer_share
    return {
        "viewers": qoe.viewers,
        "continuity_mean": _round(qoe.continuity_mean, 4),
        "continuity_min": _round(qoe.continuity_min, 4),
        "startup_delay_mean": _round(qoe.startup_delay_mean, 3),
        "delay_mean": _round(qoe.delay_mean, 3),
        "delay_max": _round(qoe.delay_max, 3),
        "chunks_skipped": qoe.chunks_skipped,
        "bytes_from_source": qoe.bytes_from_source,
        "bytes_from_peers": qoe.bytes_from_peers,
        "peer_share": _round(share, 4),
    }


def figures_json(figures: SwarmFigures, latest: SwarmSample | None = None) -> dict[str, Any]:
    """A swarm's figures as the API answers them; ``latest``: its last history sample, whose
    traffic rates are given too."""
    return {
        "id": figures.swarm_id,
        "kind": figures.kind.value,
        "members": figures.members,
        "seeders": figures.seeders,
        "leechers": figures.leechers,
        "read": figures.read,
        "sampled": figures.sampled,
        "reporting": figures.reporting,
        "uploaded_bytes": figures.uploaded,
        "downloaded_bytes": figures.downloaded,
        "up_rate": None if latest is None else _rate(latest.up_rate),
        "down_rate": None if latest is None else _rate(latest.down_rate),
        "qoe": _qoe_json(figures.qoe),
    }


def peer_json(row: PeerRow) -> dict[str, Any]:
    """A peer of a swarm's page as the API answers it."""
    qoe = row.qoe
    return {
        "peer_id": row.peer_id,
        "mode": row.mode.value,
        "addresses": list(row.addresses),
        "held": row.held,
        "described": row.described,
        "coverage": _round(row.coverage, 4),
        "uploaded_bytes": row.uploaded,
        "downloaded_bytes": row.downloaded,
        "links": row.links,
        "qoe": None
        if qoe is None
        else {
            "continuity": _round(qoe.continuity, 4),
            "startup_delay": _round(qoe.startup_delay, 3),
            "delay_behind_source": _round(qoe.delay_behind_source, 3),
            "chunks_skipped": qoe.chunks_skipped,
            "chunks_played": qoe.chunks_played,
            "bytes_from_source": qoe.bytes_from_source,
            "bytes_from_peers": qoe.bytes_from_peers,
        },
    }


# -- the API's input ---------------------------------------------------------------------------


def _whole(query: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    # No int() of a long string: at most as many digits as the bound has.
    if not (0 < len(text) <= len(str(high)) and text.isascii() and text.isdigit()):
        raise DashboardRequestError(f"{name} must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise DashboardRequestError(f"{name} must be a whole number from {low} to {high}")
    return value


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (from 1, default 1) and ``per_page`` (1 to :data:`MAX_PER_PAGE`, default
    :data:`DEFAULT_PER_PAGE`) of a query; anything else in it is ignored."""
    page = _whole(query, "page", 1, MAX_PAGE, 1)
    per_page = _whole(query, "per_page", 1, MAX_PER_PAGE, DEFAULT_PER_PAGE)
    return page, per_page


def parse_swarm_id(text: str) -> str:
    """A swarm ID of a path, checked by the codecs' rule (:func:`~ppsp.wire.fields.is_swarm_id`:
    1 to 256 characters, no whitespace or control characters, not ``ALL`` or ``nil``)."""
    if not is_swarm_id(text):
        raise DashboardRequestError(
            "not a swarm ID (1 to 256 characters, no spaces or controls, not ALL or nil)"
        )
    return text
