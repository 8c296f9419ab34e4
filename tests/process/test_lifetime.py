"""Children that end with their parent: the lab's and the tracker workers' safety net."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def test_a_child_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    # parent.py starts a sleeping child with child_setup, prints the child's pid and waits;
    # killing the parent outright must bring SIGTERM to the child.
    parent = tmp_path / "parent.py"
    parent.write_text(
        textwrap.dedent(
            """
            import functools, os, subprocess, sys, time
            from ppsp.process.lifetime import child_setup
            child = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)"],
                preexec_fn=functools.partial(child_setup, os.getpid()),
            )
            print(child.pid, flush=True)
            time.sleep(60)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(parent)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    child = int(process.stdout.readline())
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        # A zombie (reaped by init later) counts as gone.
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().split()[2] == "Z":
                return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived its parent")
