"""``ppsp lab live``: a tracker, a live encoder, a source and N viewers, each a real process.

:func:`run_live_lab` starts ``ppsp tracker``, then ``ppsp live --input FIFO`` (upload capped
at the source rate), then the ffmpeg binary encoding a live test pattern (lavfi ``testsrc2``,
``-re``, H.264 in MPEG-TS at a small frame size so that the encoder's CPU stays low) into the
named pipe the source reads.  x264 runs in CBR mode (``-b:v``, ``-minrate``, ``-maxrate``,
``-bufsize`` at the bitrate, ``nal-hrd=cbr`` so that filler data makes up the rate an easy
picture leaves unused): the stream carries the requested bitrate, not what a test pattern
needs.  After a short warm-up, N ``ppsp watch -o FILE --report`` viewers join, spread
uniformly over the join spread (reproducible from the seed).  Everything runs for the duration
after the last join; then every viewer, then the attackers, the encoder, the source and the
tracker are stopped (SIGINT, the attackers SIGTERM; SIGKILL after a grace period where one
does not exit; :func:`stop_in_order`), the reports are collected, each viewer's output is
decoded with PyAV, and report.json, report.md and the plots are written into the output
directory.

Churn: a fraction of the viewers (chosen with the seed) leave early.  Each of them is stopped
with SIGINT after watching for a time drawn uniformly between 30% and 70% of the time it would
otherwise have watched (from its start to the end of the run); it writes its report then and
does not come back.  The others keep relaying without it.

Every wait is bounded, and every process is stopped when the run ends, fails or is
interrupted (SIGINT, SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from ppsp.lab.addresses import AddressPlan, plan_addresses
from ppsp.lab.attack_report import compare_live, render_attack_markdown
from ppsp.lab.errors import LabError
from ppsp.lab.live_report import (
    TARGET_CONTINUITY,
    TARGET_DELAY,
    TARGET_STARTUP,
    DecodeResult,
    LiveFigures,
    analyse_live,
    kbit,
    rate_series,
    render_live_markdown,
)
from ppsp.lab.nat_report import LabPeer, nat_section, render_nat_markdown
from ppsp.lab.nat_setup import (
    build_network,
    command_prefix,
    nat_peer_args,
    nat_peer_env,
    network_json,
    settings_network,
)
from ppsp.lab.netns import NatNetwork
from ppsp.lab.plots import plot_continuity_compare, plot_live_bytes, plot_live_viewers
from ppsp.lab.process import START_TIMEOUT, LabProcess
from ppsp.lab.runner import (
    _load,
    _rate_arg,
    _Run,
    source_urls,
    start_stun,
    start_tracker,
)
from ppsp.process.lifetime import child_setup
from ppsp.process.signals import STOP_SIGNALS, on_signals

SIGINT_GRACE = 15.0
"""Seconds a process has to exit after SIGINT before SIGTERM (then SIGKILL) follows."""
WARMUP = 2.0
"""Seconds the encoder runs before the first viewer starts, so that chunks exist."""
FPS = 25
"""Frames per second of the test pattern (one key frame a second)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveLabSettings:
    """The parameters of ``ppsp lab live`` (rates in bytes per second)."""

    out: Path
    peers: int = 10
    bitrate: float = 2000 * kbit
    duration: float = 30.0
    source_rate: float | None = None
    """The source's upload cap; None: three times the bitrate."""
    peer_rate: float | None = None
    """Each viewer's upload cap; None: uncapped."""
    join_spread: float = 2.0
    churn: float = 0.0
    seed: int = 1
    chunk_ms: int = 500
    frame_size: str = "320x180"
    warmup: float = WARMUP
    command: str = ""
    attacks: tuple[str, ...] = ()
    """Attack kinds (``ppsp.lab.attack.KINDS``), each with ``attackers`` processes."""
    attackers: int = 0
    """Attackers of each kind in ``attacks``."""
    compare: bool = True
    """With attackers: run the same stream without them first and report both."""
    limits: bool = True
    """The tracker's per-host limits (``--limits on``)."""
    viewer_log_level: str = "warning"
    """The viewers' ``--log-level`` (debug: each request, answer and give-up in their logs)."""
    nat: float | None = None
    """``--nat FRACTION`` (as :attr:`ppsp.lab.runner.VodLabSettings.nat`): the source also
    serves PPSPP (``--ppspp-port 0``), the viewers watch with PPSPP first, then HTTP, and
    those behind NAT with ``--stun`` and ``--turn`` (:func:`~ppsp.lab.nat_setup.nat_peer_args`)."""
    symmetric: float | None = None
    """``--symmetric FRACTION`` (as :attr:`ppsp.lab.runner.VodLabSettings.symmetric`)."""

    @property
    def source_upload(self) -> float:
        """The source's upload cap in bytes per second."""
        return self.source_rate if self.source_rate is not None else 3 * self.bitrate


@dataclass(frozen=True, slots=True, kw_only=True)
class LivePlan:
    """What the seed decides: when each viewer starts, which leave early and when."""

    joins: list[float]
    """Start offsets in seconds after the first viewer's planned start, ascending."""
    leaves: dict[int, float] = field(default_factory=dict)
    """Churned viewer index -> seconds after its own start at which it is stopped."""


def plan_live(settings: LiveLabSettings) -> LivePlan:
    """Join offsets (uniform over the spread) and churned viewers' leave times, from the seed."""
    joins = random.Random(f"ppsp-lab-live-join-{settings.seed}")
    offsets = sorted(joins.uniform(0.0, settings.join_spread) for _ in range(settings.peers))
    leave = random.Random(f"ppsp-lab-live-churn-{settings.seed}")
    count = round(settings.churn * settings.peers)
    churned = sorted(leave.sample(range(settings.peers), count))
    end = (offsets[-1] if offsets else 0.0) + settings.duration
    leaves = {i: (end - offsets[i]) * leave.uniform(0.3, 0.7) for i in churned}
    return LivePlan(joins=offsets, leaves=leaves)


def encoder_args(settings: LiveLabSettings, output: Path) -> list[str]:
    """The ffmpeg command line: a live CBR H.264 test pattern in MPEG-TS written to ``output``."""
    from ppsp.app.media import ffmpeg_exe

    bits = f"{round(settings.bitrate * 8)}"
    return [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={settings.frame_size}:rate={FPS}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-b:v",
        bits,
        "-minrate",
        bits,
        "-maxrate",
        bits,
        "-bufsize",
        bits,
        "-x264-params",
        "nal-hrd=cbr:force-cfr=1",
        "-g",
        str(FPS),
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mpegts",
        "-y",
        str(output),
    ]


async def _spawn_encoder(args: Sequence[str], log: Path) -> LabProcess:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=functools.partial(child_setup, os.getpid()),
    )
    return LabProcess("encoder", process, log)


async def _interrupt(processes: Sequence[LabProcess], grace: float = SIGINT_GRACE) -> None:
    """SIGINT every process, wait up to ``grace`` s, then stop the rest (SIGTERM, SIGKILL)."""
    for process in processes:
        process.signal(signal.SIGINT)
    waits = [p.process.wait() for p in processes if p.alive]
    if waits:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), grace)
    await asyncio.gather(*(p.stop(grace=5.0) for p in processes))


async def stop_in_order(
    run: _Run,
    *,
    viewers: Sequence[LabProcess],
    attackers: Sequence[LabProcess],
    encoder: LabProcess,
    source: LabProcess,
    tracker: LabProcess,
) -> None:
    """Stop a live run's processes at its end: the viewers, then the attackers, the encoder,
    the source and the tracker, each group once the one before has exited.

    The viewers go first, so that what they report covers the run's time, every attacker
    still there.  Stopped after the attackers, they went on playing while twenty attacker
    processes exited at once on the lab's two cores, and skipped chunks due 1-2 s later
    (docs/BENCHMARKS.md, "Swarms under attack").
    """
    await _interrupt([v for v in viewers if v.alive])
    await run.stop(attackers)
    await _interrupt([encoder], grace=5.0)
    await _interrupt([source])
    await _interrupt([tracker])


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of the whole machine from /proc/stat (None if unavailable)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def decode_output(path: Path) -> DecodeResult:
    """Decode a viewer's MPEG-TS output with PyAV: frames, decode errors, corrupt packets.

    Decode errors are the packets the decoder refused plus the errors FFmpeg's libraries
    reported while decoding (such as H.264's "non-existing PPS referenced" for frames before
    the first key frame), as ``ffmpeg -v error`` shows them.
    """
    import av
    import av.logging

    try:
        size = path.stat().st_size
    except OSError:
        return DecodeResult(readable=False)
    frames = errors = corrupt = 0
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logged, av.open(str(path)) as container:
            if not container.streams.video:
                return DecodeResult(size=size, readable=False)
            for packet in container.demux(video=0):
                if packet.is_corrupt:
                    corrupt += 1
                try:
                    frames += len(packet.decode())
                except av.error.FFmpegError:
                    errors += 1
        errors += sum(1 for entry in logged if entry[0] <= av.logging.ERROR)
    except av.error.FFmpegError:
        return DecodeResult(
            size=size, frames=frames, errors=errors + 1, corrupt=corrupt, readable=frames > 0
        )
    finally:
        av.logging.set_level(level)
    return DecodeResult(size=size, frames=frames, errors=errors, corrupt=corrupt)


@dataclass(slots=True, kw_only=True)
class _Outcome:
    swarm_id: str
    viewers: list[LabProcess]
    exits: dict[str, int | None]
    failures: dict[str, str]
    """The last stderr line of each process that did not exit with status 0."""
    cpu: dict[str, Any]
    left_after: dict[str, float]
    attackers: set[str] = field(default_factory=set)


async def _swarm(
    settings: LiveLabSettings,
    lab_plan: LivePlan,
    addresses: AddressPlan,
    dirs: dict[str, Path],
    run: _Run,
    say: Callable[[str], None],
    net: NatNetwork | None = None,
) -> _Outcome:
    """Start tracker, source, encoder and viewers; run them; stop them all with SIGINT.

    With ``net`` (``--nat``) the tracker, the source and each viewer run in their namespaces
    (the encoder beside the lab, writing into the source's FIFO), a STUN server beside the
    tracker; the stream goes over PPSPP too (:func:`nat_peer_args` for the viewers)."""
    machine_start = _machine_ticks()
    from ppsp.lab.attackers import start_attackers

    tracker, tracker_url = await start_tracker(
        run,
        settings.peers,
        dirs["logs"],
        host=addresses.tracker,
        limits=settings.limits,
        prefix=command_prefix(net, "tracker"),
    )
    say(f"tracker at {tracker_url}")
    if net is not None:
        await start_stun(run, net, dirs["logs"])
        say(f"STUN and TURN server (coturn) at {net.plan.stun_server}")

    fifo = dirs["work"] / "stream.ts"
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    os.mkfifo(fifo)
    source = await LabProcess.spawn(
        "source",
        [
            "live",
            "--tracker",
            tracker_url,
            "--host",
            addresses.source,
            "--log-level",
            "warning",
            "--input",
            str(fifo),
            "--chunk-ms",
            str(settings.chunk_ms),
            "--key",
            str(dirs["work"] / "source.key"),
            "--upload-rate",
            _rate_arg(settings.source_upload),
            "--report",
            str(dirs["reports"] / "source.json"),
            *([] if net is None else ["--ppspp-port", "0"]),
        ],
        dirs["logs"] / "source.log",
        prefix=command_prefix(net, "source"),
    )
    run.processes.append(source)
    swarm_id = (await source.stdout_line(None, START_TIMEOUT)).strip()
    encoder = await _spawn_encoder(encoder_args(settings, fifo), dirs["logs"] / "encoder.log")
    run.processes.append(encoder)
    say(
        f"source streaming swarm {swarm_id[:16]}... at {settings.bitrate / kbit:.0f} kbit/s, "
        f"upload capped at {settings.source_upload / kbit:.0f} kbit/s"
    )
    await asyncio.sleep(settings.warmup)
    attackers = await start_attackers(
        run,
        addresses,
        tracker_url=tracker_url,
        swarm_id=swarm_id,
        known=await source_urls(source, addresses),
        content="live",
        lifetime=settings.join_spread + settings.duration + 60.0,
        dirs=dirs,
        say=say,
    )
    if not encoder.alive or not source.alive:
        dead = encoder if not encoder.alive else source
        raise LabError(f"the live stream stopped before the viewers joined: {dead.describe()}")

    cpu: dict[str, float | None] = {}
    viewers: list[LabProcess] = []
    left_after: dict[str, float] = {}
    leavers: list[asyncio.Task[None]] = []

    async def leave(viewer: LabProcess, after: float) -> None:
        await asyncio.sleep(after)
        cpu[viewer.name] = viewer.cpu_seconds()
        left_after[viewer.name] = after
        await _interrupt([viewer])

    began = time.monotonic()
    try:
        for i, offset in enumerate(lab_plan.joins):
            delay = began + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            name = f"viewer-{i + 1:02d}"
            node = f"peer-{i + 1:02d}"  # the network plan's name of the viewer's node
            args = [
                "watch",
                swarm_id,
                "--tracker",
                tracker_url,
                "--host",
                addresses.peers[i],
                "--player-port",
                "0",
                "--log-level",
                settings.viewer_log_level,
                "-o",
                str(dirs["work"] / f"{name}.ts"),
                "--report",
                str(dirs["reports"] / f"{name}.json"),
            ]
            if settings.peer_rate is not None:
                args += ["--upload-rate", _rate_arg(settings.peer_rate)]
            if net is not None:
                args += nat_peer_args(net, i, relay=True)
            viewer = await LabProcess.spawn(
                name,
                args,
                dirs["logs"] / f"{name}.log",
                prefix=command_prefix(net, node),
                env=nat_peer_env(net, "watch"),
            )
            run.processes.append(viewer)
            viewers.append(viewer)
            if i in lab_plan.leaves:
                leavers.append(asyncio.ensure_future(leave(viewer, lab_plan.leaves[i])))
        say(f"{len(viewers)} viewers started; streaming for {settings.duration:.0f} s more")
        await asyncio.sleep(settings.duration)
        # A leaver is due before the end by construction; bound the wait all the same.
        if leavers:
            await asyncio.wait(leavers, timeout=SIGINT_GRACE + 10.0)
    finally:
        for task in leavers:
            task.cancel()
    wall = time.monotonic() - began
    crashed = [v.name for v in viewers if not v.alive and v.name not in left_after]
    if crashed:
        say(f"viewers that exited on their own: {', '.join(crashed)}")
    for process in (tracker, source, encoder, *viewers):
        if process.alive:
            cpu[process.name] = process.cpu_seconds()
    machine_end = _machine_ticks()
    await stop_in_order(
        run, viewers=viewers, attackers=attackers, encoder=encoder, source=source, tracker=tracker
    )
    everything = (tracker, source, encoder, *viewers)
    used = sum(seconds for seconds in cpu.values() if seconds is not None)
    cores = os.cpu_count() or 1
    busy = None
    if machine_start is not None and machine_end is not None:
        total = machine_end[1] - machine_start[1]
        busy = (machine_end[0] - machine_start[0]) / total if total > 0 else None
    return _Outcome(
        swarm_id=swarm_id,
        viewers=viewers,
        exits={p.name: p.process.returncode for p in everything},
        failures={p.name: p.tail[-1] for p in everything if p.process.returncode != 0 and p.tail},
        cpu={
            "processes": cpu,
            "total": used,
            "wall": wall,
            "cores": cores,
            "load": used / (wall * cores) if wall > 0 else 0.0,
            "machine_busy": busy,
        },
        left_after=left_after,
        attackers={p.name for p in attackers},
    )


def _check(settings: LiveLabSettings) -> None:
    if settings.peers < 1:
        raise LabError("a lab needs at least one viewer")
    if not 0.0 <= settings.churn <= 1.0:
        raise LabError("churn is a fraction between 0 and 1")
    if settings.bitrate <= 0 or settings.source_upload <= 0:
        raise LabError("rates must be positive")
    if settings.duration <= 0:
        raise LabError("the duration must be positive")


async def run_live_lab(
    settings: LiveLabSettings, *, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the live lab; returns the report.json document (also written into ``settings.out``)."""
    _check(settings)
    echo = say or (lambda message: print(message, file=sys.stderr, flush=True))
    per_kind, net = settings_network(settings)
    try:
        addresses = (
            plan_addresses(settings.peers, settings.attacks, per_kind)
            if net is None
            else net.plan.addresses()
        )
    except ValueError as exc:
        raise LabError(str(exc)) from None
    clean = None
    if per_kind and settings.compare:
        echo("the same stream without attackers first (into clean/)")
        clean = await run_live_lab(
            replace(settings, out=settings.out / "clean", attacks=(), attackers=0),
            say=lambda message: echo(f"[clean] {message}"),
        )
        echo("now with attackers")
    out = settings.out
    dirs = {name: out / name for name in ("work", "logs", "reports")}
    for directory in (out, *dirs.values()):
        directory.mkdir(parents=True, exist_ok=True)
    for stale in [*dirs["reports"].glob("*.json"), *dirs["work"].glob("*.ts")]:
        stale.unlink()
    lab_plan = plan_live(settings)

    run = _Run()
    task = asyncio.current_task()
    signals = contextlib.ExitStack()
    if task is not None:
        signals.enter_context(on_signals(task.cancel, STOP_SIGNALS))
    try:
        if net is not None:
            build_network(net, settings.source_upload, settings.peer_rate, echo)
        outcome = await _swarm(settings, lab_plan, addresses, dirs, run, echo, net)
        echo("decoding the viewers' outputs")
        decoded = {
            v.name: await asyncio.to_thread(decode_output, dirs["work"] / f"{v.name}.ts")
            for v in outcome.viewers
        }
    except asyncio.CancelledError:
        await run.shutdown()
        raise LabError("interrupted; every process of the lab stopped") from None
    except BaseException:
        await run.shutdown()
        raise
    finally:
        signals.close()
        run.kill_all()
        if net is not None:
            await run.reap()
            left = net.close()
            if left:
                echo(f"could not delete network namespaces: {', '.join(left)}")
        for path in [*dirs["work"].glob("*.ts"), dirs["work"] / "source.key"]:
            with contextlib.suppress(OSError):
                path.unlink()

    viewer_reports = [
        (v.name, _load(dirs["reports"] / f"{v.name}.json"), i in lab_plan.leaves)
        for i, v in enumerate(outcome.viewers)
    ]
    figures = analyse_live(
        swarm_id=outcome.swarm_id,
        source=_load(dirs["reports"] / "source.json"),
        viewers=viewer_reports,
        decoded=decoded,
        left_after=outcome.left_after,
    )
    plots = write_live_plots(figures, out)
    document: dict[str, Any] = {
        "kind": "live",
        "command": settings.command,
        "parameters": {
            **asdict(settings),
            "out": str(settings.out),
            "source_rate": settings.source_upload,
        },
        "plan": {
            "joins": lab_plan.joins,
            "churned": sorted(lab_plan.leaves),
            "leaves": {str(i): after for i, after in sorted(lab_plan.leaves.items())},
        },
        "encoder": encoder_args(settings, Path("FIFO"))[1:],
        "figures": figures.to_json(),
        "exits": outcome.exits,
        "failures": outcome.failures,
        "cpu": outcome.cpu,
        "plots": plots,
        "addresses": asdict(addresses),
    }
    if net is not None:
        source_report = _load(dirs["reports"] / "source.json")
        document["network"] = network_json(net)
        document["nat"] = nat_section(
            [
                LabPeer(
                    name=name,
                    natted=i in net.plan.natted,
                    report=report,
                    symmetric=i in net.plan.symmetric,
                )
                for i, (name, report, _) in enumerate(viewer_reports)
            ],
            outcome.swarm_id,
            source_report,
            settings.nat or 0.0,
            stun=net.plan.stun_server,
            turn=net.plan.stun_server,
        )
    if per_kind:
        from ppsp.lab.attackers import attack_section

        document["attack"] = attack_section(addresses, per_kind, dirs["reports"], outcome.attackers)
    if clean is not None:
        comparison = compare_live(clean, document)
        document["comparison"] = comparison
        names = [v["name"] for v in document["figures"]["viewers"]]
        plot_continuity_compare(
            out / "continuity_attack.png",
            names,
            [comparison["clean"]["continuity"].get(name) for name in names],
            [comparison["attack"]["continuity"].get(name) for name in names],
        )
        plots.append("continuity_attack.png")
    (out / "report.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    markdown = (
        render_live_markdown(document)
        + render_nat_markdown(document)
        + render_attack_markdown(document)
    )
    (out / "report.md").write_text(markdown, encoding="utf-8")
    return document


def write_live_plots(figures: LiveFigures, out: Path) -> list[str]:
    """Draw the live plots into ``out``; returns their file names."""
    viewers = figures.viewers
    plot_live_viewers(
        out / "viewers.png",
        [v.name for v in viewers],
        continuity=[v.continuity_index for v in viewers],
        startup=[v.startup_delay for v in viewers],
        delay=[v.delay_behind_source for v in viewers],
        from_source=[v.from_source for v in viewers],
        from_peers=[v.from_peers for v in viewers],
        targets=(TARGET_CONTINUITY, TARGET_STARTUP, TARGET_DELAY),
    )
    plot_live_bytes(
        out / "bytes_over_time.png", figures.timeline, rate_series(figures.timeline, bin_s=1.0)
    )
    return ["viewers.png", "bytes_over_time.png"]
