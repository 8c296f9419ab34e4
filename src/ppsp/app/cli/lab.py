"""``ppsp lab vod`` and ``ppsp lab live``: swarm experiments as real processes.

The lab (and its extra: matplotlib, PyAV) is imported inside the commands only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ppsp.app.cli.params import RATE

LAB_MODULES = ("matplotlib", "av")
"""What ``ppsp lab`` needs beyond a plain install: the ``lab`` extra (plots, decoding)."""


def _require_lab_extra() -> None:
    """Fail with one line when the ``lab`` extra is not installed."""
    import importlib.util

    missing = [name for name in LAB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(
            f"ppsp lab needs {' and '.join(missing)}: install them with pip install 'ppsp[lab]'"
        )


@click.group()
def lab() -> None:
    """Swarm lab: real processes on loopback, measured against the fluid-model bound."""


@lab.command("vod")
@click.option("--peers", type=click.IntRange(min=1), default=16, show_default=True, help="Peers.")
@click.option(
    "--size-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=32.0,
    show_default=True,
    help="Size of the generated file in MiB.",
)
@click.option("--source-rate", type=RATE, default="4MiB", show_default=True, help="Source upload.")
@click.option("--peer-rate", type=RATE, default="2MiB", show_default=True, help="Peer upload.")
@click.option("--download-rate", type=RATE, default=None, help="Peer download cap (default none).")
@click.option(
    "--join-spread",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Peers join uniformly spread over this many seconds.",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of peers that leave right after completing instead of seeding on.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of content and joins.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-vod"),
    show_default=True,
    help="Directory for report.json, report.md, plots, logs.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1024, 16 << 20),
    default=None,
    help="Chunk size in bytes (seed's default).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Bound in seconds on the swarm's completion (and on the baseline's).",
)
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="Run the baseline.")
def lab_vod(
    peers: int,
    size_mb: float,
    source_rate: float,
    peer_rate: float,
    download_rate: float | None,
    join_spread: float,
    churn: float,
    seed: int,
    out: Path,
    chunk_size: int | None,
    timeout: float,
    baseline: bool,
) -> None:
    """Video on demand: a tracker, a capped source and N peers; report.md against the bound.

    A fraction --churn of the peers (chosen with --seed) run without --seed-after: they leave
    the swarm as soon as their copy is complete.  Exit status 1 when a peer did not complete.
    """
    _require_lab_extra()
    import asyncio
    import shlex

    from ppsp.lab.runner import LabError, VodLabSettings, run_vod_lab

    settings = VodLabSettings(
        out=out,
        peers=peers,
        size_mb=size_mb,
        source_rate=source_rate,
        peer_rate=peer_rate,
        download_rate=download_rate,
        join_spread=join_spread,
        churn=churn,
        seed=seed,
        chunk_size=chunk_size,
        timeout=timeout,
        baseline=baseline,
        command=shlex.join(["ppsp", *sys.argv[1:]]),
    )
    try:
        document = asyncio.run(run_vod_lab(settings))
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    sys.exit(0 if document["figures"]["all_complete"] else 1)


@lab.command("live")
@click.option("--peers", type=click.IntRange(min=1), default=10, show_default=True, help="Viewers.")
@click.option("--bitrate", type=RATE, default="2Mbit", show_default=True, help="Stream bitrate.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds everything runs after the last viewer joined.",
)
@click.option(
    "--source-rate", type=RATE, default=None, help="Source upload cap (default 3x the bitrate)."
)
@click.option("--peer-rate", type=RATE, default=None, help="Viewer upload cap (default none).")
@click.option(
    "--join-spread",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Viewers join uniformly spread over this many seconds.",
)
@click.option(
    "--churn",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of viewers that leave early (SIGINT after 30-70% of their watching time).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of joins and churn.")
@click.option(
    "--chunk-ms",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Chunk duration of the source in milliseconds.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-live"),
    show_default=True,
    help="Directory for report.json, report.md, plots, logs.",
)
def lab_live(
    peers: int,
    bitrate: float,
    duration: float,
    source_rate: float | None,
    peer_rate: float | None,
    join_spread: float,
    churn: float,
    seed: int,
    chunk_ms: int,
    out: Path,
) -> None:
    """Live streaming: ffmpeg's test pattern into ppsp live, N ppsp watch viewers; report.md
    with continuity, startup delay, delay behind the source and the source's share per target.

    A fraction --churn of the viewers (chosen with --seed) is stopped early.  Exit status 1
    when a viewer wrote no playback report; missed targets are reported, not failed.
    """
    _require_lab_extra()
    import asyncio
    import shlex

    from ppsp.lab.live import LiveLabSettings, run_live_lab
    from ppsp.lab.runner import LabError

    settings = LiveLabSettings(
        out=out,
        peers=peers,
        bitrate=bitrate,
        duration=duration,
        source_rate=source_rate,
        peer_rate=peer_rate,
        join_spread=join_spread,
        churn=churn,
        seed=seed,
        chunk_ms=chunk_ms,
        command=shlex.join(["ppsp", *sys.argv[1:]]),
    )
    try:
        document = asyncio.run(run_live_lab(settings))
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    click.echo((out / "report.md").read_text(encoding="utf-8"))
    sys.exit(0 if all(v["reported"] for v in document["figures"]["viewers"]) else 1)
