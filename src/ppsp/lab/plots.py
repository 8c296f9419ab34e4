"""PNG plots of a lab run (matplotlib, Agg backend: no display needed).

One function per figure, each taking plain figures from :mod:`ppsp.lab.report` and a path, so
that other lab kinds (live: continuity, startup delay, delay behind the source per viewer) add
their own functions next to these without touching them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ppsp.lab.report import ByteTimeline, MiB, cdf


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
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
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def plot_bytes_over_time(
    path: Path, timeline: ByteTimeline, *, title: str = "Bytes delivered to peers"
) -> Path:
    """Cumulative bytes the peers received from the source and from each other, over time."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
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
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
