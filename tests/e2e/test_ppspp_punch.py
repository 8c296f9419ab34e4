"""End to end: two peers, each behind its own NAT, exchange chunks over PPSPP by hole punching.

In network namespaces (:func:`~e2e.nat_helpers.two_nats`): the tracker and coturn (STUN) on
the public segment, a public source (HTTP and PPSPP, its uplink capped so that it cannot serve
everything quickly), a seeder behind NAT B (``ppsp seed --ppspp-port --stun``: reachable over
UDP only, through the hole it punches towards the peers the tracker lists) and a leecher
behind NAT A (``ppsp get --transport ppspp --stun``: it registers its PPSPP addresses, learns
the content's PPSPP root from the public source and sends its handshakes to every PPSPP
address of the seeder behind NAT B until one answers).  The seeder behind NAT B serves part of
the download.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from e2e.nat_helpers import (
    CLIENT_A,
    CLIENT_B,
    PUBLIC,
    PUNCHING,
    REFLEXIVE,
    ROUTER_A_PUBLIC,
    SOURCE,
    require,
    spawn_in,
    stun_server,
    two_nats,
)
from e2e.swarm_helpers import COMPLETE, LISTENING, Swarm, content

pytestmark = pytest.mark.e2e

OFFERING = re.compile(r"offering PPSPP to the swarm's peers at udp")

PROBE = """\
import asyncio, json, secrets, sys
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.tracker import PeerMode

async def main(url, swarm):
    async with TrackerClient(url, secrets.token_hex(16)) as client:
        peers = await client.join(swarm, PeerMode.LEECH)
    print(json.dumps({peer.peer_id: [[a.ip, a.port, a.type.value if a.type else None]
                                     for a in peer.addresses if a.peer_protocol == "PPSPP"]
                      for peer in peers}))

asyncio.run(main(*sys.argv[1:]))
"""
"""JOIN a swarm (a new peer each time) and print each listed peer's PPSPP addresses."""


async def ppspp_listing(
    url: str, swarm_id: str, prefix: Sequence[str]
) -> dict[str, list[list[object]]]:
    """The PPSPP addresses the tracker lists for each peer of ``swarm_id``: ``[ip, port,
    type]`` each, by PeerID."""
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-c", PROBE, url, swarm_id,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    listing: dict[str, list[list[object]]] = json.loads(out)
    return listing


async def test_a_leecher_behind_nat_gets_chunks_from_a_seeder_behind_another_nat(
    tmp_path: Path,
) -> None:
    require(namespaces=True)
    source, output = tmp_path / "source.bin", tmp_path / "copy.bin"
    got, natted = tmp_path / "get.json", tmp_path / "natted.json"
    source.write_bytes(content(4 << 20))
    with two_nats(source_rate="4mbit") as net:
        public, capped = net.run(net.public, []), net.run(net.source, [])
        behind_a, behind_b = net.run(net.client_a, []), net.run(net.client_b, [])
        with stun_server(PUBLIC, 3478, tmp_path, prefix=public, probe_from=behind_a):
            async with Swarm(tmp_path) as swarm:
                tracker = await spawn_in(
                    swarm, public, "tracker", "tracker", "--host", PUBLIC, "--port", "0"
                )
                url = (await tracker.wait_line(LISTENING, stream="stdout")).group(1)
                first = await spawn_in(
                    swarm, capped, "source", "seed", str(source), "--tracker", url,
                    "--host", SOURCE, "--ppspp-port", "0",
                )  # fmt: skip
                swarm_id = await first.first_stdout_line()
                await first.wait_line(OFFERING)
                seeder = await spawn_in(
                    swarm, behind_b, "natted", "seed", str(source), "--tracker", url,
                    "--host", CLIENT_B, "--ppspp-port", "0", "--stun", PUBLIC,
                    "--report", str(natted),
                )  # fmt: skip
                await seeder.wait_line(PUNCHING)
                await seeder.wait_line(OFFERING)
                getter = await spawn_in(
                    swarm, behind_a, "get", "get", swarm_id, "--tracker", url,
                    "-o", str(output), "--host", CLIENT_A, "--transport", "ppspp",
                    "--stun", PUBLIC, "--report", str(got), "--seed-after",
                )  # fmt: skip
                seen = await getter.wait_line(REFLEXIVE)
                await getter.wait_line(COMPLETE, timeout=60)
                # The leecher registered its PPSPP socket: HOST and the NAT's mapping of it.
                listing = await ppspp_listing(url, swarm_id, public)
                for process in (getter, seeder):
                    process.signal(signal.SIGINT)
                    assert await process.wait() == 0, process.output()
    assert output.read_bytes() == source.read_bytes()
    assert seen.group(1) == CLIENT_A
    leecher, behind_nat = json.loads(got.read_text()), json.loads(natted.read_text())
    assert listing[leecher["peer_id"]] == [
        [CLIENT_A, int(seen.group(2)), "HOST"],
        [ROUTER_A_PUBLIC, int(seen.group(4)), "REFLEXIVE"],
    ], listing
    assert not any("Traceback" in line for line in getter.stderr), getter.output()
    (session,) = leecher["sessions"]
    natted_id = behind_nat["peer_id"]
    # The seeder behind NAT B served chunks to the leecher behind NAT A, over PPSPP.
    assert session["peers"][natted_id]["transport"] == "PPSPP", session["peers"]
    assert session["received_from"][natted_id] > 0, session["received_from"]
    assert behind_nat["ppspp"]["data_sent"] > 0, behind_nat["ppspp"]
    assert behind_nat["punch"]["punches"] > 0, behind_nat["punch"]
