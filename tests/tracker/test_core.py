"""The tracker core on every storage backend: sessions, timers, error conditions, versions."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.errors import Forbidden, TrackerProtocolError, UnsupportedVersion
from ppsp.tracker.core import (
    AddressUse,
    Tracker,
    TrackerConfig,
    TrackerStats,
    address_use,
    reflexive_address,
    usable_addresses,
)
from ppsp.tracker.credentials import Credentials
from ppsp.tracker.statemachine import PeerState, TrackerState
from ppsp.tracker.storage import MemoryStorage, Storage
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.fields import MAX_LISTED_PEERS, MAX_MESSAGE_BYTES
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1
SEED, LEECH = PeerMode.SEED, PeerMode.LEECH
JOIN, LEAVE = SwarmActionType.JOIN, SwarmActionType.LEAVE
CONFIG = TrackerConfig(init_timeout=30.0, track_timeout=180.0, max_peers=20)


def host(peer: str, protocol: str = "PPSP-PP/0.1") -> PeerAddress:
    # On the host the peer is seen at (observed()): an address listed to every requester.
    n = sum(peer.encode()) % 250 + 1
    return PeerAddress(
        ip=f"198.51.100.{n}", port=7000, type=AddressType.HOST, peer_protocol=protocol
    )


def observed(peer: str) -> tuple[str, int]:
    return (f"198.51.100.{sum(peer.encode()) % 250 + 1}", 40000)


class Client:
    """A peer talking to a Tracker: builds requests and remembers the clock."""

    def __init__(self, tracker: Tracker, peer_id: str, version: ProtocolVersion = V11) -> None:
        self.tracker, self.peer_id, self.version = tracker, peer_id, version
        self.tid = 0

    async def send(self, request: AnyRequest, now: float) -> TrackerResponse:
        return await self.tracker.handle(request, observed=observed(self.peer_id), now=now)

    def _base(self) -> dict[str, object]:
        self.tid += 1
        return {"version": self.version, "transaction_id": str(self.tid), "peer_id": self.peer_id}

    async def connect(
        self,
        now: float,
        *actions: tuple[str, SwarmActionType, PeerMode],
        peer_num: PeerNum | None = None,
        addresses: tuple[PeerAddress, ...] | None = None,
    ) -> TrackerResponse:
        base = self._base()
        request = ConnectRequest(
            **base,  # type: ignore[arg-type]
            peer_addresses=(host(self.peer_id),) if addresses is None else addresses,
            swarm_actions=tuple(
                SwarmAction(
                    swarm_id=s,
                    action=a,
                    peer_mode=m,
                    transaction_id=f"{base['transaction_id']}.{i}",
                )
                for i, (s, a, m) in enumerate(actions, 1)
            ),
            peer_num=peer_num,
        )
        return await self.send(request, now)

    async def join(
        self, now: float, *swarms: tuple[str, PeerMode], peer_num: PeerNum | None = None
    ) -> TrackerResponse:
        request = JoinRequest(
            **self._base(),  # type: ignore[arg-type]
            swarms=tuple(SwarmAction(swarm_id=s, peer_mode=m) for s, m in swarms),
            peer_num=peer_num,
        )
        return await self.send(request, now)

    async def disconnect(self, now: float, scope: DisconnectScope, *swarms: str) -> TrackerResponse:
        request = DisconnectRequest(
            **self._base(),  # type: ignore[arg-type]
            scope=scope,
            swarms=tuple(SwarmAction(swarm_id=s) for s in swarms),
        )
        return await self.send(request, now)

    async def find(
        self,
        now: float,
        swarm_id: str,
        scope: tuple[RepresentationScope, ...] = (),
        peer_num: PeerNum | None = None,
    ) -> TrackerResponse:
        request = FindRequest(
            **self._base(),  # type: ignore[arg-type]
            swarm_id=swarm_id,
            content_group=scope,
            peer_num=peer_num,
        )
        return await self.send(request, now)

    async def report(
        self,
        now: float,
        stats: tuple[StreamStatistics, ...] = (),
        maps: tuple[ContentMap, ...] = (),
    ) -> TrackerResponse:
        request = StatReportRequest(
            **self._base(),  # type: ignore[arg-type]
            stream_stats=stats,
            content_maps=maps,
        )
        return await self.send(request, now)


def content_map(swarm_id: str, held: list[int], size: int = 64) -> ContentMap:
    bits = ChunkBitmap.from_indexes(held, size)
    segment = SegmentMap(
        start_index=0, end_index=size - 1, chunkmap_size=size, bitmap=bits.to_bytes()
    )
    return ContentMap(
        swarm_id=swarm_id,
        representations=(RepresentationMap(representation_id="tag0", segments=(segment,)),),
    )


def ids(response: TrackerResponse) -> list[str]:
    return [p.peer_id or "" for p in response.peers]


@pytest.fixture
def tracker(storage: Storage) -> Tracker:
    return Tracker(storage, CONFIG, rng=random.Random(5))


async def test_seed_session_figure_2(tracker: Tracker) -> None:
    """The session of the 1.1 draft's Figure 2, with two other peers in swarm_b."""
    others = [Client(tracker, f"other{i}") for i in range(2)]
    for i, other in enumerate(others):
        await other.connect(0.0, ("swarm_b", JOIN, SEED if i == 0 else LEECH))
    peer = Client(tracker, "peer")
    t = 1.0

    r = await peer.connect(t)
    assert r.version is V11 and r.transaction_id == "1" and r.peers == ()
    assert r.requester is not None and r.requester.peer_id == "peer"
    (reflexive,) = r.requester.addresses
    assert (reflexive.ip, reflexive.port) == observed("peer")
    assert reflexive.type is AddressType.REFLEXIVE and reflexive.family is AddressFamily.IPV4
    assert tracker.next_deadline() == t + CONFIG.init_timeout  # the init timer runs

    r = await peer.join(t + 1, ("swarm_a", SEED))
    assert r.peers == ()
    assert r.results == ()  # no per-swarm transaction IDs in the request

    r = await peer.report(t + 2, stats=(StreamStatistics(swarm_id="swarm_a", uploaded_bytes=5),))
    assert r.peers == () and r.requester is None
    assert r.results == ()

    r = await peer.join(t + 3, ("swarm_b", LEECH))
    assert sorted(ids(r)) == ["other0", "other1"]
    for info in r.peers:
        assert info.swarm_id == "swarm_b"
        assert info.addresses[0] == host(info.peer_id or "")
        assert info.addresses[-1].type is AddressType.REFLEXIVE

    r = await peer.report(t + 4, maps=(content_map("swarm_b", [0, 1, 2]),))
    assert tracker.storage is not None
    assert await tracker.storage.get_content_map("swarm_b", "peer") == content_map(
        "swarm_b", [0, 1, 2]
    )

    r = await peer.find(t + 5, "swarm_b")
    assert sorted(ids(r)) == ["other0", "other1"]
    assert r.requester is not None

    stats = await tracker.stats()
    assert stats == TrackerStats(peers=3, swarms=2, memberships=4, state=TrackerState.STARTED)

    r = await peer.disconnect(t + 6, DisconnectScope.SWARMS, "swarm_b")
    assert r.results == ()
    assert await tracker.storage.get_content_map("swarm_b", "peer") is None
    assert "peer" not in ids(await others[1].find(t + 6, "swarm_b"))

    await peer.report(t + 7)  # keep-alive
    record = await tracker.storage.get_peer("peer")
    assert record is not None and record.state is PeerState.TRACKING
    assert record.deadline == t + 7 + CONFIG.track_timeout

    r = await peer.disconnect(t + 8, DisconnectScope.SYSTEM)
    assert r.peers == () and r.results == () and r.requester is None
    assert await tracker.storage.get_peer("peer") is None
    assert (await tracker.stats()).peers == 2

    # After the BYE the peer is unknown again: only CONNECT is allowed.
    with pytest.raises(Forbidden):
        await peer.find(t + 9, "swarm_b")


async def test_timers_expire_with_fake_clock(tracker: Tracker) -> None:
    registered = Client(tracker, "registered")
    tracking = Client(tracker, "tracking")
    await registered.connect(100.0)
    await tracking.connect(100.0, ("s", JOIN, LEECH))
    assert tracker.next_deadline() == 130.0
    assert await tracker.expire(129.9) == 0
    assert await tracker.expire(130.0) == 1
    assert tracker.next_deadline() == 280.0
    # Every valid message resets the track timer.
    await tracking.report(200.0)
    assert await tracker.expire(280.0) == 0
    assert tracker.next_deadline() == 380.0
    await tracking.find(300.0, "s")
    assert await tracker.expire(380.0) == 0
    assert await tracker.expire(480.0) == 1
    assert await tracker.stats() == TrackerStats(
        peers=0, swarms=0, memberships=0, state=TrackerState.INIT
    )
    assert tracker.next_deadline() is None
    with pytest.raises(Forbidden):
        await tracking.report(481.0)


async def test_disconnect_last_swarm_returns_to_registered_with_init_timer(
    tracker: Tracker,
) -> None:
    peer = Client(tracker, "p")
    await peer.connect(0.0)
    await peer.join(1.0, ("a", SEED), ("b", SEED))
    await peer.disconnect(2.0, DisconnectScope.SWARMS, "a")
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.state is PeerState.TRACKING
    await peer.disconnect(3.0, DisconnectScope.ALL_SWARMS, "ALL")
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.state is PeerState.PEER_REGISTERED
    assert record.deadline == 3.0 + CONFIG.init_timeout
    assert await tracker.storage.memberships("p") == {}
    # Nothing left to leave.
    with pytest.raises(Forbidden):
        await peer.disconnect(4.0, DisconnectScope.ALL_SWARMS, "ALL")
    await peer.join(5.0, ("c", LEECH))


async def test_error_condition_a_resets_init_timer_once(tracker: Tracker) -> None:
    peer = Client(tracker, "p")
    await peer.connect(0.0)
    with pytest.raises(Forbidden) as info:
        await peer.find(10.0, "s")
    assert info.value.transaction_id == "2"
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.deadline == 40.0 and record.grace_used
    for request in (peer.report(20.0), peer.connect(20.0)):
        with pytest.raises(Forbidden):
            await request
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.deadline == 40.0  # only "one last time"
    assert await tracker.expire(40.0) == 1


async def test_error_condition_b_resets_track_timer_once(tracker: Tracker) -> None:
    peer = Client(tracker, "p")
    await peer.connect(0.0)
    await peer.join(1.0, ("a", SEED))
    with pytest.raises(Forbidden):
        await peer.connect(50.0)  # second registration while TRACKING
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.deadline == 230.0 and record.grace_used
    with pytest.raises(Forbidden):
        await peer.connect(60.0, ("b", JOIN, SEED))  # swarm @action=JOIN while TRACKING
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.deadline == 230.0
    # A valid message clears the grace flag and resets the timer.
    await peer.report(70.0)
    record = await tracker.storage.get_peer("p")
    assert record is not None and record.deadline == 250.0 and not record.grace_used


@pytest.mark.parametrize("method", ["find", "report", "join", "disconnect"])
async def test_unknown_peer_is_forbidden(tracker: Tracker, method: str) -> None:
    peer = Client(tracker, "ghost")
    calls = {
        "find": lambda: peer.find(0.0, "s"),
        "report": lambda: peer.report(0.0),
        "join": lambda: peer.join(0.0, ("s", LEECH)),
        "disconnect": lambda: peer.disconnect(0.0, DisconnectScope.SYSTEM),
    }
    with pytest.raises(Forbidden) as info:
        await calls[method]()
    assert info.value.transaction_id == "1"
    assert (await tracker.stats()).peers == 0


async def test_table_9_fast_connect(tracker: Tracker) -> None:
    # LEAVE from START, and JOIN+LEAVE from START: invalid, nothing registered.
    for actions in ((("s", LEAVE, LEECH),), (("s", JOIN, LEECH), ("t", LEAVE, LEECH))):
        with pytest.raises(Forbidden):
            await Client(tracker, "fresh").connect(0.0, *actions)
        assert await tracker.storage.get_peer("fresh") is None
    # x LEECH + y SEED from START: valid; the list comes for the LEECH swarm only.
    seeder = Client(tracker, "seeder")
    await seeder.connect(0.0, ("1111", JOIN, SEED), ("3333", JOIN, SEED))
    mixed = Client(tracker, "mixed")
    r = await mixed.connect(1.0, ("1111", JOIN, SEED), ("3333", JOIN, LEECH))
    assert [(p.peer_id, p.swarm_id) for p in r.peers] == [("seeder", "3333")]
    assert [(x.transaction_id, x.swarm_id) for x in r.results] == [
        ("1.1", "1111"),
        ("1.2", "3333"),
    ]
    assert r.requester is not None
    # N SEED JOIN while TRACKING: invalid.
    with pytest.raises(Forbidden):
        await seeder.connect(2.0, ("1111", JOIN, SEED))
    # Channel switch: LEAVE one, JOIN another as LEECH.
    r = await mixed.connect(3.0, ("3333", LEAVE, LEECH), ("4444", JOIN, LEECH))
    assert await tracker.storage.memberships("mixed") == {"1111": SEED, "4444": LEECH}
    # LEAVE of a swarm not joined.
    with pytest.raises(Forbidden):
        await mixed.connect(4.0, ("3333", LEAVE, LEECH))
    # LEAVE of some swarms keeps TRACKING; LEAVE of the rest deregisters (step 5).
    await mixed.connect(5.0, ("4444", LEAVE, LEECH))
    assert await tracker.storage.memberships("mixed") == {"1111": SEED}
    r = await mixed.connect(6.0, ("1111", LEAVE, SEED))
    assert r.requester is not None and [x.swarm_id for x in r.results] == ["1111"]
    assert await tracker.storage.get_peer("mixed") is None


async def test_seed_gets_list_only_with_peer_num(tracker: Tracker) -> None:
    await Client(tracker, "a").connect(0.0, ("s", JOIN, LEECH))
    r = await Client(tracker, "b").connect(0.0, ("s", JOIN, SEED))
    assert r.peers == ()
    r = await Client(tracker, "c").connect(0.0, ("s", JOIN, SEED), peer_num=PeerNum(count=5))
    assert sorted(ids(r)) == ["a", "b"]
    r = await Client(tracker, "d").connect(0.0, ("s", JOIN, LEECH), peer_num=PeerNum(count=1))
    assert len(r.peers) == 1


async def test_chunk_scoped_find(tracker: Tracker) -> None:
    seed = Client(tracker, "seed")
    await seed.connect(0.0, ("s", JOIN, SEED))
    holders = {"many": [10, 11, 12], "few": [12], "outside": [40], "silent": None}
    for name, held in holders.items():
        client = Client(tracker, name)
        await client.connect(0.0, ("s", JOIN, LEECH))
        if held is not None:
            await client.report(1.0, maps=(content_map("s", held),))
    me = Client(tracker, "me")
    await me.connect(2.0, ("s", JOIN, LEECH))
    scope = (RepresentationScope(representation_id="tag0", start_index=10, end_index=20),)
    r = await me.find(3.0, "s", scope)
    assert ids(r) == ["seed", "many", "few"]
    r = await me.find(3.0, "s")
    assert sorted(ids(r)) == ["few", "many", "outside", "seed", "silent"]
    r = await me.find(3.0, "s", peer_num=PeerNum(count=2))
    assert len(r.peers) == 2


async def test_find_and_reports_need_joined_swarm(tracker: Tracker) -> None:
    await Client(tracker, "other").connect(0.0, ("elsewhere", JOIN, SEED))
    peer = Client(tracker, "p")
    await peer.connect(0.0, ("s", JOIN, LEECH))
    with pytest.raises(Forbidden):
        await peer.find(1.0, "elsewhere")
    with pytest.raises(Forbidden):
        await peer.report(1.0, maps=(content_map("elsewhere", [1]),))
    with pytest.raises(Forbidden):
        await peer.report(1.0, stats=(StreamStatistics(swarm_id="elsewhere"),))
    assert await tracker.storage.get_content_map("elsewhere", "p") is None
    await peer.report(2.0, stats=(StreamStatistics(uploaded_bytes=3),))
    assert await tracker.storage.get_stats("p") == (StreamStatistics(uploaded_bytes=3),)


async def test_content_map_replaced_by_latest(tracker: Tracker) -> None:
    peer = Client(tracker, "p")
    await peer.connect(0.0, ("s", JOIN, LEECH))
    await peer.report(1.0, maps=(content_map("s", [1]),))
    await peer.report(2.0, maps=(content_map("s", [1, 2, 3]),))
    assert await tracker.storage.get_content_map("s", "p") == content_map("s", [1, 2, 3])


async def test_addresses_recorded_and_refreshed(tracker: Tracker) -> None:
    peer = Client(tracker, "p")
    v6 = PeerAddress(ip="2001:db8::1", port=80, family=AddressFamily.IPV6)
    await peer.connect(0.0, ("s", JOIN, SEED), addresses=(host("p"), v6))
    (member,) = await tracker.storage.members("s")
    # The IPv6 address is another host's (the peer is seen over IPv4): not kept.
    assert member.addresses == (host("p"), reflexive_address(observed("p")))
    # The peer moves: the next request comes from another address.  Without a token that is
    # another host using its ID (refused, see test_identity.py); with one, the peer moved
    # (what it advertised stays until it advertises again: docs/SECURITY.md).
    moved = StatReportRequest(version=V11, transaction_id="9", peer_id="p")
    with pytest.raises(Forbidden):
        await tracker.handle(moved, observed=("2001:db8::7", 5555), now=1.0)
    await tracker.handle(
        moved, observed=("2001:db8::7", 5555), now=1.0, credentials=Credentials(subject="p")
    )
    (member,) = await tracker.storage.members("s")
    assert member.addresses[0] == host("p")
    assert member.addresses[1] == reflexive_address(("2001:db8::7", 5555))
    assert member.addresses[1].family is AddressFamily.IPV6
    # A peer that advertises nothing still has its reflexive address.
    await Client(tracker, "q").connect(0.0, ("s", JOIN, SEED), addresses=())
    r = await Client(tracker, "r").connect(0.0, ("s", JOIN, LEECH))
    for info in r.peers:
        assert info.addresses and info.addresses[-1].type is AddressType.REFLEXIVE


def advertised(ip: str, port: int, **kw: object) -> PeerAddress:
    family = AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4
    return PeerAddress(ip=ip, port=port, family=family, type=AddressType.HOST, **kw)  # type: ignore[arg-type]


def usable(address: PeerAddress) -> bool:
    return address.port != 0 and address_use(address.ip) is AddressUse.USABLE


@pytest.mark.parametrize(
    ("ip", "use"),
    [
        ("0.0.0.0", AddressUse.UNSPECIFIED),
        ("::", AddressUse.UNSPECIFIED),
        ("::ffff:0.0.0.0", AddressUse.UNSPECIFIED),
        ("224.0.0.1", AddressUse.UNUSABLE),
        ("239.255.255.250", AddressUse.UNUSABLE),
        ("ff02::1", AddressUse.UNUSABLE),
        ("::ffff:224.0.0.1", AddressUse.UNUSABLE),
        ("255.255.255.255", AddressUse.UNUSABLE),
        ("0.1.2.3", AddressUse.UNUSABLE),
        ("not an ip", AddressUse.UNUSABLE),
        ("127.0.0.1", AddressUse.USABLE),
        ("::1", AddressUse.USABLE),
        ("10.1.2.3", AddressUse.USABLE),
        ("192.0.2.255", AddressUse.USABLE),
        ("2001:db8::1", AddressUse.USABLE),
        ("fe80::1", AddressUse.USABLE),
        ("::ffff:192.0.2.1", AddressUse.USABLE),
    ],
)
def test_address_use(ip: str, use: AddressUse) -> None:
    assert address_use(ip) is use


def test_usable_addresses_keep_the_tuple_when_nothing_changes() -> None:
    mine = (advertised("192.0.2.1", 7000), advertised("192.0.2.1", 7001))
    assert usable_addresses(mine, reflexive_address(("192.0.2.1", 4000))) is mine
    mine = (advertised("2001:db8::1", 7000), advertised("2001:db8::2", 7000))  # one /64
    assert usable_addresses(mine, reflexive_address(("2001:db8::3", 4000))) is mine
    assert usable_addresses((), reflexive_address(("198.51.100.1", 4000))) == ()


def test_an_unspecified_address_needs_a_usable_observed_one() -> None:
    wildcard = (advertised("0.0.0.0", 7000),)
    assert usable_addresses(wildcard, reflexive_address(("0.0.0.0", 0))) == ()


async def test_unusable_advertised_addresses_are_replaced_or_dropped(tracker: Tracker) -> None:
    """A peer serving on a wildcard address is listed at the address it was seen at."""
    seen = ("198.51.100.20", 40000)
    mine = (
        advertised("0.0.0.0", 7001, peer_protocol="PPSP-PP/0.1", priority=3),
        advertised("::", 7002),
        advertised("224.0.0.1", 7003),
        advertised("255.255.255.255", 7004),
        advertised("192.0.2.5", 0),
        advertised("0.1.2.3", 7005),
        advertised("ff02::1", 7006),
        advertised("::ffff:0.0.0.0", 7007),
        advertised("198.51.100.20", 7001),  # what the first one becomes: listed once
        advertised("192.0.2.9", 7008),
    )
    request = ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id="wild",
        peer_addresses=mine,
        swarm_actions=(SwarmAction(swarm_id="s", action=JOIN, peer_mode=SEED),),
    )
    await tracker.handle(request, observed=seen, now=0.0)
    expected = (
        advertised("198.51.100.20", 7001, peer_protocol="PPSP-PP/0.1", priority=3),
        advertised("198.51.100.20", 7002),
        advertised("198.51.100.20", 7007),
        reflexive_address(seen),  # 192.0.2.9, another host's address, is not kept
    )
    record = await tracker.storage.get_peer("wild")
    assert record is not None and record.addresses == expected
    # As another peer sees it, without and with a chunk scope (the two selection paths).
    leecher = Client(tracker, "leecher")
    r = await leecher.connect(1.0, ("s", JOIN, LEECH))
    (listed,) = r.peers
    assert listed.addresses == expected
    r = await leecher.find(
        2.0, "s", scope=(RepresentationScope(representation_id="tag0", start_index=0),)
    )
    (listed,) = r.peers
    assert listed.addresses == expected
    # A peer that advertises only unusable addresses is listed at its observed address alone.
    only_bad = ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id="bad",
        peer_addresses=(advertised("224.0.0.1", 7000), advertised("192.0.2.1", 0)),
        swarm_actions=(SwarmAction(swarm_id="s", action=JOIN, peer_mode=SEED),),
    )
    await tracker.handle(only_bad, observed=("192.0.2.77", 5000), now=3.0)
    r = await leecher.find(4.0, "s")
    by_id = {p.peer_id: p.addresses for p in r.peers}
    assert by_id["bad"] == (reflexive_address(("192.0.2.77", 5000)),)


async def test_version_handling(storage: Storage) -> None:
    only_10 = Tracker(storage, TrackerConfig(max_version=V10))
    peer11 = Client(only_10, "p11")
    with pytest.raises(UnsupportedVersion) as info:
        await peer11.connect(0.0)
    assert info.value.reason == "PPSP version 1.0"
    assert info.value.transaction_id == "1"
    assert info.value.http_status == 400
    # Fallback: the same peer in 1.0 form.
    peer10 = Client(only_10, "p11", V10)
    r = await peer10.connect(1.0, ("s", JOIN, LEECH))
    assert r.version is V10
    r = await peer10.find(2.0, "s")
    assert r.version is V10


async def test_v10_semantics_on_a_11_tracker(tracker: Tracker) -> None:
    peer = Client(tracker, "old", V10)
    # 1.0 has no registration-only CONNECT.
    with pytest.raises(Forbidden):
        await peer.connect(0.0)
    await Client(tracker, "other").connect(0.0, ("s", JOIN, SEED))
    r = await peer.connect(1.0, ("s", JOIN, LEECH))
    assert r.version is V10 and ids(r) == ["other"]
    record = await tracker.storage.get_peer("old")
    assert record is not None and record.version is V10
    # 1.0 condition B: an error in TRACKING leaves the timer alone.
    with pytest.raises(Forbidden):
        await peer.connect(50.0, ("t", JOIN, SEED))
    record = await tracker.storage.get_peer("old")
    assert record is not None and record.deadline == 1.0 + CONFIG.track_timeout
    # 1.0 LEAVE of its only swarm deregisters (Table 6).
    r = await peer.connect(60.0, ("s", LEAVE, LEECH))
    assert r.version is V10
    assert await tracker.storage.get_peer("old") is None


async def test_peer_num_cap(tracker: Tracker) -> None:
    for i in range(5):
        await Client(tracker, f"s{i}").connect(0.0, ("s", JOIN, SEED))
    r = await Client(tracker, "me").connect(0.0, ("s", JOIN, LEECH), peer_num=PeerNum(count=10**6))
    assert len(r.peers) == 5


async def test_join_of_many_swarms_lists_what_one_answer_can_carry(tracker: Tracker) -> None:
    # Six swarms of 200 members each, joined in one request asking for 200 peers per swarm:
    # the answer lists at most MAX_LISTED_PEERS over all of them, and both codecs can write it.
    swarms = [f"swarm{k}" for k in range(6)]
    for i in range(200):
        await Client(tracker, f"m{i}").connect(0.0, *((s, JOIN, SEED) for s in swarms))
    r = await Client(tracker, "me").connect(
        0.0, *((s, JOIN, LEECH) for s in swarms), peer_num=PeerNum(count=200)
    )
    assert len(r.peers) == MAX_LISTED_PEERS
    assert len(xml_codec.encode_response(r)) < MAX_MESSAGE_BYTES
    assert len(json_codec.encode_response(r)) < MAX_MESSAGE_BYTES


# -- property: random request sequences ---------------------------------------------------------

PEERS = ["p0", "p1", "p2"]
SWARMS = ["a", "b", "c"]


def _requests() -> st.SearchStrategy[AnyRequest]:
    base = {
        "version": st.sampled_from(list(ProtocolVersion)),
        "transaction_id": st.just("t"),
        "peer_id": st.sampled_from(PEERS),
    }
    action = st.builds(
        SwarmAction,
        swarm_id=st.sampled_from(SWARMS),
        action=st.sampled_from([None, JOIN, LEAVE]),
        peer_mode=st.sampled_from([None, SEED, LEECH]),
    )
    swarm = st.builds(
        SwarmAction,
        swarm_id=st.sampled_from(SWARMS),
        peer_mode=st.sampled_from([None, SEED, LEECH]),
    )
    address = st.builds(
        advertised,
        st.sampled_from(["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "192.0.2.1", "::1"]),
        st.sampled_from([0, 7000, 7001]),
    )
    return st.one_of(
        st.builds(
            ConnectRequest,
            **base,
            swarm_actions=st.lists(action, max_size=3).map(tuple),
            peer_addresses=st.lists(address, max_size=3).map(tuple),
        ),
        st.builds(JoinRequest, **base, swarms=st.lists(swarm, min_size=1, max_size=2).map(tuple)),
        st.builds(
            DisconnectRequest,
            **base,
            scope=st.sampled_from(list(DisconnectScope)),
            swarms=st.lists(swarm, max_size=2).map(tuple),
        ),
        st.builds(FindRequest, **base, swarm_id=st.sampled_from(SWARMS)),
        st.builds(
            StatReportRequest,
            **base,
            content_maps=st.lists(
                st.sampled_from(SWARMS).map(lambda s: content_map(s, [1])), max_size=2
            ).map(tuple),
        ),
    )


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(_requests(), st.floats(0, 50)), max_size=25))
def test_random_sequences_keep_invariants(steps: list[tuple[AnyRequest, float]]) -> None:
    async def run() -> None:
        storage = MemoryStorage(seed=0)
        tracker = Tracker(storage, CONFIG, rng=random.Random(0))
        now = 0.0
        for request, dt in steps:
            now += dt
            try:
                response = await tracker.handle(request, observed=("127.0.0.1", 9), now=now)
            except TrackerProtocolError as exc:  # the only thing allowed to escape
                assert exc.transaction_id == "t"
            else:
                assert response.version is request.version
                assert response.transaction_id == "t"
                assert all(p.peer_id != request.peer_id for p in response.peers)
                # Every listed address can be connected to.
                assert all(usable(a) for p in response.peers for a in p.addresses)
            if dt > 40:
                await tracker.expire(now)
            for pid in PEERS:
                record = await storage.get_peer(pid)
                joined = await storage.memberships(pid)
                if record is None:
                    assert joined == {}
                    continue
                # TRACKING exactly when in at least one swarm.
                assert (record.state is PeerState.TRACKING) == bool(joined)
                assert record.state in (PeerState.PEER_REGISTERED, PeerState.TRACKING)
                assert record.addresses[-1].type is AddressType.REFLEXIVE
                for swarm_id, mode in joined.items():
                    members = {m.peer_id: m.mode for m in await storage.members(swarm_id)}
                    assert members.get(pid) is mode
            deadline = tracker.next_deadline()
            stored = await storage.next_deadline()
            if stored is not None:
                assert deadline is not None and deadline <= stored

    asyncio.run(run())


async def test_results_follow_hierarchical_transaction_ids(tracker: Tracker) -> None:
    peer = Client(tracker, "p")
    await peer.connect(0.0)
    request = JoinRequest(
        version=V11,
        transaction_id="12345.0",
        peer_id="p",
        swarms=(
            SwarmAction(swarm_id="1111", peer_mode=SEED, transaction_id="12345.1"),
            SwarmAction(swarm_id="2222", peer_mode=SEED, transaction_id="12345.2"),
        ),
    )
    r = await tracker.handle(request, observed=observed("p"), now=1.0)
    assert r.transaction_id == "12345.0"
    assert [(x.transaction_id, x.swarm_id, x.status) for x in r.results] == [
        ("12345.1", "1111", 200),
        ("12345.2", "2222", 200),
    ]
    leave = DisconnectRequest(
        version=V11,
        transaction_id="7.0",
        peer_id="p",
        scope=DisconnectScope.SWARMS,
        swarms=(SwarmAction(swarm_id="2222", transaction_id="7.1"),),
    )
    r = await tracker.handle(leave, observed=observed("p"), now=2.0)
    assert [(x.transaction_id, x.swarm_id) for x in r.results] == [("7.1", "2222")]
