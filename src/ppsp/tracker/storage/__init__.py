"""Tracker storage: the :class:`Storage` interface and its backends (memory, Redis)."""

from ppsp.tracker.storage.base import PeerRecord, Storage, StorageCounts, SwarmMember
from ppsp.tracker.storage.memory import MemoryStorage
from ppsp.tracker.storage.redis import RedisStorage

__all__ = [
    "MemoryStorage",
    "PeerRecord",
    "RedisStorage",
    "Storage",
    "StorageCounts",
    "SwarmMember",
]
