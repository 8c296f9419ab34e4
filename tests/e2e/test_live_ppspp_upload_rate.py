"""End to end: ``--upload-rate`` binds a live source's PPSPP uploads, and its report counts them.

A source capped at 64 KiB/s streams 4 Mbit/s for 2 s to a ``ppsp watch --transport ppspp``
viewer.  Uncapped it sends the whole stream (1 MB) at loopback speed; capped, its PPSPP DATA
stay near the cap over its lifetime (the bounds are generous: the bucket's burst, each host's
reservation, the lifetime measured from outside).  The report counts each byte once: PPSPP
bytes in ``uploaded_bytes``, attributed to a PeerID or ``uploaded_unattributed``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.test_live_ppspp import _feed, _first_line

PPSP = [sys.executable, "-m", "ppsp"]
RATE = 64 * 1024


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_live_ppspp_uploads_keep_to_the_upload_rate(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    tracker = subprocess.Popen(
        [*PPSP, "tracker", "--port", "0", "--log-level", "warning"], env=env, stdout=subprocess.PIPE
    )
    processes.append(tracker)
    url = _first_line(tracker).rsplit(" ", 1)[-1]
    started = time.monotonic()
    source = subprocess.Popen(
        [
            *PPSP, "live", "--tracker", url, "--key", str(tmp_path / "source.key"),
            "--ppspp-port", "0", "--chunk-ms", "250", "--upload-rate", str(RATE),
            "--report", str(tmp_path / "source.json"),
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "source.err", "wb"),  # noqa: SIM115
    )  # fmt: skip
    processes.append(source)
    swarm_id = _first_line(source)
    assert len(swarm_id) == 64, swarm_id
    data = b"".join(i.to_bytes(4, "big") for i in range(250_000))  # 1 MB over 2 s
    feeder = threading.Thread(target=_feed, args=(source.stdin, data, 2.0), daemon=True)
    feeder.start()
    viewer = subprocess.Popen(
        [
            *PPSP, "watch", swarm_id, "--tracker", url, "--transport", "ppspp",
            "--player-port", "0", "-o", str(tmp_path / "viewer.out"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "viewer.err", "wb"),  # noqa: SIM115
    )  # fmt: skip
    processes.append(viewer)
    feeder.join(timeout=20)
    assert source.wait(timeout=30) == 0, (tmp_path / "source.err").read_text()
    elapsed = time.monotonic() - started
    viewer.send_signal(signal.SIGINT)
    viewer.wait(timeout=30)
    report = json.loads((tmp_path / "source.json").read_text())
    live = report["ppspp_live"]
    sent = live["data_bytes"]
    assert sent > 0 and live["paced_waits"] > 0, live
    # The cap over the source's whole life, with room for the burst and a reservation; the
    # stream is 1 MB: uncapped, all of it would have gone.
    assert sent <= RATE * elapsed * 1.2 + 64 * 1024, (sent, elapsed)
    (session,) = report["sessions"]
    # Every PPSPP byte counted once: attributed to a PeerID or unattributed.
    attributed = sum(session["uploaded_to"].values()) + session["uploaded_unattributed"]
    assert session["uploaded_bytes"] == attributed >= sent, session
    assert "attribution_lookups" in live
