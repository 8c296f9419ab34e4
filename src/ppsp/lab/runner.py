"""The processes of a lab run: a tracker, a source and N peers, each a ``ppsp`` subprocess.

:func:`run_vod_lab` is ``ppsp lab vod``: it generates a random file, starts ``ppsp tracker``,
``ppsp seed`` (upload capped at the source rate) and N ``ppsp get`` peers on 127.0.0.1 whose
joins are spread uniformly over the join spread, waits until every peer completed, stops
everything with SIGTERM (so that each process writes its ``--report``), then runs the
client-server baseline and writes report.json, report.md and the plots into the output
directory.

Churn: a fraction of the peers (chosen with the seed) leave right after they complete instead
of seeding on: they run ``ppsp get`` without ``--seed-after``, so they DISCONNECT from the
tracker and exit as soon as their copy is verified.

Every wait is bounded, and every process is killed when the run ends, fails or is interrupted
(SIGINT, SIGTERM): first SIGTERM, SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from ppsp.lab.addresses import AddressPlan, plan_addresses
from ppsp.lab.attack_report import compare_vod, render_attack_markdown
from ppsp.lab.baseline import run_baseline
from ppsp.lab.errors import LabError
from ppsp.lab.nat_report import (
    LabPeer,
    compare_transports,
    nat_section,
    render_nat_markdown,
    render_transports_markdown,
)
from ppsp.lab.nat_setup import (
    build_network,
    command_prefix,
    nat_peer_args,
    nat_peer_env,
    network_json,
    settings_network,
)
from ppsp.lab.netns import (
    STUN_PORT,
    STUN_PROBE,
    NatNetwork,
    in_namespace,
    turnserver_args,
)
from ppsp.lab.plots import plot_bytes_over_time, plot_completion_cdf, plot_completion_compare
from ppsp.lab.process import ENV, START_TIMEOUT, LabProcess
from ppsp.lab.report import MiB, Report, VodFigures, analyse_vod, render_markdown
from ppsp.process.signals import STOP_SIGNALS, on_signals

TRANSPORTS = ("ppspp", "http")
"""A NAT lab's transports (:attr:`VodLabSettings.transport`)."""
LISTENING = re.compile(r"listening on (http://\S+)")
SOURCE_URL = re.compile(r" at (http://\S+)$")
"""The source's line naming its endpoint (``ppsp seed`` and ``ppsp live`` both print one)."""
COMPLETE = re.compile(r": complete, \d+ bytes verified")


@dataclass(frozen=True, slots=True, kw_only=True)
class VodLabSettings:
    """The parameters of ``ppsp lab vod``."""

    out: Path
    peers: int = 16
    size_mb: float = 32.0
    source_rate: float = 4 * MiB
    peer_rate: float | None = 2 * MiB
    download_rate: float | None = None
    join_spread: float = 2.0
    churn: float = 0.0
    seed: int = 1
    chunk_size: int | None = None
    ppspp_chunk_size: int | None = None
    """The PPSPP chunk size the source offers in a NAT lab (None: seed's default)."""
    timeout: float = 300.0
    baseline: bool = True
    command: str = ""
    attacks: tuple[str, ...] = ()
    """Attack kinds (``ppsp.lab.attack.KINDS``), each with ``attackers`` processes."""
    attackers: int = 0
    """Attackers of each kind in ``attacks``."""
    compare: bool = True
    """With attackers: run the same swarm without them first and report both."""
    limits: bool = True
    """The tracker's per-host limits (``--limits on``)."""
    nat: float | None = None
    """``--nat FRACTION``: every process in a network namespace of its own, this fraction of
    the peers behind NATs (:mod:`ppsp.lab.netns`); None: loopback, as without ``--nat``."""
    symmetric: float | None = None
    """``--symmetric FRACTION``: this fraction of the NATed peers behind NATs that map each
    destination to a port of its own (only a TURN relay reaches them)."""
    transport: str = "ppspp"
    """With ``nat``: ``"ppspp"``, the source serving HTTP and PPSPP and every peer asking PPSPP
    first, then HTTP (STUN and TURN behind NAT); ``"http"`` (``--transport http``), HTTP
    alone: the source without a PPSPP port, the peers without STUN or TURN."""
    http_beside: bool = False
    """``--http-beside``: after the swarm, the same swarm with HTTP only (``transport="http"``,
    same namespaces plan, seed, sizes and rates) into ``OUT/http``; report.md sets the two side
    by side."""

    @property
    def size(self) -> int:
        """The file size in bytes."""
        return int(self.size_mb * MiB)


@dataclass(slots=True, kw_only=True)
class LabPlan:
    """What the seed decides: when each peer joins and which peers leave on completion."""

    joins: list[float]
    churned: set[int] = field(default_factory=set)


def plan(settings: VodLabSettings) -> LabPlan:
    """Join offsets (uniform over the join spread, ascending) and churned peers, from the seed."""
    joins = random.Random(f"ppsp-lab-join-{settings.seed}")
    offsets = sorted(joins.uniform(0.0, settings.join_spread) for _ in range(settings.peers))
    leave = random.Random(f"ppsp-lab-churn-{settings.seed}")
    count = round(settings.churn * settings.peers)
    return LabPlan(joins=offsets, churned=set(leave.sample(range(settings.peers), count)))


def make_content(path: Path, size: int, seed: int) -> str:
    """Write ``size`` random bytes, reproducible from ``seed``; returns their SHA-256."""
    data = random.Random(f"ppsp-lab-content-{seed}").randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _rate_arg(rate: float) -> str:
    return str(int(rate)) if float(rate).is_integer() else repr(float(rate))


def _load(path: Path) -> Report | None:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


@dataclass(slots=True, kw_only=True)
class _Run:
    """The processes of one run, so that they can all be torn down whatever happens."""

    processes: list[LabProcess] = field(default_factory=list)

    async def stop(self, group: Sequence[LabProcess]) -> None:
        await asyncio.gather(*(p.stop() for p in group if p in self.processes))

    async def shutdown(self) -> None:
        """Stop every process still running: SIGTERM, SIGKILL after a short grace."""
        await asyncio.gather(*(p.stop(grace=5.0) for p in self.processes if p.alive))

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()

    async def reap(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout`` s) until every process killed has exited."""
        waits = [p.process.wait() for p in self.processes if p.alive]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)


async def start_tracker(
    run: _Run,
    peers: int,
    logs: Path,
    *,
    host: str = "127.1.0.1",
    limits: bool = True,
    prefix: Sequence[str] = (),
) -> tuple[LabProcess, str]:
    """Start a lab's ``ppsp tracker`` (peer lists long enough for every peer) and its URL.

    Every lab process has a loopback address in a /24 of its own (:mod:`ppsp.lab.addresses`),
    so the tracker runs with its per-host limits on, as deployed; ``limits=False`` turns them
    off (``--limits off``).
    """
    tracker = await LabProcess.spawn(
        "tracker",
        [
            "tracker",
            "--host",
            host,
            "--port",
            "0",
            "--log-level",
            "warning",
            "--max-peers",
            str(max(20, peers + 1)),
            "--limits",
            "on" if limits else "off",
        ],
        logs / "tracker.log",
        prefix=prefix,
    )
    run.processes.append(tracker)
    line = await tracker.stdout_line(LISTENING, START_TIMEOUT)
    match = LISTENING.search(line)
    assert match is not None
    return tracker, match.group(1)


def source_command(
    settings: VodLabSettings,
    content: Path,
    *,
    tracker_url: str,
    host: str,
    dirs: Mapping[str, Path],
    net: NatNetwork | None = None,
) -> list[str]:
    """The source's ``ppsp`` arguments: ``seed`` capped at the source rate; in a NAT lab
    (``net``) over PPSPP too (``--ppspp-port 0``), unless the run is HTTP only."""
    args = [
        "seed",
        str(content),
        "--tracker",
        tracker_url,
        "--host",
        host,
        "--log-level",
        "warning",
        "--upload-rate",
        _rate_arg(settings.source_rate),
        "--report",
        str(dirs["reports"] / "source.json"),
    ]
    if settings.chunk_size is not None:
        args += ["--chunk-size", str(settings.chunk_size)]
    if net is not None and settings.transport != "http":
        args += ["--ppspp-port", "0"]
        if settings.ppspp_chunk_size is not None:
            args += ["--ppspp-chunk-size", str(settings.ppspp_chunk_size)]
    return args


def peer_command(
    settings: VodLabSettings,
    index: int,
    *,
    swarm_id: str,
    tracker_url: str,
    host: str,
    dirs: Mapping[str, Path],
    leaves: bool,
    net: NatNetwork | None = None,
) -> list[str]:
    """Peer ``index``'s ``ppsp`` arguments: ``get`` capped at the peer rate, ``--seed-after``
    unless it ``leaves`` on completion (churn); in a NAT lab (``net``) the transports and
    STUN/TURN of :func:`nat_peer_args` (HTTP alone in an HTTP-only run)."""
    name = f"peer-{index + 1:02d}"
    args = [
        "get",
        swarm_id,
        "--tracker",
        tracker_url,
        "--host",
        host,
        "--log-level",
        "warning",
        "-o",
        str(dirs["work"] / f"{name}.bin"),
        "--timeout",
        str(max(30.0, min(settings.timeout, 120.0))),
        "--report",
        str(dirs["reports"] / f"{name}.json"),
    ]
    if settings.peer_rate is not None:
        args += ["--upload-rate", _rate_arg(settings.peer_rate)]
    if settings.download_rate is not None:
        args += ["--download-rate", _rate_arg(settings.download_rate)]
    if not leaves:
        args.append("--seed-after")
    if net is not None:
        args += nat_peer_args(net, index, relay=True, http_only=settings.transport == "http")
    return args


async def _swarm(
    settings: VodLabSettings,
    lab_plan: LabPlan,
    addresses: AddressPlan,
    content: Path,
    dirs: dict[str, Path],
    run: _Run,
    say: Callable[[str], None],
    net: NatNetwork | None = None,
) -> _SwarmOutcome:
    """Start tracker, source and peers; return once every peer completed (or time ran out).

    With ``net`` (``--nat``) each process runs in its namespace, a STUN server beside the
    tracker, and the source also serves PPSPP (:func:`nat_peer_args` for the peers); an
    HTTP-only run (``transport="http"``) starts no STUN server and the source no PPSPP.
    """
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
    http_only = settings.transport == "http"
    if net is not None and not http_only:
        await start_stun(run, net, dirs["logs"])
        say(f"STUN and TURN server (coturn) at {net.plan.stun_server}")
    source = await LabProcess.spawn(
        "source",
        source_command(
            settings, content, tracker_url=tracker_url, host=addresses.source, dirs=dirs, net=net
        ),
        dirs["logs"] / "source.log",
        prefix=command_prefix(net, "source"),
    )
    run.processes.append(source)
    swarm_id = (await source.stdout_line(None, START_TIMEOUT)).strip()
    say(f"source seeding swarm {swarm_id[:16]}... at {settings.source_rate / MiB:.2f} MiB/s")
    attackers = await start_attackers(
        run,
        addresses,
        tracker_url=tracker_url,
        swarm_id=swarm_id,
        known=await source_urls(source, addresses),
        content="vod",
        lifetime=settings.timeout + settings.join_spread + 30.0,
        dirs=dirs,
        say=say,
    )

    peers: list[LabProcess] = []
    began = time.monotonic()
    deadline = began + settings.timeout
    for i, offset in enumerate(lab_plan.joins):
        delay = began + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        name = f"peer-{i + 1:02d}"
        peer = await LabProcess.spawn(
            name,
            peer_command(
                settings,
                i,
                swarm_id=swarm_id,
                tracker_url=tracker_url,
                host=addresses.peers[i],
                dirs=dirs,
                leaves=i in lab_plan.churned,
                net=net,
            ),
            dirs["logs"] / f"{name}.log",
            watch=COMPLETE,
            prefix=command_prefix(net, name),
            env={} if http_only else nat_peer_env(net),
        )
        run.processes.append(peer)
        peers.append(peer)
    say(f"{len(peers)} peers started; waiting for them to complete")
    results = await asyncio.gather(*(peer.wait_done(deadline - time.monotonic()) for peer in peers))
    late = [peer.name for peer, done in zip(peers, results, strict=True) if not done]
    failed = [peer.name for peer in peers if not peer.matched.is_set()]
    if late:
        say(f"not complete after {settings.timeout:.0f} s: {', '.join(late)}")
    elif failed:
        say(f"exited without completing: {', '.join(failed)}")
    else:
        say(f"every peer complete after {time.monotonic() - began:.1f} s")
    wall = time.monotonic() - began
    cpu = {p.name: p.cpu_seconds() for p in (tracker, source, *peers, *attackers)}
    await run.stop(attackers)
    await run.stop(peers)
    await run.stop([source])
    await run.stop([tracker])
    used = sum(seconds for seconds in cpu.values() if seconds is not None)
    cores = os.cpu_count() or 1
    return _SwarmOutcome(
        swarm_id=swarm_id,
        peers=peers,
        attackers={p.name for p in attackers},
        cpu={
            "processes": cpu,
            "total": used,
            "wall": wall,
            "cores": cores,
            "load": used / (wall * cores) if wall > 0 else 0.0,
        },
    )


STUN_READY = 30.0
"""Bound on the STUN server answering its first Binding request."""


async def start_stun(run: _Run, net: NatNetwork, logs: Path) -> LabProcess:
    """Start coturn (STUN, and TURN with the run's password) in its namespace; return once it
    answers a Binding request sent from behind the first NAT (from the tracker's namespace
    when no peer is NATed)."""
    server = await LabProcess.spawn(
        "stun",
        [],
        logs / "stun.log",
        prefix=command_prefix(net, "stun"),
        program=turnserver_args(net.plan, str(logs), net.turn_password),
    )
    run.processes.append(server)
    natted = sorted(net.plan.natted)
    asker = net.plan.peers[natted[0]].namespace if natted else net.plan.tracker.namespace
    deadline = time.monotonic() + STUN_READY
    error = ""
    while time.monotonic() < deadline:
        if not server.alive:
            raise LabError(f"the STUN server exited: {server.describe()}")
        probe = await asyncio.create_subprocess_exec(
            *in_namespace(asker),
            sys.executable,
            "-c",
            STUN_PROBE,
            net.plan.stun.address,
            str(STUN_PORT),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=ENV,
        )
        try:
            _, err = await asyncio.wait_for(probe.communicate(), 15.0)
        except TimeoutError:
            probe.kill()
            await probe.wait()
            continue
        if probe.returncode == 0:
            return server
        error = " ".join(err.decode(errors="replace").strip().splitlines()[-1:])
        await asyncio.sleep(0.5)
    raise LabError(f"the STUN server did not answer within {STUN_READY:.0f} s: {error}")


async def source_urls(source: LabProcess, addresses: AddressPlan) -> tuple[str, ...]:
    """The source's endpoint, for the attackers (none when no attacker is planned).

    Attackers learn the swarm from the tracker like any peer, but the tracker's lists, ranked
    by what members claim, give each attacker mostly the other attackers (they all claim the
    highest priority): told where the source is, they attack it as an attacker who watched the
    swarm for a while would.
    """
    if not any(addresses.attackers.values()):
        return ()
    match = SOURCE_URL.search(await source.stderr_line(SOURCE_URL, START_TIMEOUT))
    assert match is not None
    return (match.group(1),)


@dataclass(frozen=True, slots=True, kw_only=True)
class _SwarmOutcome:
    swarm_id: str
    peers: list[LabProcess]
    attackers: set[str]
    cpu: dict[str, Any]


async def run_vod_lab(
    settings: VodLabSettings, *, say: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the vod lab; returns the report.json document (also written into ``settings.out``)."""
    if settings.peers < 1:
        raise LabError("a lab needs at least one peer")
    if not 0.0 <= settings.churn <= 1.0:
        raise LabError("churn is a fraction between 0 and 1")
    if settings.transport not in TRANSPORTS:
        raise LabError(f"transport is one of {', '.join(TRANSPORTS)}")
    if settings.nat is None and (settings.http_beside or settings.transport != "ppspp"):
        raise LabError("--transport and --http-beside go with --nat")
    if settings.http_beside and settings.transport == "http":
        raise LabError("--http-beside runs HTTP only beside the PPSPP swarm, not beside itself")
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
        echo("the same swarm without attackers first (into clean/)")
        clean = await run_vod_lab(
            replace(settings, out=settings.out / "clean", attacks=(), attackers=0, baseline=False),
            say=lambda message: echo(f"[clean] {message}"),
        )
        echo("now with attackers")
    out = settings.out
    dirs = {name: out / name for name in ("work", "logs", "reports")}
    for directory in (out, *dirs.values()):
        directory.mkdir(parents=True, exist_ok=True)
    for stale in dirs["reports"].glob("*.json"):
        stale.unlink()
    lab_plan = plan(settings)
    content = dirs["work"] / "content.bin"
    digest = make_content(content, settings.size, settings.seed)
    echo(f"content: {settings.size / MiB:.2f} MiB of random bytes (seed {settings.seed})")

    run = _Run()
    task = asyncio.current_task()
    signals = contextlib.ExitStack()
    if task is not None:
        signals.enter_context(on_signals(task.cancel, STOP_SIGNALS))
    try:
        if net is not None:
            build_network(net, settings.source_rate, settings.peer_rate, echo)
        outcome = await _swarm(settings, lab_plan, addresses, content, dirs, run, echo, net)
        swarm_id, peers = outcome.swarm_id, outcome.peers
        verified = {p.name: _digest(dirs["work"] / f"{p.name}.bin") == digest for p in peers}
        baseline = None
        if settings.baseline:
            echo(
                f"client-server baseline: {settings.peers} HTTP downloads at "
                f"{settings.source_rate / MiB:.2f} MiB/s"
            )
            baseline = await run_baseline(
                content,
                rate=settings.source_rate,
                starts=lab_plan.joins,
                timeout=settings.timeout + settings.join_spread,
            )
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
        for path in dirs["work"].glob("*.bin"):
            with contextlib.suppress(OSError):
                path.unlink()

    beside = None
    if settings.http_beside:
        # After the swarm's namespaces are gone: the HTTP-only run builds its own.
        echo("the same swarm with HTTP only (into http/)")
        beside = await run_vod_lab(
            http_settings(settings), say=lambda message: echo(f"[http] {message}")
        )

    source = _load(dirs["reports"] / "source.json")
    if source is None:
        raise LabError("the source wrote no report")
    peer_reports = [
        (p.name, _load(dirs["reports"] / f"{p.name}.json"), i in lab_plan.churned)
        for i, p in enumerate(peers)
    ]
    from ppsp.lab.attackers import attack_section

    figures = analyse_vod(
        swarm_id=swarm_id,
        source=source,
        peers=peer_reports,
        source_rate=settings.source_rate,
        peer_rates=[settings.peer_rate] * settings.peers,
        download_rates=[settings.download_rate] * settings.peers,
        baseline=baseline,
        nat=net is not None,
    )
    plots = write_plots(figures, out)
    document: dict[str, Any] = {
        "kind": "vod",
        "command": settings.command,
        "parameters": {**asdict(settings), "out": str(settings.out), "size": settings.size},
        "plan": {"joins": lab_plan.joins, "churned": sorted(lab_plan.churned)},
        "content_sha256": digest,
        "outputs_verified": verified,
        "figures": figures.to_json(),
        "cpu": outcome.cpu,
        "plots": plots,
        "addresses": asdict(addresses),
    }
    if net is not None:
        document["network"] = network_json(net)
        document["nat"] = nat_section(
            [
                LabPeer(
                    name=name,
                    natted=i in net.plan.natted,
                    report=report,
                    symmetric=i in net.plan.symmetric,
                )
                for i, (name, report, _) in enumerate(peer_reports)
            ],
            swarm_id,
            source,
            settings.nat or 0.0,
            stun=None if settings.transport == "http" else net.plan.stun_server,
            turn=None if settings.transport == "http" else net.plan.stun_server,
        )
    if beside is not None:
        document["transports"] = compare_transports(document, beside, "http")
    if per_kind:
        document["attack"] = attack_section(addresses, per_kind, dirs["reports"], outcome.attackers)
    if clean is not None:
        document["comparison"] = compare_vod(clean, document)
        plot_completion_compare(
            out / "completion_attack.png",
            [p["completion_time"] for p in clean["figures"]["peers"]],
            [p["completion_time"] for p in document["figures"]["peers"]],
        )
        plots.append("completion_attack.png")
    (out / "report.json").write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    markdown = (
        render_markdown(document, after_targets=render_transports_markdown(document))
        + render_nat_markdown(document)
        + render_attack_markdown(document)
    )
    (out / "report.md").write_text(markdown, encoding="utf-8")
    return document


def http_settings(settings: VodLabSettings) -> VodLabSettings:
    """The run ``--http-beside`` adds: the same swarm (namespaces plan, seed, sizes, rates) with
    HTTP only, into ``OUT/http``, without a baseline of its own."""
    return replace(
        settings,
        out=settings.out / "http",
        transport="http",
        http_beside=False,
        baseline=False,
    )


def write_plots(figures: VodFigures, out: Path) -> list[str]:
    """Draw the vod plots into ``out``; returns their file names."""
    baseline = figures.baseline
    plot_completion_cdf(
        out / "completion_cdf.png",
        [peer.completion_time for peer in figures.peers],
        None if baseline is None else baseline.completion_times,
        bound=figures.bound.seconds,
    )
    plot_bytes_over_time(out / "bytes_over_time.png", figures.timeline)
    return ["completion_cdf.png", "bytes_over_time.png"]
