"""Tracker storage: the :class:`Storage` interface and the memory backend (sans-I/O).

The Redis backend is I/O: :class:`ppsp.tracker.net.redis_storage.RedisStorage`.  Both pass one
conformance suite (tests/tracker/storage).
"""

from ppsp.tracker.storage.base import (
    MemberView,
    PeerRecord,
    Storage,
    StorageCounts,
    SwarmMember,
    SwarmPage,
    SwarmView,
)
from ppsp.tracker.storage.memory import MemoryStorage

__all__ = [
    "MemberView",
    "MemoryStorage",
    "PeerRecord",
    "Storage",
    "StorageCounts",
    "SwarmMember",
    "SwarmPage",
    "SwarmView",
]
