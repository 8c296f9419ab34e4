"""A live stream over PPSPP end to end: ``ppsp live --ppspp-port`` -> ``ppsp watch --transport
ppspp`` viewers, real processes on loopback.

The source signs a munro per live chunk (RFC 7574's Unified Merkle Tree); two honest viewers
and one that damages every chunk it relays (``--corrupt-uploads``) watch over PPSPP only.  The
second honest viewer joins later and takes chunks from the first; the forged ones are refused
by the munro check and never played: each honest viewer's output is exactly the end of what
the source read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PPSP = [sys.executable, "-m", "ppsp"]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _first_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        line += proc.stdout.readline()
        if proc.poll() is not None and not line:
            break
    return line.decode().strip()


def _feed(pipe: object, data: bytes, seconds: float) -> None:
    """Write ``data`` to ``pipe`` evenly over ``seconds``, then close it (the stream ends)."""
    assert hasattr(pipe, "write") and hasattr(pipe, "close")
    step = len(data) // 40
    for start in range(0, len(data), step):
        pipe.write(data[start : start + step])
        pipe.flush()  # type: ignore[attr-defined]
        time.sleep(seconds / 40)
    pipe.close()


def test_live_over_ppspp_relays_between_viewers_and_refuses_forged_chunks(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    tracker = subprocess.Popen(
        [*PPSP, "tracker", "--port", "0", "--log-level", "warning"], env=env, stdout=subprocess.PIPE
    )
    processes.append(tracker)
    url = _first_line(tracker).rsplit(" ", 1)[-1]
    source = subprocess.Popen(
        [
            *PPSP,
            "live",
            "--tracker",
            url,
            "--key",
            str(tmp_path / "source.key"),
            "--ppspp-port",
            "0",
            "--chunk-ms",
            "250",
            "--report",
            str(tmp_path / "source.json"),
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "source.err", "wb"),  # noqa: SIM115
    )
    processes.append(source)
    swarm_id = _first_line(source)
    assert len(swarm_id) == 64, swarm_id
    # 4 s of a 400 kbit/s stream: numbered 4-byte words, so that any piece shows its place.
    data = b"".join(i.to_bytes(4, "big") for i in range(50_000))
    feeder = threading.Thread(target=_feed, args=(source.stdin, data, 4.0), daemon=True)
    feeder.start()

    def watch(name: str, *extra: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                *PPSP,
                "watch",
                swarm_id,
                "--tracker",
                url,
                "--transport",
                "ppspp",
                "--player-port",
                "0",
                "-o",
                str(tmp_path / f"{name}.out"),
                "--report",
                str(tmp_path / f"{name}.json"),
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"{name}.err", "wb"),  # noqa: SIM115
        )
        processes.append(proc)
        return proc

    forger = watch("forger", "--corrupt-uploads")
    first = watch("viewer-1")
    time.sleep(1.5)
    second = watch("viewer-2")
    feeder.join(timeout=20)
    assert source.wait(timeout=30) == 0
    for proc in (first, second, forger):
        assert proc.wait(timeout=30) == 0
    source_err = (tmp_path / "source.err").read_text()
    assert "offering PPSPP at udp 127.0.0.1:" in source_err and "Traceback" not in source_err
    source_report = json.loads((tmp_path / "source.json").read_text())
    assert source_report["ppspp_live"]["data_sent"] > 0

    forged = 0
    for name in ("viewer-1", "viewer-2"):
        stderr = (tmp_path / f"{name}.err").read_text()
        assert "Traceback" not in stderr and "the live stream ended" in stderr, stderr
        report = json.loads((tmp_path / f"{name}.json").read_text())
        live = report["sessions"][0]["live"]
        assert live["chunks_played"] >= 4, (name, live)
        forged += live["forged_rejected"]
        # Only verified chunks were played: with none skipped, the output is exactly the end
        # of the stream the source read (a chunk is never written half or altered).
        out = (tmp_path / f"{name}.out").read_bytes()
        assert (out and data.endswith(out)) or live["chunks_skipped"] > 0, (name, live)
        assert data.find(out[:4096]) % 4 == 0  # starts at a chunk the source cut, in step
    # viewer-2 joined 1.5 s in: chunks behind the live edge came from viewer-1, over PPSPP.
    second_report = json.loads((tmp_path / "viewer-2.json").read_text())
    assert second_report["sessions"][0]["live"]["bytes_from_peers"] > 0, second_report
    first_report = json.loads((tmp_path / "viewer-1.json").read_text())
    assert first_report["ppspp_live"]["data_sent"] > 0, first_report
    assert first_report["sessions"][0]["uploaded_bytes"] > 0, first_report
    # The forger's chunks failed their munro checks (viewer-2 found it holding the chunks
    # behind the live edge: relays are asked before the source) and it was banned.
    forger_report = json.loads((tmp_path / "forger.json").read_text())
    assert forger_report["ppspp_live"]["data_sent"] > 0
    assert forged >= 1
