"""Round trips to Redis per request kind: one each (docs/PROTOCOL.md, "Storage").

Every command written to Redis is counted, on a real redis-server, through the tracker core:
those of the pipelined link (:meth:`RedisLink.call`) and those redis-py writes
(``send_packed_command``: one call per command, one per pipeline).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection

from ppsp.errors import Forbidden
from ppsp.tracker.core import Tracker
from ppsp.tracker.net.redis_cluster import RedisClusterStorage
from ppsp.tracker.net.redis_cluster_link import ClusterLink
from ppsp.tracker.net.redis_link import RedisLink
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.wire.tracker import (
    DisconnectScope,
    FindRequest,
    PeerNum,
    ProtocolVersion,
    StreamStatistics,
)
from tracker.storage.redis_cluster import RedisCluster
from tracker.test_core import CONFIG, JOIN, LEECH, SEED, Client, content_map, host, observed

MOST = 1
"""Round trips a request may take."""


class Counter:
    """How many commands and pipelines redis-py wrote since :meth:`reset`."""

    def __init__(self) -> None:
        self.sent = 0

    def reset(self) -> None:
        """Start counting from zero."""
        self.sent = 0


@pytest.fixture
async def counted(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Tracker, Counter]]:
    """A tracker on Redis whose round trips are counted."""
    counter = Counter()
    send = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        counter.sent += 1
        await send(self, *args, **kwargs)

    call = RedisLink.call

    async def counting_call(self: RedisLink, *args: Any) -> Any:
        counter.sent += 1
        return await call(self, *args)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    monkeypatch.setattr(RedisLink, "call", counting_call)
    storage = RedisStorage(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield Tracker(storage, CONFIG), counter
    finally:
        await storage.close()


def find_request(peer_id: str) -> FindRequest:
    """A FIND of swarm ``s``."""
    return FindRequest(
        version=ProtocolVersion.V1_1, transaction_id="99", peer_id=peer_id, swarm_id="s"
    )


async def trips(counter: Counter, call: Callable[[], Awaitable[object]]) -> int:
    """The round trips ``call`` takes (its scripts already loaded)."""
    counter.reset()
    await call()
    return counter.sent


async def test_one_round_trip_per_request_kind(counted: tuple[Tracker, Counter]) -> None:
    tracker, counter = counted
    seeder, leecher = Client(tracker, "seeder"), Client(tracker, "leecher")
    other = Client(tracker, "other")
    # Load every script once (the first call of each is EVALSHA, SCRIPT LOAD, EVALSHA).
    await other.connect(1.0, ("warm", JOIN, SEED))
    await other.find(1.0, "warm")
    await Client(tracker, "warm-joiner").connect(1.0)
    await Client(tracker, "warm-joiner").join(1.0, ("warm", LEECH))
    await other.report(1.0, maps=(content_map("warm", [1]),))
    await other.disconnect(1.0, DisconnectScope.SYSTEM)
    await tracker.expire(1.0)

    kinds: dict[str, int] = {}
    kinds["CONNECT (join as seeder)"] = await trips(
        counter,
        lambda: seeder.connect(2.0, ("s", JOIN, SEED)),
    )
    kinds["CONNECT (join as leecher, peer list)"] = await trips(
        counter,
        lambda: leecher.connect(2.0, ("s", JOIN, LEECH)),
    )
    joiner = Client(tracker, "joiner")
    kinds["CONNECT (register only)"] = await trips(counter, lambda: joiner.connect(2.0))
    kinds["JOIN"] = await trips(counter, lambda: joiner.join(2.0, ("s", LEECH)))
    kinds["FIND"] = await trips(counter, lambda: leecher.find(3.0, "s"))
    kinds["FIND (PeerNum)"] = await trips(
        counter, lambda: leecher.find(3.0, "s", peer_num=PeerNum(count=5))
    )
    kinds["STAT_REPORT (keep-alive)"] = await trips(counter, lambda: leecher.report(4.0))
    kinds["STAT_REPORT (statistics, content map)"] = await trips(
        counter,
        lambda: leecher.report(
            4.0,
            stats=(StreamStatistics(swarm_id="s", uploaded_bytes=1, downloaded_bytes=2),),
            maps=(content_map("s", [0, 1]),),
        ),
    )
    kinds["DISCONNECT"] = await trips(
        counter, lambda: leecher.disconnect(5.0, DisconnectScope.SYSTEM)
    )
    kinds["expiry"] = await trips(counter, lambda: tracker.expire(1000.0))
    assert await tracker.storage.get_peer("seeder") is None  # the expiry did expire
    over = {kind: n for kind, n in kinds.items() if n > MOST}
    assert not over, f"round trips per request above {MOST}: {over} (all: {kinds})"


async def test_wrong_guess_takes_the_ordinary_path(counted: tuple[Tracker, Counter]) -> None:
    """A request the guess does not fit (a FIND of a swarm not joined) is answered as before:
    refused, and nothing was written by the guess."""
    tracker, _ = counted
    peer = Client(tracker, "peer")
    await peer.connect(1.0, ("s", JOIN, LEECH))
    before = await tracker.storage.get_peer("peer")
    with pytest.raises(Forbidden):
        await peer.find(2.0, "elsewhere")
    after = await tracker.storage.get_peer("peer")
    assert before is not None and after is not None
    # The refusal's grace (error policy) changed the record, the guess did not.
    assert after.state is before.state and after.grace_used


async def test_a_new_port_of_the_same_host_is_one_round_trip(
    counted: tuple[Tracker, Counter],
) -> None:
    """A FIND from another source port of the registering host: one round trip, and the
    stored REFLEXIVE address is the new one (the script replaces it as the tracker would)."""
    tracker, counter = counted
    peer = Client(tracker, "peer")
    await peer.connect(1.0, ("s", JOIN, LEECH))
    await peer.find(1.0, "s")  # scripts loaded
    ip, _ = observed("peer")
    counter.reset()
    await tracker.handle(find_request("peer"), observed=(ip, 41234), now=2.0)
    assert counter.sent == 1
    stored = await tracker.storage.get_peer("peer")
    assert stored is not None
    assert (stored.addresses[-1].ip, stored.addresses[-1].port) == (ip, 41234)
    assert stored.addresses[:-1] == (host("peer"),)
    assert stored.deadline == 2.0 + CONFIG.track_timeout


# -- Redis Cluster ------------------------------------------------------------------------------


class Steps:
    """Waits (:meth:`ClusterLink.batch`: commands written together, then awaited) and
    commands written to the cluster's nodes since :meth:`reset`."""

    def __init__(self) -> None:
        self.waits = 0
        self.commands = 0

    def reset(self) -> None:
        """Start counting from zero."""
        self.waits = self.commands = 0


@pytest.fixture
async def counted_cluster(
    cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Tracker, Steps]]:
    """A tracker on the session's Redis Cluster whose waits and commands are counted."""
    steps = Steps()
    batch = ClusterLink.batch
    call = RedisLink.call
    send = AbstractConnection.send_packed_command

    async def counting_batch(self: ClusterLink, commands: Any) -> Any:
        steps.waits += 1
        return await batch(self, commands)

    async def counting_call(self: RedisLink, *args: Any) -> Any:
        steps.commands += 1
        return await call(self, *args)

    async def counting_send(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        steps.commands += 1  # redis-py's own commands (the map of slots)
        await send(self, *args, **kwargs)

    monkeypatch.setattr(ClusterLink, "batch", counting_batch)
    monkeypatch.setattr(RedisLink, "call", counting_call)
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    storage = RedisClusterStorage(cluster.url, prefix=f"test:{uuid.uuid4().hex}:", shards=SHARDS)
    try:
        yield Tracker(storage, CONFIG), steps
    finally:
        await storage.close()


SHARDS = 16
"""Peer and swarm shards of the counted cluster storage (the default)."""

CLUSTER_STEPS = {
    "CONNECT (join as seeder)": (1, 2),
    "CONNECT (join as leecher, peer list)": (1, 2),
    "CONNECT (register only)": (1, 1),
    "JOIN": (2, 4),
    "FIND": (1, 2),
    "FIND (PeerNum)": (1, 2),
    "STAT_REPORT (keep-alive)": (1, 1),
    "STAT_REPORT (statistics, content map)": (1, 2),
    "DISCONNECT": (2, 2),
    "expiry": (2, SHARDS + 1),
}
"""(waits, commands) per request kind on a cluster, as docs/PROTOCOL.md ("Redis Cluster")
counts them: the peer's shard and the swarm's shard are two commands, written together."""


async def request_steps(tracker: Tracker, steps: Steps) -> dict[str, tuple[int, int]]:
    """The (waits, commands) of each request kind, counted as the single-server test does."""
    seeder, leecher = Client(tracker, "seeder"), Client(tracker, "leecher")
    other = Client(tracker, "other")
    # Load every script on every node (the first call of each may be EVALSHA, SCRIPT LOAD,
    # EVALSHA) and read the map of slots.
    await other.connect(1.0, ("warm", JOIN, SEED))
    await other.find(1.0, "warm")
    await Client(tracker, "warm-joiner").connect(1.0)
    await Client(tracker, "warm-joiner").join(1.0, ("warm", LEECH))
    await other.report(1.0, maps=(content_map("warm", [1]),))
    await other.disconnect(1.0, DisconnectScope.SYSTEM)
    for peer in range(40):  # a script of each kind in every shard
        client = Client(tracker, f"warm{peer}")
        await client.connect(1.0, (f"warm{peer}", JOIN, SEED))
        await client.find(1.0, f"warm{peer}")
        await client.report(1.0, maps=(content_map(f"warm{peer}", [1]),))
        await Client(tracker, f"joiner{peer}").connect(1.0)
        await Client(tracker, f"joiner{peer}").join(1.0, (f"warm{peer}", LEECH))
        await client.disconnect(1.0, DisconnectScope.SYSTEM)
    await tracker.expire(1.0)
    await tracker.expire(1000.0)

    async def counted(call: Callable[[], Awaitable[object]]) -> tuple[int, int]:
        steps.reset()
        await call()
        return steps.waits, steps.commands

    kinds: dict[str, tuple[int, int]] = {}
    kinds["CONNECT (join as seeder)"] = await counted(
        lambda: seeder.connect(2000.0, ("s", JOIN, SEED))
    )
    kinds["CONNECT (join as leecher, peer list)"] = await counted(
        lambda: leecher.connect(2000.0, ("s", JOIN, LEECH))
    )
    joiner = Client(tracker, "joiner")
    kinds["CONNECT (register only)"] = await counted(lambda: joiner.connect(2000.0))
    kinds["JOIN"] = await counted(lambda: joiner.join(2000.0, ("s", LEECH)))
    kinds["FIND"] = await counted(lambda: leecher.find(2001.0, "s"))
    kinds["FIND (PeerNum)"] = await counted(
        lambda: leecher.find(2001.0, "s", peer_num=PeerNum(count=5))
    )
    kinds["STAT_REPORT (keep-alive)"] = await counted(lambda: leecher.report(2002.0))
    kinds["STAT_REPORT (statistics, content map)"] = await counted(
        lambda: leecher.report(
            2002.0,
            stats=(StreamStatistics(swarm_id="s", uploaded_bytes=1, downloaded_bytes=2),),
            maps=(content_map("s", [0, 1]),),
        )
    )
    kinds["DISCONNECT"] = await counted(lambda: leecher.disconnect(2003.0, DisconnectScope.SYSTEM))
    kinds["expiry"] = await counted(lambda: tracker.expire(3000.0))
    assert await tracker.storage.get_peer("seeder") is None  # the expiry did expire
    return kinds


async def test_steps_per_request_kind_on_a_cluster(
    counted_cluster: tuple[Tracker, Steps],
) -> None:
    """Each request kind takes the waits and commands docs/PROTOCOL.md says, no more."""
    tracker, steps = counted_cluster
    kinds = await request_steps(tracker, steps)
    assert kinds == CLUSTER_STEPS
