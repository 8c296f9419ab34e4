"""End to end: a downloading peer serves over PPSPP what it holds (issue 17).

Real processes on distinct loopback addresses: a tracker, a seeder serving PPSPP beside HTTP
(its upload capped, the process slowed down), leecher A (``ppsp get --transport ppspp
--seed-after``), which serves what it holds over PPSPP on the one UDP socket its own channels
use once it can name the content (the root a chunk verified under, the subtree hashes fetched
from the seeder), and leecher B (``--transport ppspp``), started once A serves, while the
seeder is stopped (SIGSTOP): B's first chunks can only come from A, which holds part of the
content.  Once the seeder goes on, A announces what it gets (HAVE); B's report shows chunks
received from A over PPSPP.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

from e2e.swarm_helpers import SERVING, Peer, Swarm, content, finish, throttle
from ppsp.lab.report import check_transfers

SIZE = 4 << 20
OFFERING = re.compile(r"offering PPSPP to the swarm's peers at udp (\S+):(\d+)")
PROGRESS = re.compile(r" [1-9][0-9]*/[0-9]+ bytes")


def _document(report: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(report.read_text())
    return document


async def _stop(peer: Peer) -> None:
    peer.signal(signal.SIGINT)
    assert await peer.wait() == 0, peer.output()


async def test_a_downloading_peer_serves_what_it_holds_over_ppspp(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    data = content(SIZE, seed=17)
    source.write_bytes(data)
    reports = {name: tmp_path / f"{name}.json" for name in ("seed", "a", "b")}
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        seeder, _ = await swarm.seed(
            source, "--host", "127.0.44.1", "--ppspp-port", "0", "--upload-rate", "8Mbit",
            "--report", str(reports["seed"]), name="seeder",
        )  # fmt: skip
        await seeder.wait_line(OFFERING)
        swarm_id = seeder.stdout[0]
        async with throttle(seeder, run=0.01, pause=0.09):
            a = await swarm.get(
                swarm_id, tmp_path / "a.bin", "--host", "127.0.44.2", "--transport", "ppspp",
                "--seed-after", "--report", str(reports["a"]),
            )  # fmt: skip
            match = await a.wait_line(SERVING)
            assert match.group(1) == "127.0.44.2", a.output()
        # The seeder stopped: A holds part of the content, and is B's only source.
        seeder.freeze()
        try:
            b = await swarm.get(
                swarm_id, tmp_path / "b.bin", "--host", "127.0.44.3", "--transport", "ppspp",
                "--report", str(reports["b"]),
            )  # fmt: skip
            await b.wait_line(PROGRESS)
        finally:
            seeder.thaw()
        await finish(b)
        await a.wait_line(re.compile("complete"))
        # A served before it held everything: what it held, then what it got meanwhile.
        lines = a.stderr
        first = next(i for i, line in enumerate(lines) if SERVING.search(line))
        assert first < next(i for i, line in enumerate(lines) if "complete" in line), lines
        await _stop(a)
        await _stop(seeder)
    assert (tmp_path / "b.bin").read_bytes() == data
    assert (tmp_path / "a.bin").read_bytes() == data
    a_id = _document(reports["a"])["peer_id"]
    (session,) = _document(reports["b"])["sessions"]
    assert session["peers"][a_id]["transport"] == "PPSPP", session["peers"]
    assert session["received_from"][a_id] > 0, session["received_from"]
    serving = _document(reports["a"])["ppspp_serving"]
    assert serving["data_sent"] > 0 and serving["channels_opened"] >= 1, serving
    # What A got once the seeder went on was announced to B (HAVE).
    assert serving["haves_announced"] >= 1, serving
    # Every PPSPP upload is counted for the PeerID the tracker lists at the channel's address
    # (the seeder's and A's alike): the lab's check of bytes sent against bytes received finds
    # no receiver counting more than its sender sent (before, A's and the seeder's PPSPP
    # uploads were counted for nobody), and nothing unattributed.
    documents = [_document(report) for report in reports.values()]
    check = check_transfers(documents, swarm_id)
    b_id = _document(reports["b"])["peer_id"]
    pairs = {(pair.sender, pair.receiver): pair for pair in check.pairs}
    assert pairs[(a_id, b_id)].sent >= pairs[(a_id, b_id)].received > 0, check
    assert not check.over_received and check.unmatched_sent == 0, check
    for document in documents:
        (counted,) = document["sessions"]
        assert counted["uploaded_unattributed"] == 0, document
