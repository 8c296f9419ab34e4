"""End to end: a seeder's PPSPP socket, its reflexive address (STUN on that very socket, from
a real coturn) and its registration at a real tracker.

On loopback nothing translates: the socket registers its HOST address only.  Behind a
masquerading NAT in network namespaces (:func:`~e2e.nat_helpers.natted`), the REFLEXIVE
address it registers is the router's public address, and the tracker's FIND answers carry
both, with ``peerProtocol`` ``PPSPP``, in XML and JSON alike.  A downloading peer behind
the NAT (``ppsp get --transport ppspp --stun``) learns the router's address for the one socket
its PPSPP channels use, and downloads over PPSPP from a public seeder.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from e2e.nat_helpers import (
    CLIENT,
    PUBLIC,
    REFLEXIVE,
    ROUTER_PUBLIC,
    free_udp_port,
    natted,
    require,
    spawn_in,
    stun_server,
)
from e2e.swarm_helpers import LISTENING, Swarm, content, finish

pytestmark = pytest.mark.e2e

STUN_HOST = "127.0.74.1"
SEED_HOST = "127.0.74.2"
SERVING = re.compile(r"serving over PPSPP at udp (\S+):(\d+)")
Address = list[Any]
"""A listed address as the probe prints it: ``[ip, port, type, peer_protocol]``."""

PROBE = """\
import asyncio, json, secrets, sys
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.tracker import Encoding, PeerMode

async def main(url, swarm, encoding):
    async with TrackerClient(url, secrets.token_hex(16), encoding=Encoding(encoding)) as client:
        peers = await client.join(swarm, PeerMode.LEECH)
    print(json.dumps([[[a.ip, a.port, a.type.value if a.type else None, a.peer_protocol]
                       for a in peer.addresses] for peer in peers]))

asyncio.run(main(*sys.argv[1:]))
"""
"""JOIN a swarm as LEECH (a new peer each time) and print each listed peer's addresses."""


async def listed(
    url: str, swarm_id: str, encoding: str, prefix: Sequence[str] = ()
) -> list[Address]:
    """The addresses the tracker lists for the one peer of ``swarm_id`` with a PPSPP
    address (the seeder; earlier probes are listed too): ``[ip, port, type, peer_protocol]``
    each."""
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-c", PROBE, url, swarm_id, encoding,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    peers: list[list[Address]] = json.loads(out)
    (seeder,) = (peer for peer in peers if any(a[3] == "PPSPP" for a in peer))
    return seeder


def ppspp_addresses(addresses: list[Address]) -> set[tuple[str, int, str]]:
    """The PPSPP addresses among ``addresses``, as (ip, port, type)."""
    return {(ip, port, kind) for ip, port, kind, protocol in addresses if protocol == "PPSPP"}


async def test_a_seeder_registers_its_ppspp_socket(tmp_path: Path) -> None:
    require()
    source, output, report = tmp_path / "source.bin", tmp_path / "copy.bin", tmp_path / "seed.json"
    source.write_bytes(content(100_000))
    port = free_udp_port(STUN_HOST)
    with stun_server(STUN_HOST, port, tmp_path):
        async with Swarm(tmp_path) as swarm:
            await swarm.tracker()
            seeder, swarm_id = await swarm.seed(
                source, "--host", SEED_HOST, "--ppspp-port", "0", "--stun", f"{STUN_HOST}:{port}",
                "--report", str(report),
            )  # fmt: skip
            serving = await seeder.wait_line(SERVING)
            udp_port = int(serving.group(2))
            # Nothing translates on loopback: the reflexive address is the socket's own.
            seen = await seeder.wait_line(REFLEXIVE)
            assert seen.groups() == (SEED_HOST, str(udp_port), SEED_HOST, str(udp_port))
            for encoding in ("xml", "json"):
                addresses = await listed(swarm.tracker_url, swarm_id, encoding)
                assert ppspp_addresses(addresses) == {(SEED_HOST, udp_port, "HOST")}, addresses
                # The HTTP address is still the first one, as before.
                assert addresses[0][3] == "PPSP-PP/0.1", addresses
            # The keeper's Binding from the serving socket was answered (the STUN answer taken
            # off that socket before the PPSPP engine), and PPSPP still serves on it.
            await seeder.wait_line(r"ppspp_nat: PPSPP socket .* has reflexive address")
            getter = await swarm.get(
                swarm_id, output, "--host", "127.0.74.3", "--transport", "ppspp"
            )  # fmt: skip
            await finish(getter)
            assert output.read_bytes() == source.read_bytes()
            seeder.signal(signal.SIGINT)
            assert await seeder.wait() == 0, seeder.output()
    document = json.loads(report.read_text())
    assert document["stun"]["answers"] >= 1, document["stun"]
    assert document["stun"]["reflexive"] == f"{SEED_HOST}:{udp_port}"
    assert document["ppspp"]["data_sent"] > 0


async def test_without_a_stun_answer_the_seeder_serves_anyway(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(content(50_000))
    port = free_udp_port(STUN_HOST)  # nobody answers there
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder, swarm_id = await swarm.seed(
            source, "--host", SEED_HOST, "--ppspp-port", "0", "--stun", f"{STUN_HOST}:{port}"
        )
        await seeder.wait_line(r"no reflexive address for udp .*no STUN answer")
        udp_port = int((await seeder.wait_line(SERVING)).group(2))
        addresses = await listed(swarm.tracker_url, swarm_id, "json")
        assert ppspp_addresses(addresses) == {(SEED_HOST, udp_port, "HOST")}, addresses


async def test_stun_needs_a_ppspp_socket(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    async with Swarm(tmp_path) as swarm:
        peer = await swarm.spawn(
            "seed", "seed", str(source), "--tracker", "http://127.0.0.1:1", "--stun", STUN_HOST
        )
        assert await peer.wait() == 2
        assert "needs --ppspp-port" in peer.output()


async def test_behind_a_nat_the_seeder_registers_the_nat_s_address(tmp_path: Path) -> None:
    require(namespaces=True)
    source = tmp_path / "source.bin"
    source.write_bytes(content(50_000))
    with natted() as net:
        public, client = net.run(net.public, []), net.run(net.client, [])
        with stun_server(PUBLIC, 3478, tmp_path, prefix=public, probe_from=client):
            async with Swarm(tmp_path) as swarm:
                tracker = await spawn_in(
                    swarm, public, "tracker", "tracker", "--host", PUBLIC, "--port", "0"
                )
                url = (await tracker.wait_line(LISTENING, stream="stdout")).group(1)
                seeder = await spawn_in(
                    swarm, client, "seeder", "seed", str(source), "--tracker", url,
                    "--host", CLIENT, "--ppspp-port", "40500", "--stun", PUBLIC,
                )  # fmt: skip
                seen = await seeder.wait_line(REFLEXIVE)
                swarm_id = await seeder.first_stdout_line()
                await seeder.wait_line(SERVING)
                assert seen.group(1, 2) == (CLIENT, "40500")
                assert seen.group(3) == ROUTER_PUBLIC, seeder.output()
                mapped = int(seen.group(4))
                for encoding in ("xml", "json"):
                    addresses = await listed(url, swarm_id, encoding, prefix=public)
                    # The HOST address, on the private network behind the NAT, is another
                    # host's than the tracker sees: not listed (docs/PROTOCOL.md, "Whose
                    # addresses a peer list carries"); the NAT's mapping of it is.
                    assert ppspp_addresses(addresses) == {
                        (ROUTER_PUBLIC, mapped, "REFLEXIVE"),
                    }, addresses


async def test_a_ppspp_port_in_use_fails_before_joining(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(content(10_000))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((SEED_HOST, 0))
        port = taken.getsockname()[1]
        async with Swarm(tmp_path) as swarm:
            await swarm.tracker()
            peer = await swarm.spawn(
                "seed", "seed", str(source), "--tracker", swarm.tracker_url,
                "--host", SEED_HOST, "--ppspp-port", str(port),
            )  # fmt: skip
            assert await peer.wait() == 1
    assert peer.stdout == []  # no swarm ID: the socket is bound before the JOIN
    assert f"over PPSPP on udp port {port}: Address already in use" in peer.output()


async def test_behind_a_nat_a_leecher_learns_its_ppspp_socket_s_address(tmp_path: Path) -> None:
    # `ppsp get --transport ppspp --stun`: the one socket its PPSPP channels use asks coturn
    # through the NAT, learns the router's address, and downloads from a public seeder on it.
    require(namespaces=True)
    source, output, report = tmp_path / "source.bin", tmp_path / "copy.bin", tmp_path / "get.json"
    source.write_bytes(content(200_000))
    with natted() as net:
        public, client = net.run(net.public, []), net.run(net.client, [])
        with stun_server(PUBLIC, 3478, tmp_path, prefix=public, probe_from=client):
            async with Swarm(tmp_path) as swarm:
                tracker = await spawn_in(
                    swarm, public, "tracker", "tracker", "--host", PUBLIC, "--port", "0"
                )
                url = (await tracker.wait_line(LISTENING, stream="stdout")).group(1)
                seeder = await spawn_in(
                    swarm, public, "seeder", "seed", str(source), "--tracker", url,
                    "--host", PUBLIC, "--ppspp-port", "0",
                )  # fmt: skip
                swarm_id = await seeder.first_stdout_line()
                await seeder.wait_line(SERVING)
                getter = await spawn_in(
                    swarm, client, "get", "get", swarm_id, "--tracker", url, "-o", str(output),
                    "--host", CLIENT, "--transport", "ppspp", "--stun", PUBLIC,
                    "--report", str(report),
                )  # fmt: skip
                seen = await getter.wait_line(REFLEXIVE)
                await finish(getter)
                assert seen.group(1) == CLIENT
                assert seen.group(3) == ROUTER_PUBLIC, getter.output()
    assert output.read_bytes() == source.read_bytes()
    document = json.loads(report.read_text())
    assert document["stun"]["reflexive"] == f"{ROUTER_PUBLIC}:{seen.group(4)}", document["stun"]
    (session,) = document["sessions"]
    assert [peer["transport"] for peer in session["peers"].values()] == ["PPSPP"], session


async def test_stun_of_a_download_needs_ppspp(tmp_path: Path) -> None:
    async with Swarm(tmp_path) as swarm:
        peer = await swarm.spawn(
            "get", "get", "0" * 64, "--tracker", "http://127.0.0.1:1", "-o",
            str(tmp_path / "out"), "--stun", STUN_HOST,
        )  # fmt: skip
        assert await peer.wait() == 2
        assert "needs --transport ppspp" in peer.output()
