"""Process-wide tuning shared by the long-running commands (peers, lab processes)."""

from __future__ import annotations

import gc

__all__ = ["YOUNG_GC_THRESHOLD", "tune_garbage_collector"]

YOUNG_GC_THRESHOLD = 50_000
"""Allocations between young-generation collections once a command runs (CPython: 700)."""


def tune_garbage_collector(threshold: int = YOUNG_GC_THRESHOLD) -> None:
    """Fewer, cheaper garbage collections for the rest of the process.

    Everything alive now (imported modules, the command's set-up) is moved out of the
    collector's sight (``gc.freeze``), and young collections run every ``threshold``
    allocations instead of 700: a chunk request allocates a few hundred short-lived objects
    that reference counting frees anyway, and a full collection would otherwise walk every
    module object each time.
    """
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(threshold, second, third)
