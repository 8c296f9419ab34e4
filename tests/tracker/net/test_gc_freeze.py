"""The upkeep task freezes a grown memory state, and expired peers are still freed after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ppsp.process.tuning import FreezeTrigger, freeze_state
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.net.upkeep import Expirer
from ppsp.tracker.peerlist import LISTED
from ppsp.tracker.storage import MemoryStorage
from ppsp.wire.packed import forget_kept
from ppsp.wire.tracker import (
    ConnectRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
)

V11 = ProtocolVersion.V1_1
TIMEOUT = 30.0


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give back to the collector whatever a test froze."""
    try:
        yield
    finally:
        gc.unfreeze()


def _tracker() -> Tracker:
    return Tracker(
        MemoryStorage(seed=1),
        TrackerConfig(init_timeout=TIMEOUT, track_timeout=TIMEOUT, limits=DEFAULT_LIMITS.off()),
    )


async def _register(tracker: Tracker, i: int, now: float) -> None:
    peer_id = f"{i:016x}"
    observed = ("127.0.0.1", 40000 + i % 20000)
    address = PeerAddress(
        ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", port=7000, peer_protocol="PPSP-PP/0.1"
    )
    await tracker.handle(
        ConnectRequest(version=V11, transaction_id="1", peer_id=peer_id, peer_addresses=(address,)),
        observed=observed,
        now=now,
    )
    await tracker.handle(
        JoinRequest(
            version=V11,
            transaction_id="2",
            peer_id=peer_id,
            swarms=(SwarmAction(swarm_id=f"swarm-{i % 50}", peer_mode=PeerMode.LEECH),),
        ),
        observed=observed,
        now=now,
    )


async def test_the_upkeep_task_freezes_when_the_state_has_grown_by_a_step() -> None:
    now = [1000.0]
    frozen: list[int] = []
    tracker = _tracker()
    expirer = Expirer(
        tracker,
        lambda: now[0],
        freeze=FreezeTrigger(step=3, interval=5.0),
        freezer=lambda: frozen.append(len(frozen)),
    )
    await expirer.tick()
    assert frozen == []  # no peer yet
    for i in range(3):
        await _register(tracker, i, now[0])
    await expirer.tick()
    assert frozen == []  # looked at 1000.0 already: the next look is at 1005.0
    now[0] += 5.0
    await expirer.tick()
    assert frozen == [0]
    now[0] += 5.0
    await expirer.tick()
    assert frozen == [0]  # not grown since
    for i in range(3, 6):
        await _register(tracker, i, now[0])
    now[0] += 5.0
    await expirer.tick()
    assert frozen == [0, 1]


def test_memory_storage_gets_a_trigger_by_default() -> None:
    expirer = Expirer(_tracker(), lambda: 0.0)
    assert isinstance(expirer._freeze, FreezeTrigger)


def _live_objects() -> int:
    # The entries of the members listed last, and the addresses read last, are kept for a
    # bounded number of them (peerlist.LISTED_KEPT, wire.packed), whichever peers still
    # exist: not what this test counts.
    LISTED.clear()
    forget_kept()
    gc.collect()
    return len(gc.get_objects()) + gc.get_freeze_count()


async def _cycle(peers: int, start: float) -> int:
    """Register ``peers`` with freezes on the way, expire them all; the freezes done."""
    tracker = _tracker()
    freezes: list[int] = []

    def freezer() -> None:
        freezes.append(gc.get_freeze_count())
        freeze_state()

    now = [start]
    expirer = Expirer(
        tracker,
        lambda: now[0],
        freeze=FreezeTrigger(step=peers // 4, interval=0.0),
        freezer=freezer,
    )
    for i in range(peers):
        await _register(tracker, i, now[0])
        if i % 100 == 99:
            await expirer.tick()
    assert (await tracker.stats()).peers == peers
    now[0] += TIMEOUT + 1
    while (await tracker.stats()).peers:
        await expirer.tick()
    return len(freezes)


async def test_frozen_peers_are_still_freed_when_they_expire(unfrozen: None) -> None:
    # The storage's objects hold no reference cycle: frozen, they are freed by reference
    # counting when their peers expire, and repeated register/expire cycles do not grow the
    # number of live objects (each cycle's 2,000 peers are some 20,000 objects).
    peers = 2000
    assert await _cycle(peers, 0.0) == 4  # warm-up: lazy imports, caches
    baseline = _live_objects()
    for round_ in range(3):
        assert await _cycle(peers, 1000.0 * (round_ + 1)) == 4
        assert _live_objects() - baseline < 500
