"""Command lines of ``ppsp`` that end at once (usage errors, refusals), run by one process.

Starting ``python -m ppsp`` costs an interpreter and the command line's imports each time;
a test that checks dozens of refused command lines pays that once here.  One child process
runs the lines one after the other, each as ``python -m ppsp ARGS`` would: in its own
directory, with its own additions to the environment, its exit status kept, and its output
read from file descriptors 1 and 2 (where every writer of the process ends up: click, logging,
``print``).  A line still running after :data:`LINE_BOUND` seconds is stopped and shows as
exit status -1 (a hang is a failure of that line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

LINE_BOUND = 20
"""Seconds one command line may run."""

RUNNER = textwrap.dedent(
    """
    import json, os, signal, sys, tempfile
    from ppsp.app.cli import main

    class Hung(Exception):
        pass

    def hung(signum, frame):
        raise Hung()

    signal.signal(signal.SIGALRM, hung)
    saved = os.dup(1), os.dup(2)
    results = []
    for directory, args, extra, bound in json.loads(sys.argv[1]):
        os.chdir(directory)
        environment = dict(os.environ)
        os.environ.update(extra)
        sys.stdout.flush(), sys.stderr.flush()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
            signal.alarm(bound)
            try:
                main(args, prog_name="ppsp")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except Hung:
                code = -1
            finally:
                signal.alarm(0)
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved[0], 1), os.dup2(saved[1], 2)
                os.environ.clear()
                os.environ.update(environment)
            out.seek(0), err.seek(0)
            results.append([code, out.read().decode(), err.read().decode()])
    sys.stdout.write(json.dumps(results))
    """
)
"""The child: its argument is the JSON list of ``[directory, args, environment, bound]``."""


def run_lines(
    lines: Sequence[tuple[Sequence[str], Path, Mapping[str, str]]],
    env: Mapping[str, str],
) -> list[subprocess.CompletedProcess[str]]:
    """Run each ``(ARGS, directory, environment additions)`` as ``ppsp ARGS`` in one child
    process whose environment is ``env``; what each did, in order."""
    work = [[str(cwd), list(args), dict(extra), LINE_BOUND] for args, cwd, extra in lines]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(work)],
        capture_output=True,
        text=True,
        timeout=LINE_BOUND * len(work) + 30,
        env=dict(env),
        cwd=os.getcwd(),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    return [
        subprocess.CompletedProcess(["ppsp", *args], code, out, err)
        for (args, _, _), (code, out, err) in zip(lines, results, strict=True)
    ]
