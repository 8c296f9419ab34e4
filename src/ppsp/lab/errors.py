"""The lab's errors: a run that could not be carried out, and a machine that lacks what it needs."""

from __future__ import annotations

__all__ = ["LabError", "LabRequirementError"]


class LabError(Exception):
    """A lab run could not be carried out (a process failed to start, a bound ran out)."""


class LabRequirementError(LabError):
    """What the lab needs is missing here (``--nat`` without root, ip, nft, tc or coturn)."""
