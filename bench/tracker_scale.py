"""Big swarms and many swarms: a real tracker's memory, FIND latency and expiry sweep at scale.

    python -m bench.tracker_scale [--peers N] [--swarms M] [--out FILE]
                                  [--expiry stall|natural|none] [--max-seconds S]
                                  [--finds K] [--find-rate R] [--track-timeout T] [--in-process]
    python -m bench.tracker_scale --gc-pauses [--peers N] [--swarms M] [--out FILE] [--no-freeze]

One scenario per run: ``--peers`` peers (1,000,000 by default) spread evenly over ``--swarms``
swarms (100,000), registered with a real ``ppsp tracker`` process on memory storage
(``--limits off``: every simulated peer comes from 127.0.0.1).  ``--swarms 1`` is the one big
swarm.  Everything is measured from outside the tracker:

1. **Registration.**  Every peer sends a CONNECT (its address ``10.x.y.z:7000``, PeerID of 16
   hex digits, as ``ppsp`` peers make them) and then a JOIN of its swarm, in batches: a batch's
   CONNECTs, then its JOINs, each spread over 32 keep-alive loopback connections by
   :func:`bench.tracker_memory._post_all`.  Registration stops at ``--max-seconds`` (or earlier,
   before the first peers' timers could run out) and every later figure is at the scale
   reached, which the report states (``complete``).  Memory: the tracker's ``VmRSS`` (from
   ``/proc``) after one warm-up peer and after the registrations, per peer; the tracker's CPU
   seconds (user + system) per registered peer.
2. **FIND latency in the big state.**  ``--finds`` FINDs (2,000) from registered peers, of
   their own swarm, one at a time on one keep-alive connection, paced at ``--find-rate`` per
   second (200): a light load.  p50/p90/p99/max, and the peers listed per answer.
3. **Expiry sweep.**  The tracker runs with ``--track-timeout T`` (and ``--init-timeout T``):
   long enough for the registrations and the FINDs, as short as that allows.  Unless given,
   ``T`` comes from a calibration run (a throwaway tracker registering 5,000 peers of the same
   shape): the estimated registration time (bounded by ``--max-seconds``) with 30% to spare,
   plus the FIND phase and a margin.

   - ``stall`` (default): every timer runs out at once.  The tracker is stopped (``SIGSTOP``)
     before its first peer's timer runs out and continued (``SIGCONT``) once the last one has
     (its clock, ``time.monotonic``, runs on while it is stopped), so that its next expiry
     tick finds every peer due: the worst case, a tracker that stalled (a suspended VM, a
     debugger, a swapped-out process) or a crowd whose timers run out in one instant.
     ``sweep_seconds`` runs from the ``SIGCONT`` to the first ``/status`` answer counting no
     peer.
   - ``natural``: the timers run out in the order the peers registered, so the sweep lasts
     about as long as the registration did, in many small expiry ticks.
     ``sweep_seconds`` runs from the first ``/status`` answer counting fewer peers to the
     first counting none.
   - ``none``: no expiry measurement (the run ends after the FINDs).

   Both waits last about ``T`` after the FINDs: the last timer set is the last FIND's.

``--in-process`` adds the same sweep on ``MemoryStorage`` alone, in a fresh interpreter (no
HTTP, no event loop: the sweep's own CPU), and one full ``gc.collect()`` of that storage.
``--gc-pauses`` measures instead, in process, the registrations through ``Tracker.handle`` with
the garbage collector tuned as ``ppsp tracker`` tunes it: every collection of the older
generations, its duration and the peers registered when it ran (:func:`gc_pauses`); the state
is frozen as the tracker's upkeep task freezes it, unless ``--no-freeze``.

A **prober** process sends ``GET /status`` every 10 ms on a keep-alive connection for the
whole run and records each answer time; the report gives, per phase, the p50/p99/max answer
time, and for the expiry the longest pause: the longest answer time of a probe, counted from
the ``SIGCONT`` for the one probe waiting on the stopped tracker.  Another engineer's tests
may load the same two cores: latency figures are noisy (the report notes the load average at
start and end).  Wall-clock figures, never asserted by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ppsp
from bench.processes import ROOT
from bench.tracker_bench import _cpu_seconds, _percentile, _start, _stop, tracker_args
from bench.tracker_memory import (
    _fill_storage,
    _post_all,
    _run,
    advertised_ip,
    peer_id,
    rss_bytes,
    swarm_of,
)
from ppsp.codecs.tracker import codec_for
from ppsp.process.tuning import FreezeTrigger, freeze_state, tune_garbage_collector
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.storage import MemoryStorage
from ppsp.wire.tracker import (
    ConnectRequest,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
BATCH = 10_000
"""Peers per registration batch: their CONNECTs, then their JOINs."""
CALIBRATION_PEERS = 5_000
"""Peers the calibration run registers to estimate the registration rate."""
PROBE_INTERVAL = 0.01
"""Seconds between two probes' sends."""
WARM_PEER = 1 << 40
"""Index of the warm-up peer (its own swarm, far from the measured peers)."""

# Marks in the request templates, replaced per peer (each occurs once in a template).
PEER_MARK = "feedfacecafebeef"
IP_MARK = "10.254.253.252"
SWARM_MARK = "swarmMARKswarm"


# -- request bodies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Templates:
    """A CONNECT and a JOIN, encoded once with marks that :meth:`fill` replaces per peer.

    Encoding each request (about 60 µs in XML) would keep the loader busy while the tracker
    waits; filling a template costs about a microsecond.
    """

    connect: bytes
    join: bytes
    content_type: str

    @classmethod
    def of(cls, encoding: Encoding) -> Templates:
        """The templates of ``encoding``."""
        codec = codec_for(encoding)
        address = PeerAddress(ip=IP_MARK, port=7000, peer_protocol="PPSP-PP/0.1")
        connect = codec.encode_request(
            ConnectRequest(
                version=V11, transaction_id="1", peer_id=PEER_MARK, peer_addresses=(address,)
            )
        )
        join = codec.encode_request(
            JoinRequest(
                version=V11,
                transaction_id="2",
                peer_id=PEER_MARK,
                swarms=(SwarmAction(swarm_id=SWARM_MARK, peer_mode=PeerMode.LEECH),),
            )
        )
        for body in (connect, join):
            assert body.count(PEER_MARK.encode()) == 1, body
        assert connect.count(IP_MARK.encode()) == 1 and join.count(SWARM_MARK.encode()) == 1
        return cls(connect, join, encoding.content_type)

    def fill(self, template: bytes, i: int, swarm_size: int) -> bytes:
        """``template`` (:attr:`connect` or :attr:`join`) for simulated peer ``i``."""
        body = template.replace(PEER_MARK.encode(), peer_id(i).encode())
        if template is self.connect:
            return body.replace(IP_MARK.encode(), advertised_ip(i).encode())
        return body.replace(SWARM_MARK.encode(), swarm_of(i, swarm_size).encode())


def find_body(encoding: Encoding, i: int, swarm_size: int) -> bytes:
    """Simulated peer ``i``'s FIND of its own swarm."""
    return codec_for(encoding).encode_request(
        FindRequest(
            version=V11, transaction_id="3", peer_id=peer_id(i), swarm_id=swarm_of(i, swarm_size)
        )
    )


# -- talking to the tracker ---------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    parts = url.split("//", 1)[1].split("/", 1)[0]
    host, port = parts.rsplit(":", 1)
    return host, int(port)


class Client:
    """One keep-alive connection to the tracker, made again after a failure (blocking)."""

    def __init__(self, url: str, timeout: float = 600.0) -> None:
        self.host, self.port = _host_port(url)
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        """Send one request; its status and body (status 0 when the connection failed)."""
        headers = {"Content-Type": content_type} if content_type else {}
        for _ in range(2):  # once more on a new connection: the server may close an idle one
            try:
                self.conn.request(method, path, body=body, headers=headers)
                answer = self.conn.getresponse()
                return answer.status, answer.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return 0, b""

    def status(self) -> dict[str, Any]:
        """The tracker's ``/status`` (empty when it did not answer)."""
        code, body = self.request("GET", "/status")
        if code != 200:
            return {}
        status: dict[str, Any] = json.loads(body)
        return status

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def register(
    url: str, templates: Templates, first: int, count: int, swarm_size: int, until: float
) -> tuple[int, int]:
    """Register peers ``first``.. (at most ``count``) in batches until ``until`` (monotonic).

    Returns how many peers were sent (whole batches) and the count of non-200 answers; a
    batch with a failure ends the registration (the tracker is refusing or broken: every later
    figure would measure that).
    """
    failures = 0
    i, end = first, first + count
    while i < end and time.monotonic() < until and not failures:
        last = min(end, i + BATCH)
        for template in (templates.connect, templates.join):
            bodies = [templates.fill(template, j, swarm_size) for j in range(i, last)]
            failures += asyncio.run(_post_all(url, bodies, templates.content_type))
        i = last
    return i - first, failures


def warm_up(client: Client, templates: Templates, encoding: Encoding) -> None:
    """Register the warm-up peer (its own swarm) and FIND once; raise unless all answer 200."""
    for body in (
        templates.fill(templates.connect, WARM_PEER, 1),
        templates.fill(templates.join, WARM_PEER, 1),
        find_body(encoding, WARM_PEER, 1),
    ):
        code, answer = client.request("POST", "/", body, templates.content_type)
        if code != 200:
            raise RuntimeError(f"the tracker answered {code}: {answer[:300]!r}")


def start_tracker(timeout: float) -> tuple[subprocess.Popen[str], str]:
    """A ``ppsp tracker`` on memory storage whose timers run out after ``timeout`` seconds,
    and its URL."""
    args = tracker_args("memory")
    for option in ("--init-timeout", "--track-timeout"):
        args[args.index(option) + 1] = f"{timeout:g}"
    return _start(args)


def calibrate(templates: Templates, peers: int, swarm_size: int) -> float:
    """Peers per second a throwaway tracker registers (CONNECT + JOIN), same swarm shape."""
    proc, url = _start(tracker_args("memory"))
    try:
        count = min(peers, CALIBRATION_PEERS)
        started = time.monotonic()
        done, failures = register(url, templates, 0, count, swarm_size, math.inf)
        if failures:
            raise RuntimeError(f"calibration: {failures} request(s) not answered 200")
        return done / (time.monotonic() - started)
    finally:
        _stop(proc)


# -- the prober ---------------------------------------------------------------------------------


def probe(url: str, out: Path, interval: float = PROBE_INTERVAL) -> None:
    """Send ``GET /status`` every ``interval`` seconds until the parent process is gone.

    Writes one line per probe to ``out``: monotonic send time, answer time, and the peer count
    answered (-1 when the request failed).
    """
    parent = os.getppid()
    client = Client(url, timeout=7200.0)  # a stopped tracker answers once continued
    next_at = time.monotonic()
    with out.open("w") as sink:
        while os.getppid() == parent:
            sent = time.monotonic()
            status = client.status()
            done = time.monotonic()
            sink.write(f"{sent:.6f} {done:.6f} {status.get('peers', -1)}\n")
            sink.flush()
            next_at = max(next_at + interval, done)
            time.sleep(max(0.0, next_at - time.monotonic()))


@dataclass
class Probes:
    """The prober's records: (sent, answered, peers) per probe."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Probes:
        """The records written so far (a last partial line is skipped)."""
        samples = []
        for text in path.read_text().splitlines():
            parts = text.split()
            if len(parts) == 3:
                samples.append((float(parts[0]), float(parts[1]), int(parts[2])))
        return cls(samples)

    def window(self, start: float, end: float, resumed: float | None = None) -> dict[str, Any]:
        """Answer times of the probes answered between ``start`` and ``end``.

        With ``resumed`` (the ``SIGCONT``), a probe sent before it counts from it: the time
        the tracker took once running again.
        """
        times = sorted(
            done - max(sent, resumed if resumed is not None else sent)
            for sent, done, _ in self.samples
            if start <= done <= end and (resumed is None or done >= resumed)
        )
        failed = sum(1 for _, done, peers in self.samples if start <= done <= end and peers < 0)
        slowest = sorted(
            (
                (done - max(sent, resumed if resumed is not None else sent), sent)
                for sent, done, _ in self.samples
                if start <= done <= end and (resumed is None or done >= resumed)
            ),
            reverse=True,
        )[:5]
        return {
            "probes": len(times),
            "failed": failed,
            "p50_ms": _ms(_percentile(times, 0.5)),
            "p99_ms": _ms(_percentile(times, 0.99)),
            "max_ms": _ms(times[-1]) if times else None,
            "slowest": [
                {"ms": _ms(took), "sent_at_s": round(sent - start, 2)} for took, sent in slowest
            ],
        }


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 2)


# -- the run ------------------------------------------------------------------------------------


def find_phase(
    client: Client, encoding: Encoding, peers: list[int], swarm_size: int, rate: float
) -> dict[str, Any]:
    """FINDs of ``peers`` (each of its own swarm), one at a time, paced at ``rate`` per second."""
    bodies = [find_body(encoding, i, swarm_size) for i in peers]
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []
    next_at = time.monotonic()
    for body in bodies:
        time.sleep(max(0.0, next_at - time.monotonic()))
        started = time.perf_counter()
        answers.append(client.request("POST", "/", body, encoding.content_type))
        latencies.append(time.perf_counter() - started)
        next_at = max(next_at + 1 / rate, time.monotonic())
    codec = codec_for(encoding)
    listed: list[int] = []
    failures = 0
    for code, data in answers:
        answer = codec.decode_response(data, code) if code else None
        if isinstance(answer, TrackerResponse):
            listed.append(len(answer.peers))
        else:
            failures += 1
    latencies.sort()
    return {
        "requests": len(bodies),
        "failures": failures,
        "rate_per_second": rate,
        "latency_ms": {
            "p50": _ms(_percentile(latencies, 0.5)),
            "p90": _ms(_percentile(latencies, 0.9)),
            "p99": _ms(_percentile(latencies, 0.99)),
            "max": _ms(latencies[-1]) if latencies else None,
        },
        "peers_per_answer_mean": round(sum(listed) / len(listed), 2) if listed else None,
    }


def wait_until(moment: float) -> None:
    """Sleep until the monotonic clock reads ``moment``."""
    time.sleep(max(0.0, moment - time.monotonic()))


def expiry_phase(
    proc: subprocess.Popen[str],
    client: Client,
    mode: str,
    timeout: float,
    registered_at: float,
    last_reset: float,
    expected: int,
) -> dict[str, Any]:
    """Wait for every timer to run out (``stall`` or ``natural``) and time the sweep."""
    pid = proc.pid
    result: dict[str, Any] = {"mode": mode, "track_timeout_s": timeout}
    bound = 120.0 + timeout  # on top of the last timer: no sweep waits longer
    if mode == "stall":
        before = client.status().get("peers", -1)
        os.kill(pid, signal.SIGSTOP)
        result["peers_when_stopped"] = before
        result["expired_before_stop"] = expected - before
        wait_until(last_reset + timeout + 1.5)
        cpu = _cpu_seconds(pid)
        resumed = time.monotonic()
        os.kill(pid, signal.SIGCONT)
        start = resumed
        first_drop: float | None = resumed
    else:
        wait_until(registered_at + timeout - 1.0)
        cpu = _cpu_seconds(pid)
        start = time.monotonic()
        resumed = None
        first_drop = None
        before = expected
    zero = None
    longest = 0.0
    while time.monotonic() < last_reset + timeout + bound:
        asked = time.monotonic()
        peers = client.status().get("peers", -1)
        now = time.monotonic()
        longest = max(longest, now - asked)
        if first_drop is None and 0 <= peers < expected:
            first_drop = now
        if peers == 0:
            zero = now
            break
        time.sleep(0.01 if mode == "stall" else 0.1)
    cpu = _cpu_seconds(pid) - cpu
    # The prober's probes that waited on the sweep may be answered just after this loop's:
    # the window runs on a moment, so that they count.
    time.sleep(1.0)
    end = time.monotonic()
    result["server_cpu_seconds"] = round(cpu, 3)
    result["longest_status_poll_ms"] = _ms(longest)
    result["complete"] = zero is not None
    result["expired"] = before if zero is not None else None
    result["sweep_seconds"] = (
        round(zero - first_drop, 3) if zero is not None and first_drop is not None else None
    )
    result["window"] = (start, end, resumed)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One scenario, measured; the JSON report."""
    encoding = Encoding(args.encoding)
    templates = Templates.of(encoding)
    swarm_size = max(1, math.ceil(args.peers / args.swarms))
    find_seconds = args.finds / args.find_rate * 1.5 + 0.5
    notes = [
        "Latency and pause figures are wall-clock on a shared 2-core machine (other tests may "
        "run at the same time): noisy; see load_average.",
    ]
    report: dict[str, Any] = {
        "benchmark": "tracker_scale",
        "command": " ".join(
            ["python", "-m", "bench.tracker_scale", *(args.argv if args.argv else [])]
        ),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "ppsp_source": str(Path(ppsp.__file__).parent),
        },
    }
    timeout = args.track_timeout
    calibrated = None
    if timeout is None:
        calibrated = calibrate(templates, args.peers, swarm_size)
        estimate = min(args.max_seconds, args.peers / calibrated * 1.3)
        timeout = math.ceil(estimate + find_seconds + 20)
    slack = min(10.0, 0.2 * timeout)
    report["scenario"] = {
        "peers_requested": args.peers,
        "swarms_requested": args.swarms,
        "swarm_size": swarm_size,
        "encoding": encoding.value,
        "storage": "memory",
        "loader_connections": 32,
        "registration": "CONNECT, then JOIN of one swarm (LEECH), per peer",
        "track_timeout_s": timeout,
        "calibration_peers_per_second": round(calibrated, 1) if calibrated else None,
        "max_seconds": args.max_seconds,
    }

    proc, url = start_tracker(timeout)
    handle, name = tempfile.mkstemp(prefix="tracker-scale-probe-", suffix=".txt")
    os.close(handle)
    probe_file = Path(name)
    prober = subprocess.Popen(
        [sys.executable, "-m", "bench.tracker_scale", "--probe", url, "--probe-out", name],
        cwd=ROOT,
    )
    client = Client(url)
    try:
        # One warm-up peer (imports, first-use caches), then the baseline.
        warm_up(client, templates, encoding)
        time.sleep(0.5)
        rss_before = rss_bytes(proc.pid)
        cpu = _cpu_seconds(proc.pid)
        registered_at = time.monotonic()
        until = registered_at + min(args.max_seconds, timeout - find_seconds - slack)
        registered, failures = register(url, templates, 0, args.peers, swarm_size, until)
        reg_end = time.monotonic()
        reg_cpu = _cpu_seconds(proc.pid) - cpu
        time.sleep(0.5)
        rss_after = rss_bytes(proc.pid)
        status = client.status()
        seconds = reg_end - registered_at
        report["registration"] = {
            "peers": registered,
            "swarms": math.ceil(registered / swarm_size),
            "complete": registered == args.peers,
            "requests": 2 * registered,
            "failures": failures,
            "seconds": round(seconds, 1),
            "peers_per_second": round(registered / seconds, 1) if seconds else None,
            "server_cpu_seconds": round(reg_cpu, 2),
            "server_cpu_us_per_peer": round(reg_cpu / registered * 1e6, 1) if registered else None,
            "status_after": {k: status.get(k) for k in ("peers", "swarms", "memberships")},
        }
        if failures:
            notes.append(
                f"{failures} registration request(s) were not answered 200: registration "
                "stopped after that batch."
            )
        elif registered < args.peers:
            notes.append(
                f"Registration stopped at {registered:,} of {args.peers:,} peers (time bound "
                f"{until - registered_at:.0f} s): every figure is at that scale, not extrapolated."
            )
        rng = random.Random(1)
        finders = [rng.randrange(registered) for _ in range(args.finds)] if registered else []
        find_start = time.monotonic()
        report["find"] = find_phase(client, encoding, finders, swarm_size, args.find_rate)
        last_reset = time.monotonic()
        time.sleep(0.5)
        rss_finds = rss_bytes(proc.pid)
        report["memory"] = {
            "rss_before_bytes": rss_before,
            "rss_after_registration_bytes": rss_after,
            "rss_bytes_per_peer": round((rss_after - rss_before) / registered, 1)
            if registered
            else None,
            "rss_after_finds_bytes": rss_finds,
            "method": "VmRSS of the tracker process (/proc), after one warm-up peer and after "
            "the registrations; growth over registered peers",
        }
        windows: dict[str, tuple[float, float, float | None]] = {
            "registration": (registered_at, reg_end, None),
            "find": (find_start, last_reset, None),
        }
        if args.expiry != "none":
            expiry = expiry_phase(
                proc, client, args.expiry, timeout, registered_at, last_reset, registered + 1
            )
            windows["expiry"] = expiry.pop("window")
            time.sleep(0.5)
            report["memory"]["rss_after_expiry_bytes"] = rss_bytes(proc.pid)
            report["expiry"] = expiry
        report["memory"]["rss_peak_bytes"] = peak_rss(proc.pid)
    finally:
        client.close()
        prober.terminate()
        prober.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        _stop(proc)
    probes = Probes.read(probe_file)
    probe_file.unlink()
    report["status_probes"] = {
        name: probes.window(*window) for name, window in windows.items() if name in windows
    }
    if "expiry" in report:
        report["expiry"]["longest_pause_ms"] = report["status_probes"]["expiry"]["max_ms"]
    if args.in_process and registered:
        report["expiry_in_process"] = sweep_in_subprocess(registered, swarm_size)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["notes"] = notes
    return report


def peak_rss(pid: int) -> int:
    """The peak resident set size of a process (``VmHWM``), in bytes."""
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc")


def sweep_in_process(peers: int, swarm_size: int) -> dict[str, Any]:
    """The same sweep without HTTP, processes or a machine clock: ``MemoryStorage`` filled with
    ``peers`` records (as :mod:`bench.tracker_memory` fills it: deadlines 1 ms apart), then one
    ``expire`` at a time past every deadline; its wall and CPU seconds in this process."""
    storage = MemoryStorage(seed=1)
    _run(_fill_storage(storage, peers, swarm_size))
    # A full collection walks every object the peers hold: the pause the collector's oldest
    # generation costs a tracker of this size whenever it runs.
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    gc.collect()
    full_gc, full_gc_cpu = time.perf_counter() - wall, time.process_time() - cpu
    tracked = len(gc.get_objects())
    wall, cpu = time.perf_counter(), time.process_time()
    expired: list[str] = []

    async def sweep() -> None:
        expired.extend(await storage.expire(math.inf))

    _run(sweep())
    return {
        "peers": peers,
        "swarm_size": swarm_size,
        "expired": len(expired),
        "seconds": round(time.perf_counter() - wall, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
        "full_gc_seconds": round(full_gc, 3),
        "full_gc_cpu_seconds": round(full_gc_cpu, 3),
        "gc_tracked_objects": tracked,
        "method": "in process: MemoryStorage.expire of every peer at once (no HTTP, no event "
        "loop), in a fresh interpreter; full_gc_seconds: one gc.collect() of the filled storage",
    }


def gc_pauses(
    peers: int, swarm_size: int, slow: float = 0.05, *, freeze: bool = True
) -> dict[str, Any]:
    """Registrations through ``Tracker.handle`` in this process (memory storage, the garbage
    collector tuned as ``ppsp tracker`` tunes it), each peer's CONNECT + JOIN timed: the ones
    slower than ``slow`` seconds, and every collection of the older generations with its
    duration and the peers registered when it ran.  No HTTP, no clock of a machine under test:
    what the tracker's own process costs as it grows.  With ``freeze`` the state is frozen as
    the tracker's upkeep task freezes it (:class:`FreezeTrigger`, looked at every 1,000 peers
    here); its collection shows as a full collection."""
    tracker = Tracker(
        MemoryStorage(seed=1),
        TrackerConfig(init_timeout=1e9, track_timeout=1e9, limits=DEFAULT_LIMITS.off()),
    )
    tune_garbage_collector()
    collections: list[dict[str, Any]] = []
    started = [0.0]
    at = [0]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] >= 1:
            took = time.perf_counter() - started[0]
            collections.append({"generation": info["generation"], "ms": _ms(took), "peers": at[0]})

    async def one(i: int) -> None:
        observed = ("127.0.0.1", 40000 + i % 20000)
        address = PeerAddress(ip=advertised_ip(i), port=7000, peer_protocol="PPSP-PP/0.1")
        await tracker.handle(
            ConnectRequest(
                version=V11, transaction_id="1", peer_id=peer_id(i), peer_addresses=(address,)
            ),
            observed=observed,
            now=1.0,
        )
        await tracker.handle(
            JoinRequest(
                version=V11,
                transaction_id="2",
                peer_id=peer_id(i),
                swarms=(SwarmAction(swarm_id=swarm_of(i, swarm_size), peer_mode=PeerMode.LEECH),),
            ),
            observed=observed,
            now=1.0,
        )

    slowest: list[dict[str, Any]] = []
    trigger = FreezeTrigger() if freeze else None
    freezes: list[dict[str, Any]] = []
    gc.callbacks.append(watch)
    try:
        begun = time.perf_counter()
        for i in range(peers):
            at[0] = i
            t = time.perf_counter()
            _run(one(i))
            took = time.perf_counter() - t
            if took > slow:
                slowest.append({"peer": i, "ms": _ms(took)})
            if trigger is not None and i % 1000 == 0 and trigger.due(i):
                t = time.perf_counter()
                freeze_state()
                freezes.append({"peers": i, "ms": _ms(time.perf_counter() - t)})
        seconds = time.perf_counter() - begun
    finally:
        gc.callbacks.remove(watch)
    young = [c["ms"] for c in collections if c["generation"] == 1]
    return {
        "peers": peers,
        "swarm_size": swarm_size,
        "seconds": round(seconds, 1),
        "full_collections": [c for c in collections if c["generation"] == 2],
        "generation1_collections": len(young),
        "generation1_max_ms": max(young, default=None),
        "freezes": freezes if freeze else None,
        "registrations_slower_than_ms": _ms(slow),
        "slow_registrations": slowest,
        "method": "in process: Tracker.handle of each peer's CONNECT and JOIN, gc tuned by "
        "ppsp.process.tuning.tune_garbage_collector as ppsp tracker does; gc.callbacks",
    }


def sweep_in_subprocess(peers: int, swarm_size: int) -> dict[str, Any]:
    """:func:`sweep_in_process` in a fresh interpreter (a clean heap)."""
    command = [sys.executable, "-m", "bench.tracker_scale", "--sweep-in-process", str(peers)]
    out = subprocess.run(
        [*command, "--swarm-size", str(swarm_size)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- main ---------------------------------------------------------------------------------------


def summary(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    reg, mem, find = report["registration"], report["memory"], report["find"]
    lines = [
        f"registered {reg['peers']:,} peers in {reg['swarms']:,} swarms in {reg['seconds']} s "
        f"({reg['peers_per_second']} peers/s, {reg['server_cpu_us_per_peer']} µs server CPU "
        f"per peer), {reg['failures']} failures",
        f"RSS {mem['rss_bytes_per_peer']} B per peer "
        f"({mem['rss_before_bytes'] >> 20} -> {mem['rss_after_registration_bytes'] >> 20} MiB)",
        f"FIND p50 {find['latency_ms']['p50']} ms, p99 {find['latency_ms']['p99']} ms, "
        f"{find['peers_per_answer_mean']} peers per answer",
    ]
    if "expiry" in report:
        expiry = report["expiry"]
        lines.append(
            f"expiry ({expiry['mode']}): {expiry['expired']} peers in {expiry['sweep_seconds']} s, "
            f"{expiry['server_cpu_seconds']} s CPU, longest /status pause "
            f"{expiry['longest_pause_ms']} ms"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one scenario, print a summary and write the JSON report (``--out``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--peers", type=int, default=1_000_000, help="peers to register")
    parser.add_argument("--swarms", type=int, default=100_000, help="swarms they spread over")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--expiry", choices=("stall", "natural", "none"), default="stall")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="bound on the registration time"
    )
    parser.add_argument("--finds", type=int, default=2000, help="FINDs in the big state")
    parser.add_argument("--find-rate", type=float, default=200.0, help="FINDs per second")
    parser.add_argument(
        "--track-timeout", type=float, help="the tracker's timers (default: from a calibration)"
    )
    parser.add_argument("--encoding", choices=("xml", "json"), default="xml")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also time the sweep in process (MemoryStorage alone, a fresh interpreter)",
    )
    parser.add_argument(
        "--gc-pauses",
        action="store_true",
        help="instead: register --peers in process and time the garbage collector's pauses",
    )
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="with --gc-pauses: never freeze the state (as before the upkeep task did)",
    )
    parser.add_argument("--sweep-in-process", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--swarm-size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe, args.probe_out)
        return 0
    if args.sweep_in_process:
        print(json.dumps(sweep_in_process(args.sweep_in_process, args.swarm_size)))
        return 0
    if args.gc_pauses:
        result = gc_pauses(
            args.peers, max(1, math.ceil(args.peers / args.swarms)), freeze=not args.no_freeze
        )
        print(json.dumps(result, indent=2))
        if args.out is not None:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.peers < 1 or args.swarms < 1 or args.swarms > args.peers or args.finds < 0:
        parser.error("need 1 <= --swarms <= --peers and --finds >= 0")
    if args.find_rate <= 0 or args.max_seconds <= 0:
        parser.error("--find-rate and --max-seconds must be positive")
    args.argv = list(argv if argv is not None else sys.argv[1:])
    report = run(args)
    print(summary(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if report["registration"]["failures"] or report["find"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
