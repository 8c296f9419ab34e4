"""Redis Cluster storage backend: the tracker's state spread over the slots of a cluster.

``--storage redis+cluster://host:port[,host:port...][?shards=N]``.  A Lua script may only
touch keys of one hash slot, so the keys are grouped in shards, each under one hash tag:

* **peer shards** ``{p:K}``, K = CRC-32 of the peer ID mod N: ``peer:ID``, ``peerswarms:ID``,
  ``peerstats:ID`` (peer-wide statistics) as on one server, and the shard's ``deadlines``
  and ``hosts``;
* **swarm shards** ``{s:K}``, K = CRC-32 of the swarm ID mod N: ``swarm:S`` (members),
  ``addrs:S`` and ``owner:S`` (a copy of each member's addresses and ``version/host``, what
  peer lists and corrupt-peer reports read), ``swarmmaps:S``, ``stats:S`` (statistics per
  member), ``reports:S ID``, ``suspects:S``, and the shard's ``swarms``, ``swarmindex``,
  ``memberships``, ``reported`` and ``suspectcount``.

Every key of one swarm is in one slot, and so is every key of one peer.  A request touches
the peer's shard and the shards of the swarms it names; the commands of one step are written
together (:meth:`ClusterLink.batch`: one wait, one command per shard).  Steps per request
(docs/PROTOCOL.md, "Redis Cluster"): FIND, STAT_REPORT and a new peer's CONNECT one; JOIN
two (the bounds are checked in every shard, then written); DISCONNECT and expiry two (the
peer's shard says which swarms it was in).

Bounds are checked per shard: swarms per peer exactly, peers per host per peer shard, and
each total as ``ceil(total / N)`` per shard.  Across shards a change is not atomic: checks
and writes are separate steps, so concurrent changes may pass a bound by what they add
together, and a step that fails half-way (a node lost) leaves the other half written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

from redis.exceptions import RedisError

from ppsp.errors import ServiceUnavailable
from ppsp.tracker.limits import Limits
from ppsp.tracker.net import redis_cluster_shards as sh
from ppsp.tracker.net.redis_cluster_link import ClusterLink, Command, parse_cluster_url, slot_of
from ppsp.tracker.net.redis_cluster_shards import ShardLayout, flag, hash_reply, text
from ppsp.tracker.net.redis_storage import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    MIN_REDIS_VERSION,
    _addresses_arg,
    _build_member,
    _guard_args,
    _guarded_record,
    _list_read,
    _members,
    _pairs,
    _reflexive_arg,
    _version_tuple,
)
from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import (
    Guard,
    MemberView,
    PeerListRead,
    PeerRecord,
    ReportOutcome,
    Storage,
    StorageCounts,
    SwarmMember,
    SwarmPage,
    SwarmView,
    limit_error,
)
from ppsp.tracker.storage.records import (
    decode_addresses,
    decode_record,
    decode_stats,
    stats_field_and_data,
    unpack_content_map,
)
from ppsp.wire.tracker import (
    ContentMap,
    CorruptPeerReport,
    PeerAddress,
    PeerMode,
    StreamStatistics,
)

__all__ = ["RedisClusterStorage"]

UNREMOVED_KEPT = 100_000
"""Memberships of deleted peers kept to be ended again when their swarm shard failed."""

_NO_GUARD = ("0", "", b"", b"")
"""The swarm shards' guard of a write the tracker decided (no host check, addresses kept)."""


def _one_line(exc: BaseException) -> str:
    """An error's text on one line (a storage error is logged and answered in one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class RedisClusterStorage(Storage):
    """Storage in a Redis Cluster named by ``url`` (see the module docstring), keys under
    ``prefix``; ``shards`` (default: the URL's, else 16) must be the same for every tracker
    sharing the cluster, which :meth:`check` verifies.

    Connections are opened lazily; call :meth:`close` when done.  Any Redis failure is raised
    as :class:`~ppsp.errors.ServiceUnavailable`.  A malformed URL raises ValueError.
    """

    guarded = True
    """FIND, STAT_REPORT and CONNECT take one step, on a guess checked in the peer's shard."""

    def __init__(self, url: str, *, prefix: str = "ppsp:", shards: int | None = None) -> None:
        parsed = parse_cluster_url(url)
        self._at = ShardLayout(prefix, shards if shards is not None else parsed.shards)
        self._link = ClusterLink(
            parsed, connect_timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
        )
        self._unremoved: list[tuple[str, list[str]]] = []

    def swarm_shard(self, swarm_id: str) -> str:
        """The key prefix of the swarm's shard, a key of its hash slot (``ppsp:{s:K}``)."""
        return self._at.swarm_prefixes[self._at.swarm(swarm_id)]

    def peer_shard(self, peer_id: str) -> str:
        """The key prefix of the peer's shard, a key of its hash slot (``ppsp:{p:K}``)."""
        return self._at.peer_prefixes[self._at.peer(peer_id)]

    async def _batch(self, commands: Sequence[Command]) -> list[Any]:
        """One step: every command written, then every answer awaited."""
        if not commands:
            return []
        return await self._guarded(self._link.batch(commands))

    async def _guarded(self, pending: Awaitable[list[Any]]) -> list[Any]:
        try:
            return await pending
        except (RedisError, OSError, ConnectionError, TimeoutError) as exc:
            raise ServiceUnavailable(f"storage unavailable: {_one_line(exc)}") from exc

    async def _remove(self, gone: Sequence[tuple[str, Sequence[str]]]) -> None:
        """End the memberships of deleted peers in their swarm shards (one step), with those
        an earlier step could not end (a node lost half-way): kept, at most
        :data:`UNREMOVED_KEPT`, and tried again here, so that no list names them for long."""
        ending = [*self._unremoved, *((p, list(s)) for p, s in gone if s)]
        self._unremoved = []
        try:
            await self._batch(self._at.removals(ending))
        except ServiceUnavailable:
            self._unremoved = ending[-UNREMOVED_KEPT:]
            raise

    async def _per_peer_shard(self, script: sh.Script, *args: Any) -> list[Any]:
        """``script`` in every peer shard: one step."""
        at = self._at
        return await self._batch([at.on_peer_shard(k, script, *args) for k in range(at.n)])

    # -- changes ----------------------------------------------------------------------------

    async def _change(
        self,
        record: PeerRecord,
        leave: Sequence[str],
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits | None,
    ) -> None:
        """A bounded change (:meth:`update`): the checks, then the writes; in one step when
        no swarm is joined (no swarm shard to check)."""
        at, peer_id = self._at, record.peer_id
        checked = limits is not None and bool(join)
        joins = sh.mode_pairs(join)
        rec = sh.record_args(record)
        tail = [str(len(leave)), *leave, *joins]
        first = [
            at.on_peer(peer_id, sh.P_UPDATE, peer_id, *rec, *at.peer_bounds(limits),
                       flag(not checked), "0", *tail)
        ]  # fmt: skip
        if checked:
            assert limits is not None
            first.extend(at.swarm_checks(peer_id, leave, join, limits))
        results = await self._batch(first)
        peer = cast("list[Any]", results[0])
        code, refused = text(peer[0]), [text(r) for r in results[1:] if r]
        if code or refused:
            assert limits is not None
            raise limit_error(sh.refusal(code, refused), limits)
        refresh: list[str] = []
        if peer[2]:  # the version, addresses or host changed: so do the copies
            gone = set(leave) | {swarm_id for swarm_id, _ in join}
            refresh = [s for s in (text(x) for x in peer[1]) if s not in gone]
        second: list[Command] = []
        if checked:
            unbounded = ["-1", "-1", "-1", "1", "0"]
            second.append(at.on_peer(peer_id, sh.P_UPDATE, peer_id, *rec, *unbounded, *tail))
        writes, _ = at.swarm_writes(
            peer_id, rec[2], sh.owner_of(record), leave=leave, refresh=refresh, join=join
        )
        await self._batch(second + writes)

    async def get_peer(self, peer_id: str) -> PeerRecord | None:
        """The peer's record, or None when it is not registered."""
        slot, key = self._at.peer_key(peer_id, "peer")
        (flat,) = await self._batch([Command(slot, ("HGETALL", key))])
        return decode_record(peer_id, hash_reply(flat)) if flat else None

    async def put_peer(self, record: PeerRecord) -> None:
        """Create or replace the peer's record (and its deadline); the copies follow."""
        await self._batch(await self._put(record, ()))

    async def _put(self, record: PeerRecord, wide: Sequence[StreamStatistics]) -> list[Command]:
        """The record and peer-wide statistics written (one step); the commands rewriting the
        swarms' copies when the version, addresses or host changed, for the next step."""
        stats = [x for item in wide for x in stats_field_and_data(item)]
        rec = sh.record_args(record)
        put = self._at.on_peer(record.peer_id, sh.P_PUT, record.peer_id, *rec, str(len(wide)))
        put.args += tuple(stats)
        (out,) = await self._batch([put])
        swarms = [text(s) for s in out[1]]
        if not out[0] or not swarms:
            return []
        owner = sh.owner_of(record)
        return self._at.swarm_writes(record.peer_id, rec[2], owner, refresh=swarms)[0]

    async def peer_and_memberships(
        self, peer_id: str
    ) -> tuple[PeerRecord | None, dict[str, PeerMode]]:
        """The peer's record and memberships: one script in its shard."""
        (raw,) = await self._batch([self._at.on_peer(peer_id, sh.P_AND_MEMBERSHIPS, peer_id)])
        record_flat, swarms_flat = cast("list[list[bytes]]", raw)
        if not record_flat:
            return None, {}
        joined = {
            swarms_flat[i].decode(): PeerMode(swarms_flat[i + 1].decode())
            for i in range(0, len(swarms_flat), 2)
        }
        return decode_record(peer_id, _pairs(record_flat)), joined

    async def put_report(
        self,
        record: PeerRecord,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        *,
        limits: Limits | None = None,
    ) -> None:
        """The record and peer-wide statistics, then the swarms' statistics and maps (within
        ``limits``, per swarm shard)."""
        writes = await self._put(record, [item for item in stats if item.swarm_id is None])
        writes += self._at.reports(record.peer_id, _NO_GUARD, (), stats, content_maps, limits)
        await self._batch(writes)

    async def update(
        self,
        record: PeerRecord,
        *,
        leave: Sequence[str] = (),
        join: Sequence[tuple[str, PeerMode]] = (),
        limits: Limits | None = None,
    ) -> None:
        """Write the record, leave and join swarms, checking ``limits`` in every shard."""
        await self._change(record, leave, join, limits)

    async def register_new(
        self,
        record: PeerRecord,
        *,
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
        lists: Sequence[str],
        limit: int | None,
        with_maps: bool,
    ) -> list[PeerListRead] | None:
        """A new peer's CONNECT and its peer lists (None when the peer is registered): one
        step, the peer's shard writing the record and each swarm shard its joins and lists.
        When either refuses (the peer is registered, a bound), a second step undoes what the
        other wrote."""
        at, peer_id = self._at, record.peer_id
        rec = sh.record_args(record)
        joins, listed = at.by_shard([s for s, _ in join]), at.by_shard(list(lists))
        modes = dict(join)
        shards = list(dict.fromkeys([*joins, *listed]))
        bounds = at.peer_bounds(limits)
        commands = [
            at.on_peer(peer_id, sh.P_UPDATE, peer_id, *rec, *bounds, "1", "1", "0",
                       *sh.mode_pairs(join))
        ]  # fmt: skip
        for k in shards:
            mine = listed.get(k, [])
            args = [peer_id, rec[2], sh.owner_of(record), *at.swarm_bounds(limits)]
            args += [str(limit or 0), flag(with_maps), str(len(mine)), *mine]
            args += [x for s in joins.get(k, []) for x in (s, modes[s].value)]
            commands.append(at.on_swarms(k, sh.S_JOIN_NEW, *args))
        results = await self._batch(commands)
        code = text(results[0][0])
        refused = [text(r[0]) for r in results[1:] if text(r[0])]
        if code or refused:
            undo: list[Command] = []
            if not code:  # the record was written: the peer was new, it goes again
                undo.append(at.on_peer(peer_id, sh.P_DELETE, peer_id))
            joined = [(peer_id, [text(s) for s in r[1]]) for r in results[1:] if not text(r[0])]
            undo.extend(at.removals(joined))
            try:
                await self._batch(undo)
            except ServiceUnavailable:
                self._unremoved = [*self._unremoved, *joined][-UNREMOVED_KEPT:]
                raise
            if code == "exists":
                return None
            raise limit_error(sh.refusal(code, refused), limits)
        return at.lists_from(lists, shards, [r[2] for r in results[1:]], with_maps)

    async def find_guarded(
        self,
        peer_id: str,
        swarm_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        limit: int | None,
        with_maps: bool,
    ) -> tuple[PeerRecord, PeerListRead | None] | None:
        """A FIND on a guess: the peer's shard checks and writes, the swarm's shard lists (and
        rewrites the peer's copy there): two commands, one step."""
        at = self._at
        guard_args = _guard_args(guard)
        new, reflex = _addresses_arg(addresses), _reflexive_arg(reflexive)
        found = at.on_peer(peer_id, sh.P_FIND, peer_id, swarm_id, *guard_args, state.name)
        found.args += (new, reflex, repr(deadline))
        listing: list[Any] = [
            swarm_id,
            "-1" if limit is None else str(limit),
            flag(with_maps),
            peer_id,
        ]
        listing += [guard_args[2], guard_args[3], new, reflex]
        raw, listed = await self._batch(
            [found, at.on_swarms(at.swarm(swarm_id), sh.S_LIST, *listing)]
        )
        if not raw:
            return None
        await self._follow(peer_id, raw, (swarm_id,))
        record = _guarded_record(peer_id, state, deadline, cast("list[Any]", raw))
        return record, (_list_read(listed, with_maps) if limit is not None else None)

    async def _follow(self, peer_id: str, raw: list[Any], done: Sequence[str]) -> None:
        """After a guarded rewrite that changed the peer's addresses (``{version, addresses,
        host, swarms}``), rewrite its copy in every swarm but those of ``done`` (a second
        step; none when the addresses did not change, the usual case)."""
        others = [s for s in (text(x) for x in raw[3]) if s not in done]
        if others:
            version, addresses, host = (text(x) for x in raw[:3])
            owner = f"{version}/{host}"
            await self._batch(
                self._at.swarm_writes(peer_id, addresses.encode(), owner, refresh=others)[0]
            )

    async def report_guarded(
        self,
        peer_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        stats: Sequence[StreamStatistics],
        content_maps: Sequence[ContentMap],
        limits: Limits | None = None,
    ) -> PeerRecord | None:
        """A STAT_REPORT on a guess: the peer's shard checks and writes the record (and
        peer-wide statistics), each swarm shard named writes its part for a member: one
        step."""
        guard_args = _guard_args(guard)
        new, reflex = _addresses_arg(addresses), _reflexive_arg(reflexive)
        wide = [x for s in stats if s.swarm_id is None for x in stats_field_and_data(s)]
        args = [peer_id, str(len(guard.swarms)), *guard_args, state.name, new, reflex]
        args += [repr(deadline), *guard.swarms, str(len(wide) // 2), *wide]
        swarm_guard = (guard_args[2], guard_args[3], new, reflex)
        commands = [self._at.on_peer(peer_id, sh.P_REPORT, *args)]
        commands += self._at.reports(
            peer_id, swarm_guard, guard.swarms, stats, content_maps, limits
        )
        raw = (await self._batch(commands))[0]
        if not raw:
            return None
        await self._follow(peer_id, raw, guard.swarms)
        return _guarded_record(peer_id, state, deadline, cast("list[Any]", raw))

    async def join_guarded(
        self,
        peer_id: str,
        guard: Guard,
        *,
        state: PeerState,
        addresses: tuple[PeerAddress, ...] | None,
        reflexive: PeerAddress,
        deadline: float,
        join: Sequence[tuple[str, PeerMode]],
        limits: Limits,
        lists: Sequence[str],
        limit: int | None,
        with_maps: bool,
    ) -> tuple[PeerRecord, list[PeerListRead]] | None:
        """A JOIN on a guess: the checks (the peer's shard, the shards joined), then the
        writes and lists: two steps (a swarm's copy needs the record's addresses)."""
        at = self._at
        joins = sh.mode_pairs(join)
        args = [peer_id, *_guard_args(guard), state.name, _addresses_arg(addresses)]
        args += [_reflexive_arg(reflexive), repr(deadline), *at.peer_bounds(limits), *joins]
        first = [at.on_peer(peer_id, sh.P_JOIN_GUARDED, *args)]
        first += at.swarm_checks(peer_id, (), join, limits)
        results = await self._batch(first)
        peer = cast("list[Any]", results[0])
        code = text(peer[0])
        if code == "guess":
            return None
        refused = [text(r) for r in results[1:] if r]
        if code or refused:
            raise limit_error(sh.refusal(code, refused), limits)
        version, written, host = (text(x) for x in peer[1])
        record = _guarded_record(peer_id, state, deadline, peer[1])
        joined = {swarm_id for swarm_id, _ in join}
        refresh = [s for s in (text(x) for x in peer[2]) if s not in joined]
        rec = [version, state.name, written, repr(deadline), "0", host]
        unbounded = ["-1", "-1", "-1", "1", "0", "0"]
        second = [at.on_peer(peer_id, sh.P_UPDATE, peer_id, *rec, *unbounded, *joins)]
        writes, shards = at.swarm_writes(
            peer_id, written.encode(), f"{version}/{host}", refresh=refresh, join=join,
            lists=lists, limit=limit, with_maps=with_maps,
        )  # fmt: skip
        results = await self._batch(second + writes)
        return record, at.lists_from(lists, shards, results[1:], with_maps)

    async def delete_guarded(self, peer_id: str, guard: Guard) -> bool | None:
        """A DISCONNECT on a guess: the peer's shard checks and deletes, then the shards of its
        swarms drop it (two steps: only the peer's shard knows its swarms)."""
        (raw,) = await self._batch(
            [self._at.on_peer(peer_id, sh.P_DELETE_GUARDED, peer_id, *_guard_args(guard))]
        )
        if not raw:
            return None
        await self._remove([(peer_id, [text(s) for s in raw[1]])])
        return True

    async def peers_of_host(self, host: str) -> int:
        """How many stored peers ``host`` registered (its count in every peer shard)."""
        if not host:
            return 0
        at = self._at
        held = await self._batch(
            [Command(slot, ("HGET", f"{p}hosts", host))
             for p, slot in zip(at.peer_prefixes, at.peer_slots, strict=True)]
        )  # fmt: skip
        return sum(int(x) for x in held if x is not None)

    async def delete_peer(self, peer_id: str) -> bool:
        """Remove the peer from every swarm and forget it."""
        (raw,) = await self._batch([self._at.on_peer(peer_id, sh.P_DELETE, peer_id)])
        await self._remove([(peer_id, [text(s) for s in raw[1]])])
        return bool(raw[0])

    async def memberships(self, peer_id: str) -> dict[str, PeerMode]:
        """The swarms the peer has joined, with its mode in each."""
        slot, key = self._at.peer_key(peer_id, "peerswarms")
        (flat,) = await self._batch([Command(slot, ("HGETALL", key))])
        return {k.decode(): PeerMode(v.decode()) for k, v in hash_reply(flat).items()}

    async def join(self, swarm_id: str, peer_id: str, mode: PeerMode) -> None:
        """Add a registered peer to a swarm (no-op for an unregistered peer)."""
        args = (peer_id, swarm_id, mode.value)
        (raw,) = await self._batch([self._at.on_peer(peer_id, sh.P_JOIN, *args)])
        if raw:
            version, addresses, host = (text(x) for x in raw)
            owner = f"{version}/{host}"
            join = [(swarm_id, mode)]
            writes, _ = self._at.swarm_writes(peer_id, addresses.encode(), owner, join=join)
            await self._batch(writes)

    async def leave(self, swarm_id: str, peer_id: str) -> bool:
        """Remove the peer from the swarm with its content map and statistics there."""
        slot, key = self._at.peer_key(peer_id, "peerswarms")
        (removal,) = self._at.removals([(peer_id, [swarm_id])])
        _, left = await self._batch([Command(slot, ("HDEL", key, swarm_id)), removal])
        return bool(left)

    async def members(
        self, swarm_id: str, *, limit: int | None = None, with_maps: bool = False
    ) -> list[SwarmMember]:
        """Members of the swarm (all, or a random sample of at most ``limit``)."""
        args = [swarm_id, str(limit or 0), flag(with_maps), "", "0", "", "", ""]
        (raw,) = await self._batch([self._at.on_swarms(self._at.swarm(swarm_id), sh.S_LIST, *args)])
        return _members(cast("list[bytes]", raw[0]), with_maps)

    async def put_content_map(
        self, peer_id: str, content_map: ContentMap, *, limits: Limits | None = None
    ) -> bool:
        """Store the peer's content map for its swarm within ``limits`` (per swarm shard);
        False when not a member or not kept."""
        reports = self._at.reports(peer_id, _NO_GUARD, (), (), (content_map,), limits)
        (written,) = await self._batch(reports)
        return bool(written)

    async def get_content_map(self, swarm_id: str, peer_id: str) -> ContentMap | None:
        """The peer's latest content map in the swarm, if any."""
        slot, key = self._at.swarm_key(swarm_id, "swarmmaps")
        (raw,) = await self._batch([Command(slot, ("HGET", key, peer_id))])
        return unpack_content_map(cast(bytes, raw)) if raw is not None else None

    async def put_stats(self, peer_id: str, stats: StreamStatistics) -> None:
        """Store the latest statistics of the peer: peer-wide ones in its shard, those of a
        swarm in the swarm's shard (for a member only)."""
        if stats.swarm_id is None:
            field, data = stats_field_and_data(stats)
            await self._batch([self._at.on_peer(peer_id, sh.P_STATS, peer_id, field, data)])
        else:
            await self._batch(self._at.reports(peer_id, _NO_GUARD, (), (stats,), ()))

    async def add_corrupt_reports(
        self,
        reporter_id: str,
        reporter_host: str,
        reports: Sequence[CorruptPeerReport],
        limits: Limits,
    ) -> list[ReportOutcome]:
        """Count corrupt-peer reports (obligation 13): one script per swarm shard, one step."""
        if not reports:
            return []
        at = self._at
        shards: dict[int, list[int]] = {}
        for index, report in enumerate(reports):
            shards.setdefault(at.swarm(report.swarm_id), []).append(index)
        commands = []
        for k, indexes in shards.items():
            args = [reporter_id, reporter_host, str(limits.suspect_reporters)]
            args.append(str(limits.reporters_kept))
            for r in (reports[i] for i in indexes):
                args += [r.swarm_id, r.peer_id, r.ip, str(r.port), str(r.corrupt_chunks)]
            commands.append(at.on_swarms(k, sh.S_CORRUPT, *args))
        results = await self._batch(commands)
        outcomes: dict[int, ReportOutcome] = {}
        for indexes, result in zip(shards.values(), results, strict=True):
            for index, item in zip(indexes, cast("list[bytes]", result), strict=True):
                outcomes[index] = ReportOutcome(item.decode())
        return [outcomes[index] for index in range(len(reports))]

    async def suspects(self, swarm_id: str) -> frozenset[str]:
        """Members of the swarm reported by enough distinct hosts."""
        slot, key = self._at.swarm_key(swarm_id, "suspects")
        (raw,) = await self._batch([Command(slot, ("SMEMBERS", key))])
        return frozenset(item.decode() for item in cast("list[bytes]", raw))

    async def corrupt_reporters(self, swarm_id: str, peer_id: str) -> dict[str, int]:
        """The reporter hosts counted for ``peer_id`` in the swarm."""
        slot, key = self._at.swarm_key(swarm_id, "reports")
        (flat,) = await self._batch([Command(slot, ("HGETALL", f"{key} {peer_id}"))])
        return {k.decode(): int(v) for k, v in hash_reply(flat).items()}

    async def get_stats(self, peer_id: str) -> tuple[StreamStatistics, ...]:
        """The latest statistics of the peer: peer-wide ones from its shard, then those of each
        of its swarms from the swarm's shard (two steps)."""
        slot, key = self._at.peer_key(peer_id, "peerstats")
        _, joined = self._at.peer_key(peer_id, "peerswarms")
        wide, swarms = await self._batch(
            [Command(slot, ("HGETALL", key)), Command(slot, ("HKEYS", joined))]
        )
        found = [decode_stats(v) for v in hash_reply(wide).values()]
        reads = []
        for swarm_id in (text(s) for s in swarms):
            s_slot, s_key = self._at.swarm_key(swarm_id, "stats")
            reads.append(Command(s_slot, ("HGET", s_key, peer_id)))
        found.extend(decode_stats(v) for v in await self._batch(reads) if v is not None)
        return tuple(found)

    async def swarm_page(self, offset: int, limit: int) -> SwarmPage:
        """A page of swarm IDs in code-point order: the first ``offset + limit`` of every
        swarm shard, merged (one step)."""
        offset, limit = max(0, offset), max(0, limit)
        at = self._at
        results = await self._batch(
            [at.on_swarms(k, sh.S_PAGE, "0", str(offset + limit)) for k in range(at.n)]
        )
        total = sum(int(r[0]) for r in results)
        ids = sorted(item for r in results for item in cast("list[bytes]", r[1]))
        page = ids[offset : offset + limit] if limit else []
        return SwarmPage(total=total, swarm_ids=tuple(i.decode() for i in page))

    async def swarm_views(
        self, swarm_ids: Sequence[str], *, limit: int, maps: int = 0
    ) -> list[SwarmView]:
        """Each swarm's member count and (a sample of) its members: one script per shard."""
        if not swarm_ids:
            return []
        groups = self._at.by_shard(swarm_ids)
        bounds = (str(max(0, limit)), str(max(0, maps)))
        results = await self._batch(
            [self._at.on_swarms(k, sh.S_VIEWS, *bounds, *ids) for k, ids in groups.items()]
        )
        answers = {k: iter(cast("list[Any]", r)) for k, r in zip(groups, results, strict=True)}
        views: list[SwarmView] = []
        for swarm_id in swarm_ids:
            count, flat = next(answers[self._at.swarm(swarm_id)])
            rows = cast("list[bytes]", flat)
            sample = tuple(
                MemberView(
                    member=_build_member(
                        peer_id=rows[at].decode(),
                        mode=PeerMode(rows[at + 1].decode()),
                        addresses=decode_addresses(rows[at + 2]),
                        content_map=unpack_content_map(rows[at + 4]) if rows[at + 4] else None,
                    ),
                    stats=decode_stats(rows[at + 3]) if rows[at + 3] else None,
                )
                for at in range(0, len(rows), 5)
            )
            views.append(SwarmView(swarm_id=swarm_id, members=int(count), sample=sample))
        return views

    async def expire(self, now: float) -> list[str]:
        """Delete every peer whose deadline is at or before ``now``; return their IDs."""
        return (await self.expire_next(now))[0]

    async def expire_next(self, now: float) -> tuple[list[str], float | None]:
        """Expiry in every peer shard (one step), then the memberships of the expired peers
        in their swarm shards (a second step, when a peer in a swarm expired); the next
        deadline."""
        results = await self._per_peer_shard(sh.P_EXPIRE, repr(now))
        expired: list[str] = []
        gone: list[tuple[str, list[str]]] = []
        heads: list[float] = []
        for ids, swarms, head in results:
            for peer_id, joined in zip(ids, swarms, strict=True):
                expired.append(text(peer_id))
                gone.append((text(peer_id), [text(s) for s in joined]))
            if head:
                heads.append(float(head))
        await self._remove(gone)
        return expired, (min(heads) if heads else None)

    async def next_deadline(self) -> float | None:
        """The earliest deadline of a stored peer (of every peer shard)."""
        return (await self._peer_counts())[2]

    async def _peer_counts(self) -> tuple[int, int, float | None]:
        results = await self._per_peer_shard(sh.P_COUNTS)
        heads = [float(head) for _, _, head in results if head]
        peers, hosts = (sum(int(r[i]) for r in results) for i in range(2))
        return peers, hosts, (min(heads) if heads else None)

    async def counts(self) -> StorageCounts:
        """How many peers, non-empty swarms and memberships are stored (summed over shards;
        a host with peers in several peer shards counts once in each)."""
        peers, hosts, _ = await self._peer_counts()
        at = self._at
        results = await self._batch([at.on_swarms(k, sh.S_COUNTS) for k in range(at.n)])
        swarms, memberships, reported, suspects, map_bytes = (
            sum(int(r[i]) for r in results) for i in range(5)
        )
        return StorageCounts(
            peers=peers,
            swarms=swarms,
            memberships=memberships,
            hosts=hosts,
            reported=reported,
            suspects=suspects,
            map_bytes=map_bytes,
        )

    async def check(self) -> None:
        """Raise ServiceUnavailable unless every primary answers and is recent enough, and the
        cluster's keys (if any) were written with this number of shards."""
        for info in await self._guarded(self._link.any_node("INFO", "server")):
            lines = text(info).splitlines()
            found = [line.split(":", 1)[1] for line in lines if line.startswith("redis_version:")]
            version = found[0].strip() if found else ""
            if _version_tuple(version) < MIN_REDIS_VERSION:
                wanted = ".".join(map(str, MIN_REDIS_VERSION))
                raise ServiceUnavailable(
                    f"Redis {wanted} or later is needed, a node of the cluster is {version}"
                )
        key, layout = f"{self._at.prefix}{{layout}}", f"shards={self._at.n}"
        _, held = await self._batch(
            [
                Command(slot_of(key), ("SET", key, layout, "NX")),
                Command(slot_of(key), ("GET", key)),
            ]
        )
        if held is not None and text(held) != layout:
            raise ServiceUnavailable(
                f"the cluster holds keys of {text(held)}, this tracker uses {layout}"
            )

    async def close(self) -> None:
        """Close every connection."""
        await self._link.close()
