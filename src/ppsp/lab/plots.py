"""PNG plots of a lab run (matplotlib, Agg backend: no display needed).

One function per figure, each taking plain figures from :mod:`ppsp.lab.report` and a path, so
that other lab kinds (live: continuity, startup delay, delay behind the source per viewer) add
their own functions next to these without touching them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ppsp.lab.report import ByteTimeline, MiB, cdf


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _figure(path: Path, *args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    """A new figure (``plt.subplots(*args, **kwargs)``): its figure and axes, laid out and saved
    to ``path`` when the block ends without an error; closed in any case."""
    plt = _pyplot()
    fig, axes = plt.subplots(*args, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def _steps(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    xs = [0.0] + [x for x, _ in points]
    ys = [0.0] + [y for _, y in points]
    return xs, ys


def plot_completion_cdf(
    path: Path,
    swarm_times: Sequence[float | None],
    baseline_times: Sequence[float | None] | None = None,
    *,
    bound: float | None = None,
    title: str = "Completion time per peer",
) -> Path:
    """CDF of completion times (from each peer's join), the baseline's on the same axes."""
    with _figure(path, figsize=(7, 4.5)) as (_, ax):
        xs, ys = _steps(cdf(swarm_times))
        ax.step(xs, ys, where="post", label="ppsp swarm")
        if baseline_times is not None:
            bx, by = _steps(cdf(baseline_times))
            ax.step(bx, by, where="post", label="client-server baseline")
        if bound is not None and bound > 0:
            ax.axvline(bound, color="grey", linestyle="--", label=f"fluid bound {bound:.1f} s")
        ax.set_xlabel("seconds from join to completion")
        ax.set_ylabel("fraction of peers complete")
        ax.set_ylim(0, 1.05)
        ax.set_xlim(left=0)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
    return path


def plot_bytes_over_time(
    path: Path, timeline: ByteTimeline, *, title: str = "Bytes delivered to peers"
) -> Path:
    """Cumulative bytes the peers received from the source and from each other, over time."""
    with _figure(path, figsize=(7, 4.5)) as (_, ax):
        times = [0.0, *timeline.times]
        ax.step(
            times,
            [0.0, *(b / MiB for b in timeline.from_source)],
            where="post",
            label="from the source",
        )
        ax.step(
            times, [0.0, *(b / MiB for b in timeline.from_peers)], where="post", label="from peers"
        )
        ax.set_xlabel("seconds since the first join")
        ax.set_ylabel("cumulative MiB")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left")
    return path


def plot_live_viewers(
    path: Path,
    names: Sequence[str],
    *,
    continuity: Sequence[float | None],
    startup: Sequence[float | None],
    delay: Sequence[float | None],
    from_source: Sequence[int],
    from_peers: Sequence[int],
    targets: tuple[float, float, float] = (0.99, 3.0, 5.0),
    title: str = "Live viewers",
) -> Path:
    """Four panels, one bar per viewer: continuity, startup delay, delay behind the source, and
    bytes received from the source and from peers (stacked).  Target lines in grey dashes
    (``targets``: continuity, startup, delay); a viewer without a value has no bar.
    """
    positions = list(range(len(names)))
    with _figure(path, 2, 2, figsize=(11, 7.5)) as (fig, axes):
        panels = (
            (axes[0][0], continuity, targets[0], "continuity index", "C0"),
            (axes[0][1], startup, targets[1], "startup delay (s)", "C1"),
            (axes[1][0], delay, targets[2], "delay behind the source (s)", "C2"),
        )
        for ax, values, target, label, colour in panels:
            heights = [0.0 if v is None else v for v in values]
            ax.bar(positions, heights, color=colour)
            ax.axhline(target, color="grey", linestyle="--", label=f"target {target:g}")
            ax.set_ylabel(label)
            ax.legend(loc="best", framealpha=0.9)
        # Zoom in near 1 when every viewer is close to it; otherwise show the whole range.
        low = min([v for v in continuity if v is not None] or [1.0])
        axes[0][0].set_ylim(0.0 if low < 0.9 else min(0.95, low - 0.02), 1.005)
        ax = axes[1][1]
        ax.bar(positions, [b / 1e6 for b in from_source], color="C3", label="from the source")
        ax.bar(
            positions,
            [b / 1e6 for b in from_peers],
            bottom=[b / 1e6 for b in from_source],
            color="C4",
            label="from peers",
        )
        ax.set_ylabel("MB received")
        ax.legend(loc="upper right")
        for ax in (axes[0][0], axes[0][1], axes[1][0], axes[1][1]):
            ax.set_xticks(positions)
            ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle(title)
    return path


def plot_live_bytes(
    path: Path,
    timeline: ByteTimeline,
    rates: tuple[Sequence[float], Sequence[float], Sequence[float]],
    *,
    title: str = "Bytes delivered to viewers",
) -> Path:
    """Two panels over time: cumulative bytes from the source and from peers, and their rates.

    ``rates`` is (bin starts, bytes/s from the source, bytes/s from peers), as
    :func:`ppsp.lab.live_report.rate_series` gives.
    """
    with _figure(path, 2, 1, figsize=(8, 7), sharex=True) as (fig, (top, bottom)):
        times = [0.0, *timeline.times]
        top.step(
            times, [0.0, *(b / 1e6 for b in timeline.from_source)], where="post", label="source"
        )
        top.step(times, [0.0, *(b / 1e6 for b in timeline.from_peers)], where="post", label="peers")
        top.set_ylabel("cumulative MB")
        top.set_ylim(bottom=0)
        top.legend(loc="upper left")
        top.grid(True, alpha=0.3)
        starts, source, peers = rates
        bottom.step(starts, [r * 8 / 1e6 for r in source], where="post", label="from the source")
        bottom.step(starts, [r * 8 / 1e6 for r in peers], where="post", label="from peers")
        bottom.set_ylabel("Mbit/s received by all viewers")
        bottom.set_xlabel("seconds since the first join")
        bottom.set_xlim(left=0)
        bottom.set_ylim(bottom=0)
        bottom.legend(loc="upper left")
        bottom.grid(True, alpha=0.3)
        fig.suptitle(title)
    return path


def plot_completion_compare(
    path: Path, clean: Sequence[float | None], attacked: Sequence[float | None]
) -> Path:
    """CDFs of the honest peers' completion times without and with attackers."""
    with _figure(path, figsize=(7, 4.5)) as (_, ax):
        for times, label in ((clean, "without attackers"), (attacked, "with attackers")):
            xs, ys = _steps(cdf(times))
            ax.step(xs, ys, where="post", label=label)
        ax.set_xlabel("seconds from join to completion")
        ax.set_ylabel("fraction of honest peers complete")
        ax.set_ylim(0, 1.05)
        ax.set_xlim(left=0)
        ax.set_title("Completion time per honest peer, with and without attackers")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
    return path


def plot_continuity_compare(
    path: Path,
    names: Sequence[str],
    clean: Sequence[float | None],
    attacked: Sequence[float | None],
) -> Path:
    """Continuity index per honest viewer, without and with attackers, side by side."""
    with _figure(path, figsize=(max(6, len(names) * 0.5), 4.5)) as (_, ax):
        positions = list(range(len(names)))
        width = 0.4
        ax.bar(
            [x - width / 2 for x in positions],
            [v or 0.0 for v in clean],
            width,
            label="without attackers",
        )
        ax.bar(
            [x + width / 2 for x in positions],
            [v or 0.0 for v in attacked],
            width,
            label="with attackers",
        )
        ax.axhline(0.98, color="grey", linestyle="--", label="target 0.98")
        ax.set_xticks(positions)
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_ylabel("continuity index")
        ax.set_ylim(0, 1.05)
        ax.set_title("Continuity per honest viewer, with and without attackers")
        ax.legend(loc="lower right")
    return path
