"""End to end: a live viewer behind NAT A gets live chunks over PPSPP from a viewer behind NAT B.

In network namespaces (:func:`~e2e.nat_helpers.two_nats`): the tracker and coturn (STUN) on
the public segment, the live source on the public host whose uplink is capped (``tbf``), and
two viewers, each behind a masquerading router of its own, watching with ``--transport ppspp
--transport http --stun``.  Neither viewer's HTTP address can be reached from the other, so
the one behind NAT A reaches the one behind NAT B over UDP only: its channel's handshake goes
to each PPSPP address B registered until one answers, through the hole B punched towards A.
The source's UDP towards NAT A is dropped (HTTP passes: the description and chunk maps), so
the live chunks viewer A plays must cross both NATs from viewer B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from e2e.nat_helpers import (
    CLIENT_A,
    CLIENT_B,
    NFT,
    PUBLIC,
    PUNCHING,
    REFLEXIVE,
    ROUTER_A_PUBLIC,
    SOURCE,
    public_tracker,
    require,
    spawn_in,
    stun_server,
    two_nats,
)
from e2e.swarm_helpers import Peer, Swarm

pytestmark = pytest.mark.e2e

OFFERING = re.compile(r"offering PPSPP at udp")

CHUNK_BYTES = 12_000
"""Bytes the test appends to the live input every 250 ms (384 kbit/s)."""

SOURCE_RULES = f"""table ip lab {{
  chain out {{
    type filter hook output priority filter; policy accept;
    ip daddr {ROUTER_A_PUBLIC} meta l4proto udp drop;
  }}
}}
"""
"""The source's datagrams to NAT A dropped: it cannot serve viewer A over PPSPP."""


async def _feed(path: Path) -> None:
    """Append numbered bytes to the live input as a live stream would (until cancelled)."""
    number = 0
    while True:
        with path.open("ab") as out:
            out.write(b"".join((number + i).to_bytes(4, "big") for i in range(CHUNK_BYTES // 4)))
        number += CHUNK_BYTES // 4
        await asyncio.sleep(0.25)


STATS = (
    "import sys, urllib.request\n"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
)
"""Print a viewer's ``/stats.json`` (run in the viewer's namespace: its player is there)."""


async def _until(
    prefix: Sequence[str], player_url: str, check: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """Poll the ``/stats.json`` of the viewer whose player is at ``player_url`` until ``check``
    holds of it (30 s at most: the assertions after say what was missing); its last answer."""
    stats_url = player_url.rsplit("/", 1)[0] + "/stats.json"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30.0
    stats: dict[str, int] = {}
    while loop.time() < deadline:
        probe = await asyncio.create_subprocess_exec(
            *prefix, sys.executable, "-c", STATS, stats_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        answer, _ = await probe.communicate()
        if probe.returncode == 0:
            stats = json.loads(answer)
            if check(stats):
                break
        await asyncio.sleep(0.25)
    return stats


async def test_a_live_viewer_behind_nat_gets_chunks_from_a_viewer_behind_another_nat(
    tmp_path: Path,
) -> None:
    require(namespaces=True)
    stream = tmp_path / "stream.bin"
    stream.write_bytes(b"")
    report_a, report_b = tmp_path / "a.json", tmp_path / "b.json"
    with two_nats(source_rate="1mbit") as net:
        public, capped, behind_a, behind_b = net.prefixes()
        subprocess.run(
            [*capped, NFT, "-f", "-"], input=SOURCE_RULES, text=True, check=True, timeout=30
        )
        with stun_server(PUBLIC, 3478, tmp_path, prefix=public, probe_from=behind_a):
            async with Swarm(tmp_path) as swarm:
                url = await public_tracker(swarm, public)
                feeding = asyncio.ensure_future(_feed(stream))
                try:
                    source = await spawn_in(
                        swarm, capped, "source", "live", "--tracker", url, "--host", SOURCE,
                        "--input", str(stream), "--chunk-ms", "250", "--ppspp-port", "0",
                        "--key", str(tmp_path / "source.key"),
                    )  # fmt: skip
                    swarm_id = await source.first_stdout_line()
                    await source.wait_line(OFFERING)
                    viewers: list[Peer] = []
                    for prefix, host, name, report in (
                        (behind_b, CLIENT_B, "viewer-b", report_b),
                        (behind_a, CLIENT_A, "viewer-a", report_a),
                    ):
                        watcher = await spawn_in(
                            swarm, prefix, name, "watch", swarm_id, "--tracker", url,
                            "--host", host, "--transport", "ppspp", "--transport", "http",
                            "--stun", PUBLIC, "--player-port", "0",
                            "-o", str(tmp_path / f"{name}.out"), "--report", str(report),
                        )  # fmt: skip
                        seen = await watcher.wait_line(REFLEXIVE)
                        assert seen.group(1) == host and seen.group(3) != host, seen.group(0)
                        await watcher.wait_line(PUNCHING)
                        viewers.append(watcher)
                        player_url = await watcher.first_stdout_line()
                        if name == "viewer-b":
                            # B plays a few seconds of the stream first (8 chunks: 2 s).
                            await _until(prefix, player_url, lambda s: s["chunks_played"] >= 8)
                    # A plays chunks it got from a peer (B, as the report says below).
                    await _until(
                        prefix,
                        player_url,
                        lambda s: s["bytes_from_peers"] > 0 and s["chunks_played"] >= 4,
                    )
                    for process in viewers:
                        process.signal(signal.SIGINT)
                    for process in viewers:
                        assert await process.wait() == 0, process.output()
                    source.signal(signal.SIGINT)
                    await source.wait()
                finally:
                    feeding.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeding
    a, b = json.loads(report_a.read_text()), json.loads(report_b.read_text())
    for process in viewers:
        assert not any("Traceback" in line for line in process.stderr), process.output()
    (session,) = a["sessions"]
    b_id = b["peer_id"]
    # Viewer A reached viewer B over UDP only and got live chunks from it over PPSPP (the
    # source could not send it any).
    assert session["peers"][b_id]["transport"] == "PPSPP", session["peers"]
    givers = {peer for peer, nbytes in session["received_from"].items() if nbytes > 0}
    assert givers == {b_id}, (session["received_from"], viewers[1].output())
    assert b["ppspp_live"]["data_sent"] > 0, b["ppspp_live"]
    assert b["punch"]["punches"] > 0 and a["punch"]["punches"] > 0, (a["punch"], b["punch"])
    assert session["live"]["chunks_played"] > 0, session["live"]


async def test_stun_needs_the_live_ppspp_socket(tmp_path: Path) -> None:
    async with Swarm(tmp_path) as swarm:
        live = await swarm.spawn(
            "live", "live", "--tracker", "http://127.0.0.1:1", "--stun", "127.0.0.1"
        )
        watch = await swarm.spawn(
            "watch", "watch", "0" * 64, "--tracker", "http://127.0.0.1:1", "--stun", "127.0.0.1"
        )
        assert await live.wait() == 2 and "needs --ppspp-port" in live.output()
        assert await watch.wait() == 2 and "needs --transport ppspp" in watch.output()


async def test_a_configured_stun_is_left_unused_without_a_ppspp_socket(tmp_path: Path) -> None:
    # Every peer command takes --stun, so the [peer] table (PPSP_PEER_*) may carry it: a peer
    # command without a PPSPP socket leaves it unused instead of refusing to start.
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 1000)
    async with Swarm(tmp_path, env={"PPSP_PEER_STUN": "127.0.0.1:9"}) as swarm:
        await swarm.tracker()
        seeder, _ = await swarm.seed(source)
        assert seeder.alive, seeder.output()
