"""The end of a live lab run: the viewers are stopped before anything else.

Real processes stand for the run's parts; each writes its name to one file when it is told to
stop, so the file gives the order the lab stopped them in.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from ppsp.lab.live import stop_in_order
from ppsp.lab.process import LabProcess
from ppsp.lab.runner import _Run

CHILD = """
import os, signal, sys, time
name, path = sys.argv[1], sys.argv[2]
def stop(number, frame):
    with open(path, "a") as out:
        out.write(name + "\\n")
    os._exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


async def _child(name: str, order: Path, logs: Path) -> LabProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        name,
        str(order),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    child = LabProcess(name, process, logs / f"{name}.log")
    await child.stdout_line(re.compile("ready"), 20.0)
    return child


async def test_viewers_stop_before_the_attackers_and_the_source(tmp_path: Path) -> None:
    order = tmp_path / "order"
    names = ["viewer-1", "viewer-2", "attack-1", "attack-2", "encoder", "source", "tracker"]
    children = {name: await _child(name, order, tmp_path) for name in names}
    run = _Run(processes=list(children.values()))
    try:
        await stop_in_order(
            run,
            viewers=[children["viewer-1"], children["viewer-2"]],
            attackers=[children["attack-1"], children["attack-2"]],
            encoder=children["encoder"],
            source=children["source"],
            tracker=children["tracker"],
        )
    finally:
        await run.shutdown()
    stopped = order.read_text().split()
    assert sorted(stopped[:2]) == ["viewer-1", "viewer-2"], stopped
    assert sorted(stopped[2:4]) == ["attack-1", "attack-2"], stopped
    assert stopped[4:] == ["encoder", "source", "tracker"]
    assert not any(child.alive for child in children.values())
