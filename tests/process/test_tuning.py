"""Process-wide tuning of the long-running commands, checked in a fresh interpreter."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from ppsp.process.tuning import MIDDLE_GC_THRESHOLD, YOUNG_GC_THRESHOLD


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_garbage_collector_tuning_freezes_start_up_objects() -> None:
    out = _run(
        "import gc; from ppsp.process.tuning import tune_garbage_collector as t; t(); "
        "print(*gc.get_threshold()[:2], gc.get_freeze_count() > 0)"
    )
    assert out == f"{YOUNG_GC_THRESHOLD} {MIDDLE_GC_THRESHOLD} True"


def test_garbage_collector_tuning_runs_no_full_collection() -> None:
    # A full collection at a command's start walks every module object (8-10 ms): frozen
    # instead, with the few objects in cycles that imports leave.
    out = _run(
        "import gc; from ppsp.process.tuning import tune_garbage_collector as t; "
        "before = gc.get_stats()[2]['collections']; t(); "
        "print(gc.get_stats()[2]['collections'] - before)"
    )
    assert out == "0"


def test_collect_rarely_sets_the_thresholds_and_freezes_nothing() -> None:
    out = _run(
        "import gc; from ppsp.process.tuning import collect_rarely as c; c(); "
        "print(*gc.get_threshold()[:2], gc.get_freeze_count())"
    )
    assert out == f"{YOUNG_GC_THRESHOLD} {MIDDLE_GC_THRESHOLD} 0"


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
def test_allocator_tuning_applies_on_glibc() -> None:
    out = _run(
        "from ppsp.process.tuning import tune_allocator; "
        "print(tune_allocator(), len(bytes(8 << 20)) == 8 << 20)"
    )
    assert out == "True True"
