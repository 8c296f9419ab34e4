"""The key layout of the Redis Cluster storage: shards, and the script commands sent to them.

A peer's keys are in peer shard ``{p:K}`` and a swarm's in swarm shard ``{s:K}``, K the CRC-32
of the ID modulo the number of shards (:class:`ShardLayout`); every command of the storage
(:mod:`ppsp.tracker.net.redis_cluster`) is built here as a :class:`Command` for one shard's
slot, a script's ``ARGV[1]`` being the shard's key prefix.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import orjson

from ppsp.tracker.limits import Limits
from ppsp.tracker.net import redis_cluster_scripts as cs
from ppsp.tracker.net import redis_scripts as scripts
from ppsp.tracker.net.redis_cluster_link import Command, slot_of
from ppsp.tracker.net.redis_storage import _list_read, _packed, _pairs
from ppsp.tracker.storage.base import PeerListRead, PeerRecord
from ppsp.tracker.storage.records import address_to_json, stats_field_and_data
from ppsp.wire.tracker import ContentMap, PeerMode, StreamStatistics

__all__ = ["Script", "ShardLayout", "flag", "hash_reply", "text"]


class Script:
    """A Lua script by its SHA1 (sent as ``EVALSHA``, loaded on a node that lacks it)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


P_PUT = Script(cs.P_PUT)
P_DELETE = Script(cs.P_DELETE)
P_DELETE_GUARDED = Script(cs.P_DELETE_GUARDED)
P_EXPIRE = Script(cs.P_EXPIRE)
P_UPDATE = Script(cs.P_UPDATE)
P_JOIN_GUARDED = Script(cs.P_JOIN_GUARDED)
P_JOIN = Script(cs.P_JOIN)
P_COUNTS = Script(cs.P_COUNTS)
P_FIND = Script(cs.P_FIND)
P_REPORT = Script(cs.P_REPORT)
P_AND_MEMBERSHIPS = Script(scripts.PEER_AND_MEMBERSHIPS)
P_STATS = Script(scripts.PUT_STATS)
S_CHECK = Script(cs.S_CHECK)
S_JOIN_NEW = Script(cs.S_JOIN_NEW)
S_WRITE = Script(cs.S_WRITE)
S_LIST = Script(cs.S_LIST)
S_REPORT = Script(cs.S_REPORT)
S_REMOVE = Script(cs.S_REMOVE)
S_CORRUPT = Script(cs.S_CORRUPT)
S_VIEWS = Script(cs.S_VIEWS)
S_COUNTS = Script(cs.S_COUNTS)
S_PAGE = Script(scripts.SWARM_PAGE)


def flag(value: bool) -> str:
    """A script's flag argument."""
    return "1" if value else "0"


def text(value: Any) -> str:
    """A reply item as text (bytes decoded; an integer as its digits)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def hash_reply(reply: Any) -> dict[bytes, bytes]:
    """An ``HGETALL`` reply: a map (RESP3) or a flat list of fields and values (RESP2)."""
    if isinstance(reply, dict):
        return cast("dict[bytes, bytes]", reply)
    return _pairs(cast("list[bytes]", reply))


def record_args(record: PeerRecord) -> list[Any]:
    """A record as the scripts store it: version, state, addresses, deadline, grace, host."""
    addresses = orjson.dumps([address_to_json(a) for a in record.addresses])
    grace = flag(record.grace_used)
    return [record.version.value, record.state.name, addresses, repr(record.deadline), grace,
            record.host]  # fmt: skip


def owner_of(record: PeerRecord) -> str:
    """The ``owner:S`` copy of a record: ``version/host``."""
    return f"{record.version.value}/{record.host}"


def mode_pairs(join: Sequence[tuple[str, PeerMode]]) -> list[str]:
    """(swarm, mode) pairs as flat script arguments."""
    return [item for swarm_id, mode in join for item in (swarm_id, mode.value)]


def refusal(code: str, refused: Sequence[str]) -> str:
    """The bound a change is refused for: the peer's shard's, else a swarm shard's (the
    swarms before the memberships, as on one server)."""
    return code or ("swarms" if "swarms" in refused else refused[0])


class ShardLayout:
    """Where the keys of a peer or a swarm are, with ``n`` shards of each kind under
    ``prefix``, and the commands of the storage's scripts for them."""

    def __init__(self, prefix: str, n: int) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix may not hold { or }")
        self.n = n
        self.prefix = prefix
        self.peer_prefixes = [f"{prefix}{{p:{k}}}" for k in range(n)]
        self.swarm_prefixes = [f"{prefix}{{s:{k}}}" for k in range(n)]
        self.peer_slots = [slot_of(p) for p in self.peer_prefixes]
        self.swarm_slots = [slot_of(p) for p in self.swarm_prefixes]

    def peer(self, peer_id: str) -> int:
        """The peer's shard."""
        return zlib.crc32(peer_id.encode()) % self.n

    def swarm(self, swarm_id: str) -> int:
        """The swarm's shard."""
        return zlib.crc32(swarm_id.encode()) % self.n

    def on_peer(self, peer_id: str, script: Script, *args: Any) -> Command:
        """``script`` in the shard of ``peer_id`` (ARGV[1] the shard's prefix)."""
        k = self.peer(peer_id)
        return Command(
            self.peer_slots[k], (script.sha, self.peer_prefixes[k], *args), script.source
        )

    def on_peer_shard(self, k: int, script: Script, *args: Any) -> Command:
        """``script`` in peer shard ``k``."""
        return Command(
            self.peer_slots[k], (script.sha, self.peer_prefixes[k], *args), script.source
        )

    def on_swarms(self, k: int, script: Script, *args: Any) -> Command:
        """``script`` in swarm shard ``k``."""
        return Command(
            self.swarm_slots[k], (script.sha, self.swarm_prefixes[k], *args), script.source
        )

    def peer_key(self, peer_id: str, kind: str) -> tuple[int, str]:
        """The slot and name of one of the peer's keys (``peer``, ``peerswarms``...)."""
        k = self.peer(peer_id)
        return self.peer_slots[k], f"{self.peer_prefixes[k]}{kind}:{peer_id}"

    def swarm_key(self, swarm_id: str, kind: str) -> tuple[int, str]:
        """The slot and name of one of the swarm's keys (``swarmmaps``, ``suspects``...)."""
        k = self.swarm(swarm_id)
        return self.swarm_slots[k], f"{self.swarm_prefixes[k]}{kind}:{swarm_id}"

    def by_shard(self, swarm_ids: Sequence[str]) -> dict[int, list[str]]:
        """Swarm IDs grouped by shard (in order within each)."""
        groups: dict[int, list[str]] = defaultdict(list)
        for swarm_id in swarm_ids:
            groups[self.swarm(swarm_id)].append(swarm_id)
        return groups

    def peer_bounds(self, limits: Limits | None) -> list[str]:
        """Peers per host, swarms per peer, peers in one shard (all -1: none checked)."""
        if limits is None:
            return ["-1", "-1", "-1"]
        per_host = str(limits.peers_per_host) if limits.per_host else "-1"
        return [per_host, str(limits.swarms_per_peer), str(math.ceil(limits.peers_total / self.n))]

    def swarm_bounds(self, limits: Limits) -> list[str]:
        """Swarms and memberships in one swarm shard."""
        return [
            str(math.ceil(limits.swarms_total / self.n)),
            str(math.ceil(limits.memberships_total / self.n)),
        ]

    def map_bounds(self, limits: Limits | None) -> list[str]:
        """The bounds on the weight of the content maps one swarm shard keeps: per host (the
        whole bound, as peers per host hold per peer shard) and in all (``ceil(total / n)``);
        -1: none."""
        if limits is None:
            return ["-1", "-1"]
        per_host = str(limits.map_bytes_per_host) if limits.per_host else "-1"
        return [per_host, str(math.ceil(limits.map_bytes_total / self.n))]

    def swarm_writes(
        self,
        peer_id: str,
        addresses: bytes,
        owner: str,
        *,
        leave: Sequence[str] = (),
        refresh: Sequence[str] = (),
        join: Sequence[tuple[str, PeerMode]] = (),
        lists: Sequence[str] = (),
        limit: int | None = None,
        with_maps: bool = False,
    ) -> tuple[list[Command], list[int]]:
        """The ``S_WRITE`` commands of a change, one per swarm shard, and their shards."""
        parts: dict[int, tuple[list[str], list[str], list[str], list[str]]] = defaultdict(
            lambda: ([], [], [], [])
        )
        for at, swarm_ids in enumerate((leave, refresh, lists)):
            for swarm_id in swarm_ids:
                parts[self.swarm(swarm_id)][at].append(swarm_id)
        for swarm_id, mode in join:
            parts[self.swarm(swarm_id)][3].extend((swarm_id, mode.value))
        commands: list[Command] = []
        for k, (leaves, refreshes, listed, joins) in parts.items():
            args = [peer_id, addresses, owner, str(limit or 0), flag(with_maps)]
            args += [str(len(leaves)), str(len(refreshes)), str(len(listed))]
            args += [*leaves, *refreshes, *listed, *joins]
            commands.append(self.on_swarms(k, S_WRITE, *args))
        return commands, list(parts)

    def lists_from(
        self, lists: Sequence[str], shards: list[int], results: list[Any], with_maps: bool
    ) -> list[PeerListRead]:
        """Lists read by one script per shard (``results``, of ``shards``), in list order."""
        per_shard = {k: iter(cast("list[Any]", r)) for k, r in zip(shards, results, strict=True)}
        return [_list_read(next(per_shard[self.swarm(s)]), with_maps) for s in lists]

    def swarm_checks(
        self, peer_id: str, leave: Sequence[str], join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
    ) -> list[Command]:  # fmt: skip
        """The ``S_CHECK`` commands of a change that joins swarms (one per shard joined)."""
        joins = self.by_shard([swarm_id for swarm_id, _ in join])
        leaves = self.by_shard(list(leave))
        commands = []
        for k, joined in joins.items():
            left = leaves.get(k, [])
            args = [peer_id, *self.swarm_bounds(limits), str(len(left)), *left, *joined]
            commands.append(self.on_swarms(k, S_CHECK, *args))
        return commands

    def reports(
        self,
        peer_id: str,
        guard: tuple[str, str, bytes, bytes],
        named: Sequence[str],
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        limits: Limits | None = None,
    ) -> list[Command]:
        """The ``S_REPORT`` commands of a report, one per swarm shard it touches; ``guard``:
        check, ip, new addresses, REFLEXIVE address (as the script takes them); the maps kept
        within ``limits`` (:meth:`map_bounds`)."""
        parts: dict[int, tuple[list[str], list[Any], list[Any]]] = defaultdict(lambda: ([], [], []))
        for swarm_id in named:
            parts[self.swarm(swarm_id)][0].append(swarm_id)
        for item in stats:
            if item.swarm_id is not None:
                parts[self.swarm(item.swarm_id)][1].extend(stats_field_and_data(item))
        for content_map in content_maps:
            packed = _packed(content_map, limits)
            parts[self.swarm(content_map.swarm_id)][2].extend((content_map.swarm_id, packed))
        commands = []
        bounds = self.map_bounds(limits)
        for k, (swarms, items, maps) in parts.items():
            args = [peer_id, *guard, str(len(swarms)), *swarms, str(len(items) // 2)]
            commands.append(self.on_swarms(k, S_REPORT, *args, *items, *bounds, *maps))
        return commands

    def removals(self, gone: Sequence[tuple[str, Sequence[str]]]) -> list[Command]:
        """The ``S_REMOVE`` commands ending memberships (peer, its swarms), one per shard."""
        pairs: dict[int, list[str]] = defaultdict(list)
        for peer_id, swarms in gone:
            for swarm_id in swarms:
                pairs[self.swarm(swarm_id)].extend((peer_id, swarm_id))
        return [self.on_swarms(k, S_REMOVE, *args) for k, args in pairs.items()]
