"""Tracker, seeder and two leechers on four hosts of their own: nothing assumes loopback.

Each process runs in a network namespace of its own (tests/e2e/netns_helpers.py): one
interface on a shared bridge, an address of 10.231.0.0/24, and its loopback interface down.
The tracker listens on its host's address, the seeder and one leecher serve on theirs, the
other leecher serves on the wildcard address and so must find the address to advertise from
its route to the tracker.  Both downloads must complete byte-identical, and the tracker must
hold every peer at its own address.  Needs root (the test machine and CI run as root): skipped
otherwise, and where namespaces cannot be made, except in CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.netns_helpers import Host, can_make_namespaces, lan, spawn
from e2e.swarm_helpers import CHUNK_SIZE, LISTENING, Peer, content, finish
from e2e.tracker_probe import Seen

pytestmark = pytest.mark.e2e

PROBE = Path(__file__).with_name("tracker_probe.py")
PPSP = (sys.executable, "-m", "ppsp")


@pytest.fixture
def hosts() -> Iterator[dict[str, Host]]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    reason = can_make_namespaces()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"cannot make network namespaces: {reason}")
        pytest.skip(f"cannot make network namespaces: {reason}")
    with lan(["tracker", "seeder", "leecher1", "leecher2", "observer"]) as made:
        yield made


async def test_a_swarm_across_four_hosts(hosts: dict[str, Host], tmp_path: Path) -> None:
    data = content(8 * CHUNK_SIZE + 99)
    (tmp_path / "movie.bin").write_bytes(data)
    peers: list[Peer] = []

    async def start(host: str, *args: str) -> Peer:
        peer = await spawn(hosts[host], host, [*PPSP, *args], tmp_path)
        peers.append(peer)
        return peer

    try:
        tracker = await start(
            "tracker", "tracker", "--host", hosts["tracker"].address, "--port", "0",
            "--log-level", "warning",
        )  # fmt: skip
        url = (await tracker.wait_line(LISTENING, stream="stdout")).group(1)
        assert url.startswith(f"http://{hosts['tracker'].address}:"), tracker.output()

        seeder = await start(
            "seeder", "seed", str(tmp_path / "movie.bin"), "--tracker", url,
            "--host", hosts["seeder"].address, "--chunk-size", str(CHUNK_SIZE),
        )  # fmt: skip
        swarm_id = await seeder.first_stdout_line()
        assert re.fullmatch(r"[0-9a-f]{64}", swarm_id), seeder.output()
        await seeder.wait_line(r"^seeding ")

        # leecher1 serves on its address; leecher2 on every address (0.0.0.0), advertising the
        # local address of its route to the tracker.  Both keep serving once complete, so
        # that the tracker still lists them when asked below.
        leechers: list[Peer] = []
        for name, host in (("leecher1", hosts["leecher1"].address), ("leecher2", "0.0.0.0")):
            output = str(tmp_path / f"{name}.bin")
            args = ["get", swarm_id, "--tracker", url, "-o", output, "--host", host, "--seed-after"]
            leechers.append(await start(name, *args))
        for leecher in leechers:
            await leecher.wait_line(r": complete, \d+ bytes verified", timeout=60)
        for name in ("leecher1", "leecher2"):
            assert (tmp_path / f"{name}.bin").read_bytes() == data, name

        # The tracker, asked from a fifth host, holds each peer at its own host's address,
        # both the one it advertised and the one it was seen at.
        observer = await spawn(
            hosts["observer"], "observer", [sys.executable, str(PROBE), url, swarm_id], tmp_path
        )
        peers.append(observer)
        assert await observer.wait(30) == 0, observer.output()
        seen = Seen.from_json(observer.stdout[-1])
        members = {hosts[name].address for name in ("seeder", "leecher1", "leecher2")}
        assert seen.requester == hosts["observer"].address, seen
        assert {ip for ips in seen.reflexive.values() for ip in ips} == members, seen
        assert {ip for ips in seen.advertised.values() for ip in ips} == members, seen

        for leecher in leechers:
            leecher.signal(2)
            await finish(leecher)
        assert tracker.alive and seeder.alive, tracker.output() + seeder.output()
        for peer in (tracker, seeder, *leechers):
            assert not any("Traceback" in line for line in peer.stderr), peer.output()
    finally:
        await asyncio.gather(*(peer.kill() for peer in peers), return_exceptions=True)
