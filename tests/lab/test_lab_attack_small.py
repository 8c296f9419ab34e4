"""A small lab run with attackers: ``ppsp lab vod`` with 3 peers, a tarpit and a corrupt member.

Every process has its own loopback /24 and the tracker's limits are on.  The same swarm runs
first without attackers (clean/), and report.json carries the attack section and the
comparison; every honest peer completes with a verified copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.e2e


def test_a_lab_with_attackers_completes_and_reports_them(tmp_path: Path) -> None:
    out = tmp_path / "vod"
    command = [
        sys.executable, "-m", "ppsp", "lab", "vod", "--peers", "3", "--size-mb", "1",
        "--source-rate", "1MiB", "--peer-rate", "1MiB", "--join-spread", "1",
        "--chunk-size", "65536", "--timeout", "30", "--no-baseline", "--seed", "2",
        "--attackers", "1", "--attack", "tarpit", "--attack", "corrupt", "--out", str(out),
    ]  # fmt: skip
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
    attack = document["attack"]
    assert attack["kinds"] == ["tarpit", "corrupt"]
    for kind in ("tarpit", "corrupt"):
        entry = attack["by_kind"][kind]
        assert entry["count"] == 1 and entry["attackers"][0]["ready"], entry
    corrupt = attack["by_kind"]["corrupt"]["attackers"][0]["tally"]
    assert corrupt is not None and corrupt["kind"] == "corrupt"
    assert all(document["outputs_verified"].values())
    comparison = document["comparison"]
    assert comparison["no_failures"] and comparison["clean"]["completed"] == 3
    assert comparison["ratio_last"] is not None
    assert (out / "clean" / "report.json").exists()
    assert (out / "completion_attack.png").exists()
    assert "## Without and with attackers" in (out / "report.md").read_text()
    assert document["addresses"]["tracker"] == "127.1.0.1"
