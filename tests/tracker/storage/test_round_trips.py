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
from ppsp.tracker.net.redis_link import RedisLink
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.wire.tracker import (
    DisconnectScope,
    FindRequest,
    PeerNum,
    ProtocolVersion,
    StreamStatistics,
)
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
