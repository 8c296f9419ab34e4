"""``ppsp lab vod|live --nat``: the lab in network namespaces, 3 of its 4 peers behind NATs.

A real run as a subprocess (root, nftables, tc and coturn needed; skipped without them, failed
in CI): every peer completes with a verified copy, each NATed peer learnt its router's public
address from the STUN server (so it really sat behind a masquerade) and allocated a TURN relay
(one of them behind a NAT that maps each destination apart, ``--symmetric``), the source
served them over PPSPP, the report has the NAT figures, and no namespace of the run is left.
A second run is stopped with SIGTERM while its peers download: it exits at once, its
namespaces gone.  A live run streams over PPSPP to viewers behind NAT (STUN on their live
sockets, a relay each, one behind a symmetric NAT) and reports how the viewer pairs
connected.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from e2e.nat_helpers import require
from e2e.netns_helpers import IP

pytestmark = pytest.mark.e2e

PEERS = 4


def _lab_namespaces() -> set[str]:
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, timeout=30)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.startswith("ppsp-lab-")}


def _command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ppsp", "lab", "vod", "--nat", "0.75", "--peers", str(PEERS),
        "--size-mb", "3", "--source-rate", "1MiB", "--peer-rate", "1MiB",
        "--chunk-size", "65536", "--join-spread", "1", "--timeout", "60", "--no-baseline",
        "--seed", "1", "--out", str(out), *extra,
    ]  # fmt: skip


def test_a_nat_lab_completes_and_reports_how_pairs_connected(tmp_path: Path) -> None:
    require(namespaces=True)
    before = _lab_namespaces()
    out = tmp_path / "vod"
    done = subprocess.run(
        _command(out, "--symmetric", "0.34"),
        capture_output=True, text=True, timeout=150, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert _lab_namespaces() <= before
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    assert document["figures"]["all_complete"]
    assert all(document["outputs_verified"].values())

    nat = document["nat"]
    assert nat["behind_nat"] == 3 and nat["peers"] == PEERS and not nat["reports_missing"]
    routers = {node["name"]: node["public"] for node in document["network"]["nodes"]}
    privates = {node["name"]: node["address"] for node in document["network"]["nodes"]}
    for name in nat["natted"]:
        # The STUN answer names the router's public address, not the peer's private one.
        reflexive = nat["reflexive"][name]
        assert reflexive is not None and reflexive.split(":")[0] == routers[name], nat
        assert privates[name].startswith("172."), privates
    # Each NATed peer allocated a relay on the lab's coturn (its address: the server's).
    assert len(nat["symmetric"]) == 1 and set(nat["symmetric"]) <= set(nat["natted"]), nat
    for relayed in nat["relays"].values():
        assert relayed is not None and relayed.split(":")[0] == nat["turn"].split(":")[0], nat
    # The source reached peers behind NAT over PPSPP (UDP through their masquerade).
    assert nat["source"]["natted"]["transports"].get("PPSPP", 0) >= 1, nat["source"]
    # Every pair of the four peers is listed by one of them, and is one of the outcomes.
    pairs = nat["pairs"]
    assert pairs["total"] == PEERS * (PEERS - 1) // 2, pairs
    outcomes = ("direct", "relayed", "never", "not_needed")
    assert sum(pairs[outcome] for outcome in outcomes) == pairs["total"], pairs
    assert sum(k["total"] for k in nat["pairs_by_kind"].values()) == pairs["total"]
    assert nat["pairs_by_kind"]["public-public"]["total"] == 0  # one public peer
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "## NAT" in markdown and "3 of 4 peers behind a NAT" in markdown


def test_a_nat_lab_stopped_midway_removes_its_namespaces(tmp_path: Path) -> None:
    require(namespaces=True)
    before = _lab_namespaces()
    lab = subprocess.Popen(
        _command(tmp_path / "vod", "--size-mb", "64"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert lab.stderr is not None
        seen = []
        deadline = time.monotonic() + 60
        for line in lab.stderr:
            seen.append(line)
            if "peers started" in line or time.monotonic() > deadline:
                break
        assert any("peers started" in line for line in seen), "".join(seen)
        assert len(_lab_namespaces() - before) == 1 + 3 + PEERS + 3  # switch, servers, routers
        lab.send_signal(signal.SIGTERM)
        rest = lab.stderr.read()
        assert lab.wait(timeout=60) == 1, "".join(seen) + rest
        assert "interrupted" in rest
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait(timeout=30)
    assert _lab_namespaces() <= before


def test_a_live_nat_lab_streams_over_ppspp_and_reports_the_pairs(tmp_path: Path) -> None:
    require(namespaces=True)
    before = _lab_namespaces()
    out = tmp_path / "live"
    done = subprocess.run(
        [
            sys.executable, "-m", "ppsp", "lab", "live", "--nat", "0.75", "--symmetric", "0.34",
            "--peers", str(PEERS),
            "--bitrate", "500kbit", "--duration", "6", "--join-spread", "1", "--seed", "1",
            "--out", str(out),
        ],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert _lab_namespaces() <= before
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    nat = document["nat"]
    assert nat["behind_nat"] == 3 and not nat["reports_missing"], nat
    routers = {node["name"]: node["public"] for node in document["network"]["nodes"]}
    for name in nat["natted"]:
        # The live PPSPP socket learnt its router's address through itself (STUN).
        reflexive = nat["reflexive"][name]
        node = name.replace("viewer-", "peer-")  # the network plan names the viewers' nodes so
        assert reflexive is not None and reflexive.split(":")[0] == routers[node], nat
    # Each NATed viewer serves the stream again through a TURN relay of its own too.
    assert len(nat["symmetric"]) == 1, nat
    assert all(relayed is not None for relayed in nat["relays"].values()), nat
    # The source served the viewers behind NAT over PPSPP, and the pairs are counted.
    assert nat["source"]["natted"]["transports"].get("PPSPP", 0) >= 1, nat["source"]
    assert nat["source_ppspp"].get("data_sent", 0) > 0 and nat["source_ppspp_live"], nat
    pairs = nat["pairs"]
    # Every pair is counted; whether viewers relayed among themselves in so short a stream is
    # the live policy's choice (relays behind NAT: tests/e2e/test_live_ppspp_nat.py).
    assert pairs["total"] == PEERS * (PEERS - 1) // 2, pairs
    outcomes = ("direct", "relayed", "never", "not_needed")
    assert sum(pairs[outcome] for outcome in outcomes) == pairs["total"], pairs
