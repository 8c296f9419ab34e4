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

import json
import signal
from pathlib import Path

import pytest

from e2e.nat_helpers import (
    CLIENT_A,
    CLIENT_B,
    PUBLIC,
    PUNCHING,
    REFLEXIVE,
    ROUTER_A_PUBLIC,
    public_seed,
    public_tracker,
    require,
    spawn_in,
    stun_server,
    two_nats,
)
from e2e.swarm_helpers import COMPLETE, OFFERING, Swarm, content, ppspp_listing

pytestmark = pytest.mark.e2e


async def test_a_leecher_behind_nat_gets_chunks_from_a_seeder_behind_another_nat(
    tmp_path: Path,
) -> None:
    require(namespaces=True)
    source, output = tmp_path / "source.bin", tmp_path / "copy.bin"
    got, natted = tmp_path / "get.json", tmp_path / "natted.json"
    source.write_bytes(content(4 << 20))
    with two_nats(source_rate="4mbit") as net:
        public, capped, behind_a, behind_b = net.prefixes()
        with stun_server(PUBLIC, 3478, tmp_path, prefix=public, probe_from=behind_a):
            async with Swarm(tmp_path) as swarm:
                url = await public_tracker(swarm, public)
                _, swarm_id = await public_seed(swarm, capped, source, url)
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
    # Its HOST address, behind NAT A, is not listed (another host's than the tracker sees:
    # docs/PROTOCOL.md, "Whose addresses a peer list carries"); the NAT's mapping of it is.
    assert listing[leecher["peer_id"]] == [
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
