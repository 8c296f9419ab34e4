"""What address a peer advertises: never a wildcard; ``--advertise`` names it outright.

Peers run on distinct loopback host addresses (127.0.0.0/8), as peers on distinct machines do.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from e2e.swarm_helpers import Swarm, content, finish
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.tracker import PeerInfo, PeerMode


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


async def listed_peers(tracker_url: str, swarm_id: str) -> list[PeerInfo]:
    """The swarm's peer list as a new peer gets it from the tracker."""
    client = TrackerClient(tracker_url, secrets.token_hex(8))
    try:
        return await client.join(swarm_id, PeerMode.LEECH)
    finally:
        await client.close()


def host_addresses(peers: list[PeerInfo]) -> set[tuple[str, int]]:
    return {
        (a.ip, a.port)
        for peer in peers
        for a in peer.addresses
        if a.type is None or a.type.value != "REFLEXIVE"
    }


async def test_peer_bound_to_a_wildcard_advertises_a_reachable_address(
    swarm: Swarm, tmp_path: Path
) -> None:
    data = content(500_000)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    await swarm.tracker()
    seeder, swarm_id = await swarm.seed(source, "--host", "0.0.0.0")
    listed = host_addresses(await listed_peers(swarm.tracker_url, swarm_id))
    assert len(listed) == 1, listed
    ((ip, port),) = listed
    assert ip == "127.0.0.1"  # the local address of the route to the tracker
    assert any(f"at http://127.0.0.1:{port}" in line for line in seeder.stderr), seeder.output()
    out = tmp_path / "out.bin"
    await finish(await swarm.get(swarm_id, out, "--host", "127.0.0.3"))
    assert out.read_bytes() == data


async def test_advertise_names_the_address_others_use(swarm: Swarm, tmp_path: Path) -> None:
    data = content(500_000)
    source = tmp_path / "movie.bin"
    source.write_bytes(data)
    await swarm.tracker()
    # Names a port: listed as given (whether it is forwarded is the operator's business).
    _, swarm_id = await swarm.seed(
        source, "--host", "127.0.0.8", "--advertise", "127.0.0.8:9", name="forwarded"
    )
    # Serves on every address and tells the others 127.0.0.7, but reaches the tracker from
    # 127.0.0.1: another host's address than the one it is seen at is never listed (it could
    # aim the swarm at anyone: docs/PROTOCOL.md, "Whose addresses a peer list carries").
    await swarm.seed(source, "--host", "0.0.0.0", "--advertise", "127.0.0.7", name="elsewhere")
    await swarm.seed(source, "--host", "127.0.0.9", name="plain")
    listed = host_addresses(await listed_peers(swarm.tracker_url, swarm_id))
    assert {ip for ip, _ in listed} == {"127.0.0.8", "127.0.0.9"}
    assert ("127.0.0.8", 9) in listed
    out = tmp_path / "out.bin"
    await finish(await swarm.get(swarm_id, out, "--host", "127.0.0.3"))
    assert out.read_bytes() == data


async def test_peer_on_one_address_talks_from_it(swarm: Swarm, tmp_path: Path) -> None:
    # A host with several addresses: the peer serving on 127.0.0.5 reaches the tracker (and
    # other peers) from 127.0.0.5 too, so the address the tracker observes is the one it lists.
    source = tmp_path / "movie.bin"
    source.write_bytes(content(300_000))
    await swarm.tracker()
    _, swarm_id = await swarm.seed(source, "--host", "127.0.0.5")
    (seeder,) = await listed_peers(swarm.tracker_url, swarm_id)
    assert {a.ip for a in seeder.addresses} == {"127.0.0.5"}, seeder.addresses
