"""The ``ppsp`` process's start and end (:mod:`ppsp.app.launch`), as a shell runs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import ppsp
from e2e.swarm_helpers import run_ppsp
from ppsp.process.tuning import MIDDLE_GC_THRESHOLD, YOUNG_GC_THRESHOLD


def test_a_command_ends_with_its_status_and_its_output() -> None:
    done = run_ppsp("--version")
    assert (done.returncode, done.stdout) == (0, f"ppsp, version {ppsp.__version__}\n")


def test_a_usage_error_ends_with_status_2_and_one_line() -> None:
    done = run_ppsp("no-such-command")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no-such-command" in done.stderr


def test_the_collector_is_set_before_the_command_line_loads_and_atexit_still_runs() -> None:
    code = textwrap.dedent(
        """
        import atexit, gc, sys
        import ppsp.app.launch

        assert "click" not in sys.modules  # the launcher alone loads no command
        atexit.register(lambda: print("thresholds", *gc.get_threshold()[:2]))
        sys.argv = ["ppsp", "--version"]
        ppsp.app.launch.run()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"thresholds {YOUNG_GC_THRESHOLD} {MIDDLE_GC_THRESHOLD}"
