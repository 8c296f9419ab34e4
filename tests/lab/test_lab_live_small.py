"""A small real live lab run: ``ppsp lab live`` with 3 viewers of a 500 kbit/s stream for 8 s."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.e2e

VIEWERS = 3
DURATION = 8


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("lab") / "live"
    command = [
        sys.executable,
        "-m",
        "ppsp",
        "lab",
        "live",
        "--peers",
        str(VIEWERS),
        "--bitrate",
        "500kbit",
        "--duration",
        str(DURATION),
        "--join-spread",
        "1",
        "--churn",
        "0.34",
        "--seed",
        "2",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = orjson.loads((out / "report.json").read_bytes())
    return out, document, done.stdout


def test_outputs_exist(lab_run: tuple[Path, dict[str, Any], str]) -> None:
    out, document, stdout = lab_run
    assert (out / "report.md").read_text(encoding="utf-8") in stdout + "\n"
    assert document["kind"] == "live"
    assert document["plots"] == ["viewers.png", "bytes_over_time.png"]
    for name in document["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert document["command"].startswith("ppsp lab live --peers 3")
    assert not list((out / "work").glob("*.ts"))  # the recordings and the pipe are removed
    assert {p.name for p in (out / "reports").glob("*.json")} == {
        "source.json",
        "viewer-01.json",
        "viewer-02.json",
        "viewer-03.json",
    }
    assert {p.name for p in (out / "logs").glob("*.log")} >= {"tracker.log", "encoder.log"}


def test_every_process_stopped_cleanly(lab_run: tuple[Path, dict[str, Any], str]) -> None:
    _, document, _ = lab_run
    exits = document["exits"]
    assert exits.pop("encoder") in (0, 255)  # ffmpeg exits 255 when a signal stops it
    assert exits == dict.fromkeys(exits, 0), exits
    assert len(exits) == VIEWERS + 2


def test_figures_are_consistent(lab_run: tuple[Path, dict[str, Any], str]) -> None:
    _, document, _ = lab_run
    fig = document["figures"]
    viewers = fig["viewers"]
    assert [v["name"] for v in viewers] == ["viewer-01", "viewer-02", "viewer-03"]
    assert sum(v["churned"] for v in viewers) == 1
    assert document["plan"]["churned"] == [i for i, v in enumerate(viewers) if v["churned"]]
    for v in viewers:
        assert v["reported"], v
        assert (v["left_after"] is not None) == v["churned"]
        if v["churned"]:
            continue  # it may leave before it played anything
        assert v["chunks_played"] >= 4, v
        due = v["chunks_played"] + v["chunks_skipped"]
        assert v["continuity_index"] == pytest.approx(v["chunks_played"] / due)
        assert v["startup_delay"] is not None and v["startup_delay"] >= 0
        assert v["delay_behind_source"] is not None and v["delay_behind_source"] > 0
        assert v["output_readable"], v
        assert v["frames"] > 0, v
        assert v["from_source"] + v["from_peers"] > 0
    volume = fig["bytes"]
    assert volume["delivered"] == sum(v["from_source"] + v["from_peers"] for v in viewers)
    assert volume["from_source"] == sum(v["from_source"] for v in viewers)
    assert volume["source_share"] == pytest.approx(volume["from_source"] / volume["delivered"])
    assert volume["source_uploaded"] >= volume["from_source"]
    assert fig["transfers"]["over_received"] == 0
    assert fig["source"]["chunks"] >= 2 * DURATION
    assert fig["chunks_played"] == sum(v["chunks_played"] for v in viewers)
    names = [check["name"] for check in fig["targets"]]
    assert names == ["continuity", "startup_delay", "delay_behind_source", "source_share"]
    for check in fig["targets"]:
        if check["met"]:
            assert check["miss"] == 0.0
        elif not check["failing"]:
            assert check["miss"] is None or check["miss"] > 0
    cpu = document["cpu"]
    assert cpu["total"] > 0
    assert set(cpu["processes"]) >= {"tracker", "source", "encoder"}
