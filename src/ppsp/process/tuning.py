"""Process-wide tuning shared by the long-running commands (peers, lab processes)."""

from __future__ import annotations

import ctypes
import gc

__all__ = ["YOUNG_GC_THRESHOLD", "tune_allocator", "tune_garbage_collector"]

YOUNG_GC_THRESHOLD = 50_000
"""Allocations between young-generation collections once a command runs (CPython: 700)."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_BUFFER_LIMIT = 32 << 20
"""Buffers up to this size come from the C heap rather than from fresh memory mappings."""
HEAP_KEEP = 256 << 20
"""Free heap memory kept for reuse before any is given back to the system."""


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


def tune_allocator() -> bool:
    """Let the C allocator reuse chunk-sized buffers instead of mapping fresh memory for each.

    Every chunk body (up to a few MiB) is a new buffer.  By default glibc serves large ones
    from fresh memory mappings and gives freed heap memory back to the system, so each chunk
    pays page faults and zeroing of new pages; here buffers up to 32 MiB come from the heap,
    and up to 256 MiB of freed heap is kept for reuse.  Only where the C library has
    ``mallopt`` (glibc); returns whether it applied.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, HEAP_BUFFER_LIMIT) and mallopt(_M_TRIM_THRESHOLD, HEAP_KEEP)
    )
