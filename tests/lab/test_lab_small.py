"""A small real lab run: ``ppsp lab vod`` with 3 peers and 2 MiB, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
PEERS = 3
SIZE_MB = 2


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("lab") / "vod"
    command = [
        sys.executable,
        "-m",
        "ppsp",
        "lab",
        "vod",
        "--peers",
        str(PEERS),
        "--size-mb",
        str(SIZE_MB),
        "--source-rate",
        "1MiB",
        "--peer-rate",
        "1MiB",
        "--join-spread",
        "1",
        "--churn",
        "0.34",
        "--chunk-size",
        "65536",
        "--timeout",
        "40",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = orjson.loads((out / "report.json").read_bytes())
    return out, document, done.stdout


def test_outputs_exist(lab_run: tuple[Path, dict[str, Any], str]) -> None:
    out, document, stdout = lab_run
    assert (out / "report.md").read_text(encoding="utf-8") in stdout + "\n"
    assert document["plots"] == ["completion_cdf.png", "bytes_over_time.png"]
    for name in document["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert document["command"].startswith("ppsp lab vod --peers 3")
    assert document["parameters"]["peers"] == PEERS
    assert not list((out / "work").glob("*.bin"))  # the copies are removed
    assert {p.name for p in (out / "reports").glob("*.json")} == {
        "source.json",
        "peer-01.json",
        "peer-02.json",
        "peer-03.json",
    }


def test_every_peer_completes_with_a_verified_copy(
    lab_run: tuple[Path, dict[str, Any], str],
) -> None:
    _, document, _ = lab_run
    figures = document["figures"]
    assert figures["all_complete"]
    assert len(figures["peers"]) == PEERS
    assert all(peer["complete"] and peer["completion_time"] > 0 for peer in figures["peers"])
    assert all(document["outputs_verified"].values())
    for peer in figures["peers"]:
        assert 0 <= peer["first_byte"] <= peer["completion_time"]
        assert 1 <= peer["senders"] <= PEERS
    assert document["cpu"]["cores"] >= 1 and document["cpu"]["total"] > 0
    assert len(document["plan"]["churned"]) == 1
    assert sum(peer["churned"] for peer in figures["peers"]) == 1


def test_bytes_add_up(lab_run: tuple[Path, dict[str, Any], str]) -> None:
    _, document, _ = lab_run
    figures = document["figures"]
    size = SIZE_MB * MiB
    volume, transfers = figures["bytes"], figures["transfers"]
    assert figures["size"] == size
    assert volume["delivered"] == PEERS * size
    assert volume["from_source"] + volume["from_peers"] == volume["delivered"]
    for peer in figures["peers"]:
        assert peer["from_source"] + peer["from_peers"] == peer["downloaded"] == size
    # What the receivers counted is what the senders counted, but for the chunks a sender
    # wrote and its receiver cancelled in flight (counted by the sender only), and for a peer
    # that left: it writes its report before it stops serving, so an upload still in flight
    # then is counted by its receiver only.
    assert transfers["total_received"] == volume["delivered"]
    churned = {peer["peer_id"] for peer in figures["peers"] if peer["churned"]}
    assert all(
        pair["sender"] in churned for pair in transfers["mismatches"] if pair["difference"] < 0
    )
    assert transfers["over_received_bytes"] <= 4 * (PEERS - 1) * 65536
    assert transfers["unmatched_sent"] == transfers["unmatched_received"] == 0
    assert (
        transfers["total_sent"] - transfers["total_received"]
        == transfers["unkept"] - transfers["over_received_bytes"]
    )
    assert transfers["unkept"] <= 0.25 * volume["delivered"]
    assert 0.0 <= volume["source_share"] <= 1.0


def test_ratio_to_the_bound_and_baseline(lab_run: tuple[Path, dict[str, Any], str]) -> None:
    _, document, _ = lab_run
    figures = document["figures"]
    # max(2 MiB / 1 MiB/s, 3 * 2 / (1 + 3)) = 2 s
    assert figures["bound"]["seconds"] == pytest.approx(2.0)
    assert 0.5 <= figures["ratio"] <= 15
    baseline = figures["baseline"]
    assert baseline["errors"] == []
    assert baseline["bound"] == pytest.approx(6.0)
    # One server at 1 MiB/s cannot deliver 3 x 2 MiB much faster than 6 s.
    assert baseline["last_completion"] >= 0.8 * baseline["bound"]
