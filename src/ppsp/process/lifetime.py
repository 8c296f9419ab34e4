"""Processes that end with their parent: the kernel's parent-death signal (Linux).

A supervisor (the tracker's worker parent, the lab) may itself be killed outright (SIGKILL), and
then has no chance to stop what it started.  Its children ask the kernel for SIGTERM when their
parent dies, so that nothing goes on serving or streaming unsupervised.
"""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Any

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up once, in the parent: a child between fork and exec should do as little as it can.
_PRCTL = _load_prctl()


def stop_with_parent(parent: int, signum: int = signal.SIGTERM) -> bool:
    """Ask for ``signum`` when the parent dies; False if the parent (``parent``) is already gone.

    Where there is no ``prctl`` only the check is made.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    # The parent may have died between the fork and prctl: then no signal will come.
    return os.getppid() == parent


def child_setup(parent: int) -> None:
    """A ``preexec_fn`` for a supervised child: SIGTERM when ``parent`` dies, gone if it is."""
    if not stop_with_parent(parent):
        os._exit(1)
