"""The main demo: a tracker, a seeder of a generated sample video and several leechers.

Everything runs on loopback in one process (one event loop, real HTTP between the peers). The
seeder's upload is capped so that, as in a real deployment where the source is the bottleneck,
leechers take most of the content from each other. At the end a table shows what each peer
sent and received and how much of the content came from peers rather than from the seeder.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ppsp.app.media import make_sample_video
from ppsp.errors import PPSPError
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.session import SwarmSession
from ppsp.process.signals import INTERRUPTED_EXIT, on_signals
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.net.server import running_tracker
from ppsp.wire.tracker import Encoding

_T = TypeVar("_T")

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmDemoSettings:
    """The embedded defaults of the demo swarm."""

    leechers: int = 6
    video_seconds: float = 20.0
    chunk_size: int = 64 * 1024
    seeder_upload: float = 1.5 * MiB
    leecher_upload: float = 2.0 * MiB
    join_interval: float = 0.4
    timeout: float = 60.0
    encoding: Encoding = Encoding.XML


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerFigures:
    """What one peer moved during the demo."""

    name: str
    role: str
    received: int
    from_seeder: int
    from_peers: int
    sent: int
    complete: bool
    seconds: float | None


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _progress_table(rows: list[tuple[str, SwarmSession | None]]) -> Table:
    table = Table(title="ppsp demo swarm", expand=False)
    table.add_column("peer")
    table.add_column("progress", justify="right")
    table.add_column("peers", justify="right")
    for name, session in rows:
        if session is None or session.description is None:
            table.add_row(name, "joining", "-")
            continue
        held = len(session.bitmap())
        total = session.description.chunk_count
        connected = sum(1 for r in session.remotes.values() if r.offer is not None)
        table.add_row(name, f"{100 * held // total:3d}% ({held}/{total})", str(connected))
    return table


def figures_table(figures: list[PeerFigures]) -> Table:
    """The final table: bytes sent and received per peer, and where they came from."""
    table = Table(title="What each peer sent and received")
    for column in ("peer", "role", "received", "from seeder", "from peers", "sent", "time"):
        table.add_column(column, justify="left" if column in ("peer", "role") else "right")
    for row in figures:
        table.add_row(
            row.name,
            row.role,
            f"{row.received / MiB:.2f} MiB",
            f"{row.from_seeder / MiB:.2f} MiB",
            f"{row.from_peers / MiB:.2f} MiB",
            f"{row.sent / MiB:.2f} MiB",
            "-" if row.seconds is None else f"{row.seconds:.1f} s",
        )
    return table


async def run_swarm_demo(
    settings: SwarmDemoSettings, console: Console, workdir: Path
) -> list[PeerFigures]:
    """Run the demo swarm in ``workdir``; returns each peer's figures."""
    video = workdir / "sample.mp4"
    console.print(f"Generating a {settings.video_seconds:.0f} s sample video ...")
    await asyncio.to_thread(make_sample_video, video, seconds=settings.video_seconds)
    size = video.stat().st_size
    console.print(f"  {video.name}: {size / MiB:.2f} MiB")
    # Every peer of the demo shares one address: the per-host bounds of a public tracker off.
    async with running_tracker(TrackerConfig(limits=DEFAULT_LIMITS.off())) as tracker:
        console.print(f"Tracker at {tracker.url}")
        seeder = PeerNode(
            tracker_url=tracker.url,
            encoding=settings.encoding,
            upload_rate=settings.seeder_upload,
            report_interval=5.0,
        )
        leechers = [
            PeerNode(
                tracker_url=tracker.url,
                encoding=settings.encoding,
                upload_rate=settings.leecher_upload,
                report_interval=5.0,
            )
            for _ in range(settings.leechers)
        ]
        try:
            return await _run_peers(settings, console, workdir, video, seeder, leechers)
        finally:
            # Also when interrupted: every node closes its sockets and client sessions.
            for node in (*leechers, seeder):
                await node.stop(disconnect=False)


async def _run_peers(
    settings: SwarmDemoSettings,
    console: Console,
    workdir: Path,
    video: Path,
    seeder: PeerNode,
    leechers: list[PeerNode],
) -> list[PeerFigures]:
    """The demo's seeder and leechers at work, until every leecher is done."""
    await seeder.start()
    seeded = await seeder.seed(video, chunk_size=settings.chunk_size)
    console.print(
        f"Seeder at {seeder.base_url}, swarm {seeded.swarm_id[:16]}..., "
        f"upload capped at {settings.seeder_upload / MiB:.1f} MiB/s"
    )
    started: dict[int, float] = {}
    finished: dict[int, float] = {}

    async def leech(i: int, node: PeerNode) -> SwarmSession | None:
        await asyncio.sleep(i * settings.join_interval)
        await node.start()
        started[i] = time.monotonic()
        try:
            session = await node.download(
                seeded.swarm_id,
                workdir / f"leecher-{i + 1}.mp4",
                no_progress_timeout=settings.timeout,
            )
        except PPSPError as exc:
            console.print(f"leecher {i + 1}: {exc}")
            return None
        finished[i] = time.monotonic()
        return session

    tasks = [asyncio.ensure_future(leech(i, node)) for i, node in enumerate(leechers)]
    names = [f"leecher {i + 1}" for i in range(len(leechers))]

    def rows() -> list[tuple[str, SwarmSession | None]]:
        return [
            (name, node.sessions.get(seeded.swarm_id))
            for name, node in zip(names, leechers, strict=True)
        ]

    try:
        with Live(_progress_table(rows()), console=console, refresh_per_second=4) as live:
            while not all(task.done() for task in tasks):
                await asyncio.sleep(0.25)
                live.update(_progress_table(rows()))
            live.update(_progress_table(rows()))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    results = [task.result() for task in tasks]

    figures = [
        PeerFigures(
            name="seeder",
            role="SEED",
            received=0,
            from_seeder=0,
            from_peers=0,
            sent=seeded.uploaded_bytes,
            complete=True,
            seconds=None,
        )
    ]
    for i, (node, session) in enumerate(zip(leechers, results, strict=True)):
        session = session or node.sessions.get(seeded.swarm_id)
        received = session.bytes_by_peer() if session else {}
        from_seeder = received.get(seeder.peer_id, 0)
        total = sum(received.values())
        figures.append(
            PeerFigures(
                name=names[i],
                role="LEECH",
                received=total,
                from_seeder=from_seeder,
                from_peers=total - from_seeder,
                sent=session.uploaded_bytes if session else 0,
                complete=bool(session and session.complete),
                seconds=finished[i] - started[i] if i in finished else None,
            )
        )
    return figures


async def _until_signal(work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work``; SIGINT or SIGTERM cancels it, so that its clean-up runs (no files left)."""
    task = asyncio.ensure_future(work)
    with on_signals(task.cancel):
        return await task


def run_demo_swarm(
    settings: SwarmDemoSettings | None = None, console: Console | None = None
) -> int:
    """Run the demo swarm and print its figures; 0 when every leecher got an identical copy."""
    settings = settings or SwarmDemoSettings()
    console = console or Console()
    with tempfile.TemporaryDirectory(prefix="ppsp-demo-") as tmp:
        workdir = Path(tmp)
        try:
            figures = asyncio.run(_until_signal(run_swarm_demo(settings, console, workdir)))
        except asyncio.CancelledError:
            console.print("ppsp: interrupted", style="bold")
            return INTERRUPTED_EXIT
        console.print()
        console.print(figures_table(figures))
        source = _digest(workdir / "sample.mp4")
        copies = [workdir / f"leecher-{i + 1}.mp4" for i in range(settings.leechers)]
        identical = sum(1 for path in copies if path.exists() and _digest(path) == source)
    delivered = sum(f.received for f in figures)
    from_peers = sum(f.from_peers for f in figures)
    share = 100.0 * from_peers / delivered if delivered else 0.0
    console.print(
        f"{identical}/{settings.leechers} leechers hold a byte-identical copy; "
        f"{share:.0f}% of the {delivered / MiB:.1f} MiB delivered came from peers, "
        f"{100 - share:.0f}% from the seeder."
    )
    return 0 if identical == settings.leechers else 1
