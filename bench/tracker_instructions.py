"""Server instructions per request under callgrind: a figure that machine load does not move.

    python -m bench.tracker_instructions [--peers N] [--requests N] [--encoding xml|json]
                                         [--tokens] [--out FILE]

The tracker (``python -m ppsp tracker``) and the bare aiohttp endpoint of
:mod:`bench.tracker_bench` each run under ``valgrind --tool=callgrind``, one after the other,
and get the load of the throughput benchmark from this process:

1. setup: ``--peers`` peers CONNECT and JOIN one of ``peers / 20`` swarms (20 per swarm, as in
   the throughput benchmark);
2. ``--warmup`` requests of the mixed load (40 % STAT_REPORT, 40 % FIND, 20 % churn);
3. the counters are zeroed (``callgrind_control --zero``), ``--requests`` requests of the mixed
   load are sent, and the counters are dumped (``callgrind_control --dump``);
4. with ``--by-kind``, the same for FIND only, STAT_REPORT only and churn only.

The figure is the dumped instruction count (Ir: every user-space instruction of the server
process, the event loop and libuv included, the kernel not) divided by the requests answered in
between.  The server runs with ``PYTHONHASHSEED=0``; what still varies between runs is the
tracker's random peer choice and how requests batch on the event loop, a fraction of a percent.
Every step has a time bound (``--timeout``); the servers are stopped at the end.

With ``--tokens`` the tracker runs with ``--auth-key`` and every request carries its peer's
bearer token, as in :mod:`bench.tracker_trust_bench`: the instructions a token costs, apart from
the machine's load that the throughput ratio there shares.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.tracker_bench import (
    LISTENING,
    Driver,
    PhaseResult,
    Workload,
    _loop_factory,
    bare_args,
    build_workload,
    run_mixed,
    run_setup,
    tracker_args,
)
from bench.tracker_trust_bench import token_headers
from ppsp.tracker.net.auth import generate_key_pair, public_key_pem
from ppsp.wire.tracker import Encoding

SUMMARY = re.compile(r"^summary:\s+(\d+)", re.MULTILINE)
NO_DEADLINE = 1e9
"""A duration that never ends a phase: phases here end on their request count."""


class Callgrind:
    """One server process under callgrind, with its counters zeroed and dumped on demand."""

    def __init__(self, args: Sequence[str], workdir: Path, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.workdir = workdir
        env = dict(os.environ, PYTHONHASHSEED="0")
        self.log = (workdir / f"{name}.valgrind.log").open("w")
        self.proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={workdir}/{name}.%p.out",
                "--dump-instr=no",
                "--dump-line=no",
                sys.executable,
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        self.url = self._wait_listening()
        self.dumps = 0

    def _wait_listening(self) -> str:
        found: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                match = LISTENING.search(line)
                if match:
                    found.append(match.group(1))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.timeout)
        if not found:
            self.stop()
            raise RuntimeError(f"{self.name} did not start under callgrind in {self.timeout} s")
        return found[0]

    def _control(self, option: str) -> None:
        subprocess.run(
            ["callgrind_control", option, str(self.proc.pid)],
            check=True,
            capture_output=True,
            timeout=self.timeout,
        )

    def zero(self) -> None:
        """Reset the instruction counters."""
        self._control("--zero")

    def dump(self) -> int:
        """Write the counters out; return the instructions counted since the last zero."""
        self._control("--dump")
        self.dumps += 1
        path = self.workdir / f"{self.name}.{self.proc.pid}.out.{self.dumps}"
        deadline = time.monotonic() + self.timeout
        while True:
            text = path.read_text() if path.exists() else ""
            match = SUMMARY.search(text)
            if match:
                return int(match.group(1))
            if time.monotonic() > deadline:
                raise RuntimeError(f"no callgrind dump at {path}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Terminate the server (and valgrind with it)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def run_kind(
    driver: Driver, work: Workload, kind: str, count: int, concurrency: int, pid: int
) -> PhaseResult:
    """``count`` requests of one kind: FIND, STAT_REPORT, or churn (CONNECT, JOIN, DISCONNECT)."""
    result = PhaseResult()
    peers = len(work.reports)

    async def worker(w: int) -> None:
        rng = random.Random(7000 + w)
        connect, join, leave = work.churn[w]
        while result.requests < count:
            if kind == "FIND":
                await driver.post(kind, work.finds[rng.randrange(peers)], result)
            elif kind == "STAT_REPORT":
                await driver.post(kind, work.reports[rng.randrange(peers)], result)
            else:
                await driver.post("CONNECT", connect, result)
                await driver.post("JOIN", join, result)
                await driver.post("DISCONNECT", leave, result)

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return result


async def measure(
    server: Callgrind,
    work: Workload,
    args: argparse.Namespace,
    check: bool,
    headers_by_body: dict[bytes, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Setup, warm-up, then the counted phases against one server under callgrind."""
    encoding = Encoding(args.encoding)
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    out: dict[str, Any] = {}
    pid = server.proc.pid
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        driver = Driver(server.url, session, encoding, headers_by_body=headers_by_body)
        driver.check = check
        async with asyncio.timeout(args.timeout):
            setup = await run_setup(driver, work, args.concurrency, pid)
        out["setup_requests"] = setup.requests
        async with asyncio.timeout(args.timeout):
            await run_mixed(driver, work, args.concurrency, NO_DEADLINE, args.warmup, pid)
        phases: list[tuple[str, int]] = [("mixed", args.requests)]
        if args.by_kind:
            phases += [("FIND", args.requests // 2), ("STAT_REPORT", args.requests // 2)]
            phases += [("churn", args.requests // 2)]
        for phase, count in phases:
            server.zero()
            async with asyncio.timeout(args.timeout):
                if phase == "mixed":
                    result = await run_mixed(
                        driver, work, args.concurrency, NO_DEADLINE, count, pid, seed=11
                    )
                else:
                    result = await run_kind(driver, work, phase, count, args.concurrency, pid)
            instructions = server.dump()
            if result.errors:
                raise RuntimeError(f"{server.name}: {result.errors} failed requests in {phase}")
            out[phase] = {
                "requests": result.requests,
                "instructions": instructions,
                "instructions_per_request": round(instructions / result.requests),
                "by_kind": result.by_kind,
            }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both servers and print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracker_instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--peers", type=int, default=1000, help="simulated peers (setup)")
    parser.add_argument("--warmup", type=int, default=500, help="mixed requests before counting")
    parser.add_argument("--requests", type=int, default=2000, help="counted mixed requests")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--encoding", choices=["xml", "json"], default="xml")
    parser.add_argument("--by-kind", action="store_true", help="also count each kind alone")
    parser.add_argument(
        "--only", choices=["tracker", "bare_aiohttp"], default=None, help="measure one server"
    )
    parser.add_argument(
        "--tokens", action="store_true", help="the tracker checks a bearer token on every request"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on each step, s")
    parser.add_argument("--keep", type=Path, default=None, help="keep callgrind files here")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("valgrind (with callgrind_control) is needed")

    encoding = Encoding(args.encoding)
    work = build_workload(args.peers, args.concurrency, encoding)
    report: dict[str, Any] = {
        "command": " ".join(
            [
                Path(sys.executable).name,
                "-m",
                "bench.tracker_instructions",
                *(argv or sys.argv[1:]),
            ]
        ),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "workload": {
            "peers": args.peers,
            "swarms": max(1, args.peers // 20),
            "concurrency": args.concurrency,
            "warmup_requests": args.warmup,
            "counted_requests": args.requests,
            "encoding": args.encoding,
            "tokens": args.tokens,
            "mix": "40% STAT_REPORT (256-chunk content map), 40% FIND, 20% churn "
            "(CONNECT + JOIN + DISCONNECT of a fresh peer)",
        },
        "method": "valgrind --tool=callgrind; counters zeroed before and dumped after the "
        "counted requests; Ir of the server process / requests answered",
    }
    workdir = Path(tempfile.mkdtemp(prefix="ppsp-callgrind-"))
    tracker = tracker_args()
    headers_by_body = None
    if args.tokens:
        private_key, public_key = generate_key_pair()
        auth_key = workdir / "auth.pub.pem"
        auth_key.write_bytes(public_key_pem(public_key))
        tracker = [*tracker, "--auth-key", str(auth_key)]
        headers_by_body = token_headers(work, args.peers, encoding, private_key)
    servers = [("tracker", tracker, True), ("bare_aiohttp", bare_args(encoding), False)]
    try:
        for name, server_args, check in servers:
            if args.only is not None and name != args.only:
                continue
            started = time.monotonic()
            server = Callgrind(server_args, workdir, name, args.timeout)
            try:
                with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                    by_body = headers_by_body if name == "tracker" else None
                    report[name] = runner.run(measure(server, work, args, check, by_body))
            finally:
                server.stop()
            report[name]["wall_seconds"] = round(time.monotonic() - started, 1)
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in workdir.iterdir():
                shutil.move(str(path), args.keep / path.name)
        shutil.rmtree(workdir, ignore_errors=True)

    if "tracker" in report and "bare_aiohttp" in report:
        report["ratio"] = {
            "instructions_per_request_tracker_over_bare": round(
                report["tracker"]["mixed"]["instructions_per_request"]
                / report["bare_aiohttp"]["mixed"]["instructions_per_request"],
                3,
            )
        }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
