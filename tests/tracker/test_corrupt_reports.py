"""The tracker and corrupt-peer reports: believed per distinct member host, suspects listed last."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.storage import Storage
from ppsp.wire.tracker import (
    AnyRequest,
    CorruptPeerReport,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    StatReportRequest,
    SwarmActionType,
    TrackerResponse,
)
from tracker.test_core import Client, host, ids

K = DEFAULT_LIMITS.suspect_reporters
SWARM = "s"
V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1


class HostClient(Client):
    """A client seen at a host address of its own choosing (several peers behind one NAT)."""

    def __init__(
        self, tracker: Tracker, peer_id: str, ip: str, version: ProtocolVersion = V11
    ) -> None:
        super().__init__(tracker, peer_id, version)
        self.ip = ip

    async def send(self, request: AnyRequest, now: float) -> TrackerResponse:
        return await self.tracker.handle(request, observed=(self.ip, 40000), now=now)

    async def corrupt(self, now: float, *reports: CorruptPeerReport) -> TrackerResponse:
        request = StatReportRequest(**self._base(), corrupt_peers=reports)  # type: ignore[arg-type]
        return await self.send(request, now)


@pytest.fixture
def tracker(storage: Storage) -> Tracker:
    return Tracker(storage, TrackerConfig(max_peers=20), rng=random.Random(5))


async def _swarm(tracker: Tracker, honest: int = 3) -> tuple[HostClient, CorruptPeerReport]:
    """A liar (advertising the best priority, which ranks nothing) and ``honest`` peers."""
    liar = HostClient(tracker, "liar", "203.0.113.66")
    address = replace(host("liar"), ip="203.0.113.66", priority=2**32)  # on its own host
    await liar.connect(0.0, (SWARM, SwarmActionType.JOIN, PeerMode.SEED), addresses=(address,))
    for i in range(honest):
        peer = HostClient(tracker, f"honest{i}", f"198.51.100.{i + 1}")
        await peer.connect(0.0, (SWARM, SwarmActionType.JOIN, PeerMode.SEED))
    report = CorruptPeerReport(swarm_id=SWARM, peer_id="liar", ip=address.ip, port=address.port)
    return liar, report


async def _member(
    tracker: Tracker, peer_id: str, ip: str, swarm: str = SWARM, version: ProtocolVersion = V11
) -> HostClient:
    client = HostClient(tracker, peer_id, ip, version)
    await client.connect(1.0, (swarm, SwarmActionType.JOIN, PeerMode.LEECH))
    return client


async def _listed(tracker: Tracker, count: int | None = None) -> list[str]:
    asker = await _member(tracker, f"asker{random.random()}", "192.0.2.200")
    answer = await asker.find(3.0, SWARM, peer_num=None if count is None else PeerNum(count=count))
    return ids(answer)


async def _always_last(tracker: Tracker, lists: int = 12) -> bool:
    """Whether the liar comes last in each of ``lists`` lists (it is in every one)."""
    positions = []
    for _ in range(lists):
        listed = await _listed(tracker)
        assert "liar" in listed
        positions.append(listed.index("liar") == len(listed) - 1)
    return all(positions)


async def test_a_peer_reported_by_enough_hosts_is_listed_last_never_removed(
    tracker: Tracker,
) -> None:
    _, report = await _swarm(tracker)
    assert not await _always_last(tracker)  # anywhere in the list, as chance has it
    for n in range(K):
        reporter = await _member(tracker, f"reporter{n}", f"192.0.2.{n + 1}")
        await reporter.corrupt(2.0, report)
    stats = await tracker.stats()
    assert (stats.reported, stats.suspects) == (1, 1)
    listed = await _listed(tracker)
    assert listed[-1] == "liar" and len(listed) == len(set(listed))
    assert "liar" in listed  # listed, not removed: room was left
    # Where honest peers fill the list, the suspect is not in it.
    assert "liar" not in await _listed(tracker, count=3)


async def test_one_host_can_never_push_an_honest_peer_out(tracker: Tracker) -> None:
    _, report = await _swarm(tracker)
    # Many PeerIDs behind one address, each reporting many times.
    for n in range(10):
        reporter = await _member(tracker, f"nat{n}", "192.0.2.1")
        for _ in range(3):
            await reporter.corrupt(2.0, replace(report, corrupt_chunks=n + 1))
    stats = await tracker.stats()
    assert (stats.reported, stats.suspects) == (1, 0)
    assert not await _always_last(tracker)  # not demoted


async def test_reports_from_non_members_or_about_other_addresses_change_nothing(
    tracker: Tracker,
) -> None:
    _, report = await _swarm(tracker)
    for n in range(K + 1):
        outsider = await _member(tracker, f"outsider{n}", f"192.0.2.{n + 1}", swarm="elsewhere")
        await outsider.corrupt(2.0, report)  # accepted as a report, not believed
        member = await _member(tracker, f"member{n}", f"192.0.2.{n + 100}")
        await member.corrupt(2.0, replace(report, port=report.port + 1))
        await member.corrupt(2.0, replace(report, swarm_id="elsewhere"))
    stats = await tracker.stats()
    assert (stats.reported, stats.suspects) == (0, 0)
    assert not await _always_last(tracker)


async def test_a_1_0_peer_reports_too_and_the_report_keeps_its_peer_alive(
    tracker: Tracker,
) -> None:
    _, report = await _swarm(tracker)
    reporter = await _member(tracker, "old", "192.0.2.1", version=V10)
    answer = await reporter.corrupt(2.0, report)
    assert answer.requester is None and answer.peers == ()
    record = await tracker.storage.get_peer("old")
    assert record is not None and record.deadline == 2.0 + tracker.config.track_timeout
    assert (await tracker.stats()).reported == 1
