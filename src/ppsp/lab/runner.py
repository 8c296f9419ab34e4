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
import functools
import hashlib
import os
import random
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

from ppsp.lab.addresses import AddressPlan, plan_addresses
from ppsp.lab.attack_report import compare_vod, render_attack_markdown
from ppsp.lab.baseline import run_baseline
from ppsp.lab.errors import LabError
from ppsp.lab.nat_report import LabPeer, nat_section, render_nat_markdown
from ppsp.lab.nat_setup import (
    build_network,
    command_prefix,
    nat_network,
    nat_peer_args,
    nat_peer_env,
    network_json,
)
from ppsp.lab.netns import (
    STUN_PORT,
    STUN_PROBE,
    NatNetwork,
    in_namespace,
    turnserver_args,
)
from ppsp.lab.plots import plot_bytes_over_time, plot_completion_cdf, plot_completion_compare
from ppsp.lab.report import MiB, Report, VodFigures, analyse_vod, render_markdown
from ppsp.process.lifetime import child_setup
from ppsp.process.signals import STOP_SIGNALS, on_signals

LISTENING = re.compile(r"listening on (http://\S+)")
SOURCE_URL = re.compile(r" at (http://\S+)$")
"""The source's line naming its endpoint (``ppsp seed`` and ``ppsp live`` both print one)."""
COMPLETE = re.compile(r": complete, \d+ bytes verified")
START_TIMEOUT = 30.0
"""Bound on a tracker or source getting ready."""
STOP_GRACE = 15.0
"""Seconds a process has to exit after SIGTERM before it is killed."""
ENV = {
    **{name: value for name, value in os.environ.items() if not name.startswith("PPSP_")},
    # No per-user configuration file: an absolute directory that holds none.
    "XDG_CONFIG_HOME": "/nonexistent/ppsp-lab",
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "200",
}
"""The lab processes' environment: configured by the lab's own arguments alone, never by the
user's ``PPSP_*`` variables or configuration file (a user's token would give every lab peer
one PeerID; a configured port or rate would change what the lab measures)."""


class LabProcess:
    """One ``ppsp`` subprocess: its output logged to a file, its stderr watched for a pattern."""

    def __init__(
        self,
        name: str,
        process: asyncio.subprocess.Process,
        log: Path,
        *,
        watch: re.Pattern[str] | None = None,
    ) -> None:
        self.name = name
        self.process = process
        self.stdout: list[str] = []
        self.tail: deque[str] = deque(maxlen=40)
        self.watch = watch
        self.matched = asyncio.Event()
        self.matched_at: float | None = None
        self._changed = asyncio.Event()
        self._log: IO[str] = log.open("w", encoding="utf-8")
        assert process.stdout is not None and process.stderr is not None
        self._pumps = [
            asyncio.ensure_future(self._pump(process.stdout, "stdout")),
            asyncio.ensure_future(self._pump(process.stderr, "stderr")),
        ]

    @classmethod
    async def spawn(
        cls,
        name: str,
        args: Sequence[str],
        log: Path,
        *,
        watch: re.Pattern[str] | None = None,
        module: str = "ppsp",
        prefix: Sequence[str] = (),
        program: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LabProcess:
        """Start ``python -m MODULE ARGS`` (or ``program`` ARGS) in a new session (so signals
        reach it alone), run by ``prefix`` when given (``ip netns exec NAMESPACE``, which
        keeps the process ID: signals still reach the program itself); ``env`` adds to the
        lab's environment."""
        command = [*(program if program is not None else (sys.executable, "-m", module)), *args]
        process = await asyncio.create_subprocess_exec(
            *prefix,
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**ENV, **(env or {})},
            start_new_session=True,
            # Ended by the kernel should the lab itself be killed outright.
            preexec_fn=functools.partial(child_setup, os.getpid()),
        )
        return cls(name, process, log, watch=watch)

    async def _pump(self, stream: asyncio.StreamReader, which: str) -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            self._log.write(f"{which}: {line}\n")
            if which == "stdout":
                self.stdout.append(line)
            else:
                self.tail.append(line)
                if self.watch is not None and not self.matched.is_set() and self.watch.search(line):
                    self.matched_at = time.time()
                    self.matched.set()
            self._changed.set()
        self._changed.set()

    @property
    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.returncode is None

    def describe(self) -> str:
        """The process's name, exit status and last lines of stderr, for error messages."""
        status = "running" if self.alive else f"exit status {self.process.returncode}"
        return f"{self.name} ({status}):\n  " + "\n  ".join(self.tail)

    async def stdout_line(self, pattern: re.Pattern[str] | None, timeout: float) -> str:
        """The first stdout line matching ``pattern`` (any if None), waited for ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stdout:
                if pattern is None or pattern.search(line):
                    return line
            if not self.alive and all(p.done() for p in self._pumps):
                raise LabError(f"{self.name} exited before it was ready: {self.describe()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"{self.name} not ready after {timeout:.0f} s: {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def stderr_line(self, pattern: re.Pattern[str], timeout: float) -> str:
        """The first line of the stderr kept (:attr:`tail`) matching ``pattern``, waited for
        ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.tail:
                if pattern.search(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.alive:
                raise LabError(f"{self.name} did not say {pattern.pattern!r}: {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def wait_done(self, timeout: float) -> bool:
        """Wait until the watched pattern appears or the process exits; False on timeout."""
        exited = asyncio.ensure_future(self.process.wait())
        matched = asyncio.ensure_future(self.matched.wait())
        try:
            done, _ = await asyncio.wait(
                {exited, matched}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
            matched.cancel()
        return bool(done)

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time used so far (from /proc; None where unavailable)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None
        # Fields after the command name start at field 3 (state): utime is 14, stime 15.
        return (int(fields[11]) + int(fields[12])) / ticks

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process still runs."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps, return_exceptions=True), 5.0)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL at once (the last resort when the run is torn down)."""
        self.signal(signal.SIGKILL)


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
    tracker, and the source also serves PPSPP (:func:`nat_peer_args` for the peers).
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
    if net is not None:
        await start_stun(run, net, dirs["logs"])
        say(f"STUN and TURN server (coturn) at {net.plan.stun_server}")
    source_args = [
        "seed",
        str(content),
        "--tracker",
        tracker_url,
        "--host",
        addresses.source,
        "--log-level",
        "warning",
        "--upload-rate",
        _rate_arg(settings.source_rate),
        "--report",
        str(dirs["reports"] / "source.json"),
    ]
    if settings.chunk_size is not None:
        source_args += ["--chunk-size", str(settings.chunk_size)]
    if net is not None:
        source_args += ["--ppspp-port", "0"]
        if settings.ppspp_chunk_size is not None:
            source_args += ["--ppspp-chunk-size", str(settings.ppspp_chunk_size)]
    source = await LabProcess.spawn(
        "source", source_args, dirs["logs"] / "source.log", prefix=command_prefix(net, "source")
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
        args = [
            "get",
            swarm_id,
            "--tracker",
            tracker_url,
            "--host",
            addresses.peers[i],
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
        if i not in lab_plan.churned:
            args.append("--seed-after")
        if net is not None:
            args += nat_peer_args(net, i, relay=True)
        peer = await LabProcess.spawn(
            name,
            args,
            dirs["logs"] / f"{name}.log",
            watch=COMPLETE,
            prefix=command_prefix(net, name),
            env=nat_peer_env(net),
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
    echo = say or (lambda message: print(message, file=sys.stderr, flush=True))
    per_kind = settings.attackers if settings.attacks else 0
    net = nat_network(
        settings.nat,
        settings.peers,
        settings.seed,
        attackers=per_kind,
        symmetric=settings.symmetric,
    )
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
            stun=net.plan.stun_server,
            turn=net.plan.stun_server,
        )
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
        render_markdown(document) + render_nat_markdown(document) + render_attack_markdown(document)
    )
    (out / "report.md").write_text(markdown, encoding="utf-8")
    return document


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
