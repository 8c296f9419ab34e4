"""The end of a ``ppsp`` process: the status, threads, ``atexit`` and streams, in a fresh
interpreter (``os._exit`` ends whatever calls it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ppsp.process.ending import exit_status


@pytest.mark.parametrize(
    ("code", "status"),
    [(None, 0), (0, 0), (3, 3), (130, 130), (256, 0), (-1, 255), (True, 1), (False, 0)],
)
def test_exit_status_reads_codes_as_the_interpreter_does(code: object, status: int) -> None:
    assert exit_status(code) == status


def test_exit_status_of_a_message_is_one_and_the_message_is_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert exit_status("no such file") == 1
    assert capsys.readouterr().err == "no such file\n"


def test_end_process_waits_for_threads_runs_atexit_and_flushes(tmp_path: Path) -> None:
    marker = tmp_path / "thread-done"
    code = textwrap.dedent(
        f"""
        import atexit, sys, threading, time
        from ppsp.process.ending import end_process

        def late():
            time.sleep(0.2)
            open({str(marker)!r}, "w").write("written")

        threading.Thread(target=late).start()
        atexit.register(lambda: print("atexit ran", end=""))
        sys.stdout.write("buffered ")  # no newline: still in the buffer at the end
        sys.stderr.write("to stderr")
        end_process(7)
        print("never")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 7
    assert done.stdout == "buffered atexit ran"
    assert done.stderr == "to stderr"
    assert marker.read_text() == "written"


def test_end_process_leaves_daemon_threads_behind() -> None:
    code = textwrap.dedent(
        """
        import threading, time
        from ppsp.process.ending import end_process

        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        end_process(0)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    assert done.returncode == 0
