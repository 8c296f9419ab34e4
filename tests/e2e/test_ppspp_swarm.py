"""End to end: PPSPP (RFC 7574 over UDP) as a negotiated chunk transport in a swarm.

Real processes on distinct loopback addresses: a tracker, ``ppsp seed --ppspp-port 0`` (which
offers PPSPP beside HTTP in TRANSPORT_NEGOTIATION), and ``ppsp get --transport ppspp``, which
asks for PPSPP only: its chunks come over UDP channels, each assembled from the small PPSPP
chunks covering it, verified up to the root the seeder offers, then against the description.
The content is cut in the default 256 KiB chunks (which no datagram holds).
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from e2e.swarm_helpers import Peer, Swarm, chunk_count, content, finish
from ppsp.peer.net.ppspp_transport import PPSPP_CHUNK_SIZE

SIZE = 3 << 20
OFFERING = re.compile(r"offering PPSPP to the swarm's peers at udp (\S+):(\d+)")


async def _seed(swarm: Swarm, source: Path, host: str, report: Path, *args: str) -> Peer:
    """A seeder serving PPSPP beside HTTP on ``host``, once it offers PPSPP."""
    seeder, _ = await swarm.seed(
        source, "--host", host, "--ppspp-port", "0", "--report", str(report), *args,
        name=f"seeder {host}",
    )  # fmt: skip
    match = await seeder.wait_line(OFFERING)
    assert match.group(1) == host, seeder.output()
    assert f"{PPSPP_CHUNK_SIZE}-byte chunks" in match.string, seeder.output()
    return seeder


async def _stop(peer: Peer) -> None:
    peer.signal(signal.SIGINT)
    assert await peer.wait() == 0, peer.output()


def _session(report: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(report.read_text())
    (session,) = document["sessions"]
    assert isinstance(session, dict)
    return session


async def test_a_download_over_ppspp_only(tmp_path: Path) -> None:
    source, output = tmp_path / "source.bin", tmp_path / "copy.bin"
    data = content(SIZE)
    source.write_bytes(data)
    seed_report, get_report = tmp_path / "seed.json", tmp_path / "get.json"
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder = await _seed(swarm, source, "127.0.41.1", seed_report)
        swarm_id = seeder.stdout[0]
        getter = await swarm.get(
            swarm_id, output, "--host", "127.0.41.2", "--transport", "ppspp",
            "--report", str(get_report),
        )  # fmt: skip
        await finish(getter)
        assert output.read_bytes() == data
        # Without --transport a download asks for HTTP only, as before.
        plain = await swarm.get(
            swarm_id, tmp_path / "plain.bin", "--host", "127.0.41.3",
            "--report", str(tmp_path / "plain.json"),
        )  # fmt: skip
        await finish(plain)
        await _stop(seeder)
    session = _session(get_report)
    (seeder_id,) = session["peers"]
    assert session["peers"][seeder_id]["transport"] == "PPSPP"
    assert session["received_from"][seeder_id] == SIZE
    plain_peers = _session(tmp_path / "plain.json")["peers"]
    assert plain_peers[seeder_id]["transport"] == "HTTP"
    # The seeder's PPSPP engine sent every PPSPP chunk (again only for DATA lost on the way).
    stats = json.loads(seed_report.read_text())["ppspp"]
    assert stats["data_sent"] >= chunk_count(data, PPSPP_CHUNK_SIZE), stats
    assert stats["channels_opened"] >= 1
    # Its report counts both uploads for their PeerIDs: the PPSPP one for the PeerID the
    # tracker lists at the channel's address (each DATA once: nothing was lost on loopback).
    seeded = json.loads(seed_report.read_text())["sessions"][0]
    ppspp_id = json.loads(get_report.read_text())["peer_id"]
    plain_id = json.loads((tmp_path / "plain.json").read_text())["peer_id"]
    assert seeded["uploaded_to"][plain_id] == SIZE, seeded
    assert seeded["uploaded_to"][ppspp_id] >= SIZE, seeded
    assert seeded["uploaded_bytes"] == sum(seeded["uploaded_to"].values()), seeded


async def test_a_peer_sending_corrupt_data_over_ppspp_is_banned(tmp_path: Path) -> None:
    source, output = tmp_path / "source.bin", tmp_path / "copy.bin"
    data = content(SIZE, seed=11)
    source.write_bytes(data)
    liar_report, get_report = tmp_path / "liar.json", tmp_path / "get.json"
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        liar = await _seed(swarm, source, "127.0.42.5", liar_report, "--corrupt-uploads")
        honest = await _seed(swarm, source, "127.0.42.1", tmp_path / "honest.json")
        swarm_id = liar.stdout[0]
        assert honest.stdout[0] == swarm_id
        getter = await swarm.get(
            swarm_id, output, "--host", "127.0.42.2", "--transport", "ppspp", "--transport",
            "http", "--report", str(get_report),
        )  # fmt: skip
        await finish(getter)
        assert output.read_bytes() == data
        await _stop(liar)
    session = _session(get_report)
    peers = session["peers"]
    assert len(peers) == 2 and all(peer["transport"] == "PPSPP" for peer in peers.values())
    # The liar was asked (two seeders, 12 chunks); its PPSPP chunks verified against the root
    # it offered (computed over its damaged bytes), but its first chunk did not match the
    # description's hash: it was banned and nothing of it was kept.
    liar_stats = json.loads(liar_report.read_text())["ppspp"]
    assert liar_stats["data_sent"] >= 1, liar_stats
    # Its PPSPP chunks verified up to its root (the client acknowledges only those).
    assert liar_stats["data_acked"] >= 1, liar_stats
    (liar_id,) = [peer_id for peer_id, peer in peers.items() if peer["banned"]]
    assert session["received_from"][liar_id] == 0
    assert any("corrupt chunk" in line for line in getter.stderr), getter.output()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ab" * 20, "--peer", "ppspp://127.0.0.1:9", "--transport", "ppspp"],
         "--transport goes with --tracker, not --peer"),
        (["ab" * 32, "--tracker", "http://127.0.0.1:1", "--transport", "ftp"],
         "'ftp' is not one of 'http', 'ppspp'"),
    ],
)  # fmt: skip
async def test_transport_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    async with Swarm(tmp_path) as swarm:
        getter = await swarm.spawn("get", "get", *args, "-o", str(tmp_path / "out"))
        assert await getter.wait() == 2, getter.output()
    assert any(message in line for line in getter.stderr), getter.output()
