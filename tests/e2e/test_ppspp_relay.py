"""End to end: a seeder behind a NAT that maps each destination to a port of its own serves
a leecher behind another NAT through a TURN relay; without the relay, punching alone fails.

In network namespaces (:func:`~e2e.nat_helpers.two_nats` with ``symmetric_b``): the tracker
and coturn (STUN and TURN, long-term credentials) on the public segment, a public source
(its uplink capped), a seeder behind NAT B (``ppsp seed --ppspp-port --stun --turn``: it
registers its relayed address as a PROXY PeerAddress and permits the peers its FINDs list)
and a leecher behind NAT A (``ppsp get --transport ppspp --stun``, nothing relay-specific:
its handshakes go to every PPSPP address of the seeder and the relayed one answers).  Without
``--turn`` the seeder behind NAT B serves nothing: the mapping its punches leave by is not the
reflexive address STUN saw and the leecher sends to.  A TURN server that refuses the
credentials is one warning line, and the seeder serves without a relay.

A downloading peer does the same (``ppsp get --transport ppspp --stun --turn``): behind
symmetric NAT B it serves what it holds through its relay to a leecher behind symmetric NAT A
(neither can punch), once the source has slowed down to a trickle.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from e2e.nat_helpers import (
    CLIENT_A,
    CLIENT_B,
    PUBLIC,
    PUNCHING,
    REFLEXIVE,
    TURN_PASSWORD,
    TURN_USER,
    free_udp_port,
    public_seed,
    public_tracker,
    require,
    set_source_rate,
    spawn_in,
    stun_server,
    two_nats,
)
from e2e.swarm_helpers import COMPLETE, OFFERING, SERVING, Swarm, content, ppspp_listing

pytestmark = pytest.mark.e2e

RELAYED = re.compile(r"PPSPP relayed at udp (\S+):(\d+) \(TURN ")
TURN_LOOPBACK = "127.0.74.75"


@pytest.mark.parametrize("relay", [True, False], ids=["turn", "punching-only"])
async def test_a_seeder_behind_a_symmetric_nat_serves_through_its_turn_relay(
    tmp_path: Path, relay: bool
) -> None:
    require(namespaces=True)
    source, output = tmp_path / "source.bin", tmp_path / "copy.bin"
    got, natted = tmp_path / "get.json", tmp_path / "natted.json"
    # Long enough, at the source's capped rate, for the leecher to try the seeder behind NAT B.
    source.write_bytes(content((4 if relay else 3) << 20))
    turn_options = ["--turn", PUBLIC, "--turn-user", TURN_USER] if relay else []
    with two_nats(source_rate="4mbit", symmetric_b=True) as net:
        public, capped, behind_a, behind_b = net.prefixes()
        with stun_server(
            PUBLIC, 3478, tmp_path, prefix=public, turn=True, probe_from=behind_a, verbose=True
        ):
            async with Swarm(tmp_path) as swarm:
                # The password comes from the environment, as a user's should.
                swarm.env["PPSP_SEED_TURN_PASSWORD"] = TURN_PASSWORD
                url = await public_tracker(swarm, public)
                _, swarm_id = await public_seed(swarm, capped, source, url)
                seeder = await spawn_in(
                    swarm, behind_b, "natted", "seed", str(source), "--tracker", url,
                    "--host", CLIENT_B, "--ppspp-port", "0", "--stun", PUBLIC,
                    *turn_options, "--report", str(natted),
                )  # fmt: skip
                relayed = await seeder.wait_line(RELAYED) if relay else None
                await seeder.wait_line(PUNCHING)
                await seeder.wait_line(OFFERING)
                getter = await spawn_in(
                    swarm, behind_a, "get", "get", swarm_id, "--tracker", url,
                    "-o", str(output), "--host", CLIENT_A, "--transport", "ppspp",
                    "--stun", PUBLIC, "--report", str(got),
                )  # fmt: skip
                await getter.wait_line(REFLEXIVE)
                await getter.wait_line(COMPLETE, timeout=60)
                assert await getter.wait() == 0, getter.output()
                listing = await ppspp_listing(url, swarm_id, public)
                seeder.signal(signal.SIGINT)
                assert await seeder.wait() == 0, seeder.output()
        turn_log = (tmp_path / "turn-3478.log").read_text(errors="replace")
    assert output.read_bytes() == source.read_bytes()
    leecher, behind_nat = json.loads(got.read_text()), json.loads(natted.read_text())
    (session,) = leecher["sessions"]
    natted_id = behind_nat["peer_id"]
    assert "password" not in seeder.output().lower(), seeder.output()
    assert TURN_PASSWORD not in seeder.output()
    if not relay:
        # Punching alone does not cross NAT B: nothing from the seeder behind it.
        assert session["received_from"].get(natted_id, 0) == 0, session["received_from"]
        assert behind_nat["ppspp"].get("data_sent", 0) == 0, behind_nat["ppspp"]
        assert "relay" not in behind_nat
        # The leecher knew of it and never connected (its HTTP address is private and its
        # NAT takes no punch; a peer behind NAT is not blamed for the private address).
        tried = session["peers"][natted_id]
        assert not tried["connected"] and tried["transport"] is None, tried
        return
    assert relayed is not None and relayed.group(1) == PUBLIC
    relay_address = [PUBLIC, int(relayed.group(2)), "PROXY"]
    # Registered after the HOST and REFLEXIVE addresses; the HOST one, on the private network
    # behind NAT B, is another host's than the tracker sees: not listed (docs/PROTOCOL.md,
    # "Whose addresses a peer list carries").
    assert [a[2] for a in listing[natted_id]] == ["REFLEXIVE", "PROXY"], listing
    assert listing[natted_id][-1] == relay_address, listing
    # The leecher reached the seeder behind NAT B at its relayed address, and got chunks.
    peer = session["peers"][natted_id]
    assert peer["transport"] == "PPSPP" and peer["relayed"] is True, peer
    assert peer["address"] == f"{PUBLIC}:{relayed.group(2)}", peer
    assert session["received_from"][natted_id] > 0, session["received_from"]
    assert behind_nat["relay"]["ppspp"]["data_sent"] > 0, behind_nat["relay"]
    assert behind_nat["relay"]["permitted"] >= 1, behind_nat["relay"]
    # Released on exit: coturn saw the allocation's Refresh with lifetime 0.
    assert re.search(r"refreshed, .*username=<ppsp>, lifetime=0\b", turn_log), turn_log[-3000:]


async def test_a_downloading_peer_behind_a_symmetric_nat_serves_through_its_turn_relay(
    tmp_path: Path,
) -> None:
    require(namespaces=True)
    source, relayer_copy, output = tmp_path / "source.bin", tmp_path / "b.bin", tmp_path / "a.bin"
    got, natted = tmp_path / "get.json", tmp_path / "natted.json"
    source.write_bytes(content(2 << 20))
    with two_nats(source_rate="80mbit", symmetric_a=True, symmetric_b=True) as net:
        public, capped, behind_a, behind_b = net.prefixes()
        with stun_server(PUBLIC, 3478, tmp_path, prefix=public, turn=True, probe_from=behind_a):
            async with Swarm(tmp_path) as swarm:
                swarm.env["PPSP_GET_TURN_PASSWORD"] = TURN_PASSWORD
                url = await public_tracker(swarm, public)
                # Small chunks: A's first one, from the slowed source, names the PPSPP root
                # soon (a peer reached over UDP only is asked for that root).
                _, swarm_id = await public_seed(swarm, capped, source, url, "--chunk-size", "16384")
                # B downloads everything from the source, and stays, serving it.
                relayer = await spawn_in(
                    swarm, behind_b, "natted", "get", swarm_id, "--tracker", url,
                    "-o", str(relayer_copy), "--host", CLIENT_B, "--transport", "ppspp",
                    "--stun", PUBLIC, "--turn", PUBLIC, "--turn-user", TURN_USER,
                    "--seed-after", "--report", str(natted),
                )  # fmt: skip
                relayed = await relayer.wait_line(RELAYED)
                await relayer.wait_line(SERVING)
                await relayer.wait_line(COMPLETE, timeout=30)
                # The source a trickle now: A gets the description from it, chunks from B.
                set_source_rate(net, "400kbit")
                getter = await spawn_in(
                    swarm, behind_a, "get", "get", swarm_id, "--tracker", url,
                    "-o", str(output), "--host", CLIENT_A, "--transport", "ppspp",
                    "--stun", PUBLIC, "--report", str(got),
                )  # fmt: skip
                await getter.wait_line(COMPLETE, timeout=60)
                assert await getter.wait() == 0, getter.output()
                listing = await ppspp_listing(url, swarm_id, public)
                relayer.signal(signal.SIGINT)
                assert await relayer.wait() == 0, relayer.output()
    assert output.read_bytes() == source.read_bytes()
    leecher, behind_nat = json.loads(got.read_text()), json.loads(natted.read_text())
    (session,) = leecher["sessions"]
    natted_id = behind_nat["peer_id"]
    assert TURN_PASSWORD not in relayer.output()
    assert relayed.group(1) == PUBLIC
    # The private HOST address is not listed (as above).
    assert [a[2] for a in listing[natted_id]] == ["REFLEXIVE", "PROXY"], listing
    assert listing[natted_id][-1] == [PUBLIC, int(relayed.group(2)), "PROXY"], listing
    # A reached B only at its relayed address, and got chunks there.
    peer = session["peers"][natted_id]
    assert peer["transport"] == "PPSPP" and peer["relayed"] is True, peer
    assert session["received_from"][natted_id] > 0, session["received_from"]
    assert behind_nat["relay"]["ppspp"]["data_sent"] > 0, behind_nat["relay"]
    assert behind_nat["relay"]["permitted"] >= 1, behind_nat["relay"]


async def test_a_turn_server_refusing_the_credentials_is_one_warning(tmp_path: Path) -> None:
    require()
    source = tmp_path / "source.bin"
    source.write_bytes(content(64 << 10))
    port = free_udp_port(TURN_LOOPBACK)
    with stun_server(TURN_LOOPBACK, port, tmp_path, turn=True):
        async with Swarm(tmp_path) as swarm:
            swarm.env["PPSP_SEED_TURN_PASSWORD"] = "wrong-secret"
            await swarm.tracker()
            seeder, _ = await swarm.seed(
                source, "--ppspp-port", "0", "--turn", f"{TURN_LOOPBACK}:{port}",
                "--turn-user", TURN_USER,
            )  # fmt: skip
            # The seeder goes on without a relay: it serves over PPSPP on its socket.
            await seeder.wait_line(OFFERING)
            seeder.signal(signal.SIGINT)
            assert await seeder.wait() == 0, seeder.output()
    warnings = [line for line in seeder.stderr if "TURN" in line]
    assert len(warnings) == 1 and "no TURN relay" in warnings[0], seeder.output()
    assert "401" in warnings[0], warnings
    assert "wrong-secret" not in seeder.output()
