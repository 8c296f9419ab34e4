"""Process-wide tuning shared by the long-running commands (peers, lab processes)."""

from __future__ import annotations

import gc
import math

__all__ = [
    "FREEZE_LOOK_INTERVAL",
    "FREEZE_STEP",
    "MIDDLE_GC_THRESHOLD",
    "YOUNG_GC_THRESHOLD",
    "FreezeTrigger",
    "collect_rarely",
    "freeze_state",
    "tune_allocator",
    "tune_garbage_collector",
]

YOUNG_GC_THRESHOLD = 50_000
"""Allocations between young-generation collections once a command runs (CPython: 700)."""
MIDDLE_GC_THRESHOLD = 3
"""Young collections between two collections of the middle generation (CPython: 10).

The middle generation holds the survivors of the young collections since its last one: with
10 young collections of 50,000 allocations while a tracker registers peers (long-lived
objects), it walked some 500,000 objects each time (150-330 ms); with 3, a third of that."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
HEAP_BUFFER_LIMIT = 32 << 20
"""Buffers up to this size come from the C heap rather than from fresh memory mappings."""
HEAP_KEEP = 256 << 20
"""Free heap memory kept for reuse before any is given back to the system."""


def collect_rarely(threshold: int = YOUNG_GC_THRESHOLD, middle: int = MIDDLE_GC_THRESHOLD) -> None:
    """Young collections every ``threshold`` allocations instead of 700, the middle
    generation collected every ``middle`` young collections (:data:`MIDDLE_GC_THRESHOLD`).

    A chunk request or a tracker request allocates a few hundred short-lived objects that
    reference counting frees anyway, and loading a command's modules some hundred thousand
    long-lived ones: with CPython's default, the collector would walk them again and again.
    The ``ppsp`` process sets this before its modules load (:mod:`ppsp.app.launch`).
    """
    gc.set_threshold(threshold, middle, gc.get_threshold()[2])


def tune_garbage_collector(
    threshold: int = YOUNG_GC_THRESHOLD, middle: int = MIDDLE_GC_THRESHOLD
) -> None:
    """Fewer, cheaper garbage collections for the rest of the process.

    Everything alive now (imported modules, the command's set-up) is moved out of the
    collector's sight (``gc.freeze``), so that no collection walks it again, and collections
    are made rare (:func:`collect_rarely`).  No full collection runs first: it would walk every
    module object (8-10 ms of a peer command's start) to free the few hundred objects that
    imports leave in reference cycles, which are frozen with the rest instead, once.
    """
    gc.freeze()
    collect_rarely(threshold, middle)


FREEZE_STEP = 50_000
"""Peers the state grows by (over its largest size at the last freeze) before it is frozen."""
FREEZE_LOOK_INTERVAL = 5.0
"""Seconds between two looks at the state's size by the upkeep task."""


class FreezeTrigger:
    """Decides when a grown state is moved out of the garbage collector's sight (sans-I/O).

    A tracker's peers are long-lived objects: left to the collector, they are walked again by
    every full collection (seconds at a million peers).  :meth:`due` answers, from the peer
    count, whether to freeze now (:func:`freeze_state`): each time the count reaches the
    largest count at the last freeze plus ``step``.  That mark never goes down, so a process
    freezes at most ``largest count / step`` times in its life: each freeze may keep forever
    the objects in reference cycles alive at that moment (an open connection's), so their
    number stays bounded.  Peers that replace expired ones at a steady size are not frozen
    (the collector sees them again).  :meth:`should_look` spaces the looks (time passed in).
    """

    def __init__(self, step: int = FREEZE_STEP, interval: float = FREEZE_LOOK_INTERVAL) -> None:
        if step < 1:
            raise ValueError("the freeze step must be at least 1 peer")
        self.step = step
        self.interval = interval
        self.frozen_at = 0
        """The peer count at the last freeze (0 before any): the next one is due at +step."""
        self._next_look = -math.inf

    def should_look(self, now: float) -> bool:
        """Whether the size is worth reading at ``now`` (once per ``interval``)."""
        if now < self._next_look:
            return False
        self._next_look = now + self.interval
        return True

    def due(self, peers: int) -> bool:
        """Whether to freeze now that the state holds ``peers``; a yes counts as done."""
        if peers < self.frozen_at + self.step:
            return False
        self.frozen_at = peers
        return True


def freeze_state() -> None:
    """Collect what is garbage now, then move every live object out of the collector's sight.

    The full collection walks only the objects not yet frozen (those made since the last
    freeze), so that none of today's cyclic garbage is frozen with the state; afterwards the
    older generations hold only what is new, and their collections stay short.  Objects that
    die later are freed by reference counting as before; only a reference cycle among frozen
    objects would never be freed (the tracker's storage holds none: see the tests).
    """
    gc.collect()
    gc.freeze()


def tune_allocator() -> bool:
    """Let the C allocator reuse chunk-sized buffers instead of mapping fresh memory for each.

    Every chunk body (up to a few MiB) is a new buffer.  By default glibc serves large ones
    from fresh memory mappings and gives freed heap memory back to the system, so each chunk
    pays page faults and zeroing of new pages; here buffers up to 32 MiB come from the heap,
    and up to 256 MiB of freed heap is kept for reuse.  Only where the C library has
    ``mallopt`` (glibc); returns whether it applied.
    """
    import ctypes  # here: only the peers need it, and it costs a command's start 2 ms

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, HEAP_BUFFER_LIMIT) and mallopt(_M_TRIM_THRESHOLD, HEAP_KEEP)
    )
