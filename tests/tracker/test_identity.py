"""Who may speak for a PeerID: the host that registered it (open mode), or a token's subject.

Each attack of issue 12 is made through :meth:`Tracker.handle` from a second observed address,
with nothing but what any peer sees in a peer list (the victim's PeerID and swarms): every one
is refused with Forbidden (403 / error_code 3) and changes nothing, on both storage backends.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from ppsp.errors import AuthenticationRequired, Forbidden
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.credentials import Credentials
from ppsp.tracker.storage import Storage
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1
SEED, LEECH = PeerMode.SEED, PeerMode.LEECH
JOIN, LEAVE = SwarmActionType.JOIN, SwarmActionType.LEAVE

VICTIM = ("198.51.100.7", 40000)
"""Where the victim registered from."""
ATTACKER = ("203.0.113.66", 50000)
"""Another host, which knows the victim's PeerID from a peer list."""
THIRD_PARTY = PeerAddress(ip="192.0.2.200", port=80)
"""Where an attacker would point the victim's entry."""


def cmap(swarm_id: str, held: list[int]) -> ContentMap:
    bits = ChunkBitmap.from_indexes(held, 16)
    segment = SegmentMap(start_index=0, end_index=15, chunkmap_size=16, bitmap=bits.to_bytes())
    return ContentMap(
        swarm_id=swarm_id,
        representations=(RepresentationMap(representation_id="r", segments=(segment,)),),
    )


def connect(
    peer: str, *actions: tuple[str, SwarmActionType, PeerMode], **kw: object
) -> ConnectRequest:
    return ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id=peer,
        swarm_actions=tuple(SwarmAction(swarm_id=s, action=a, peer_mode=m) for s, a, m in actions),
        **kw,  # type: ignore[arg-type]
    )


def join(peer: str, *swarms: str) -> JoinRequest:
    return JoinRequest(
        version=V11,
        transaction_id="2",
        peer_id=peer,
        swarms=tuple(SwarmAction(swarm_id=s, peer_mode=LEECH) for s in swarms),
    )


def disconnect(peer: str, scope: DisconnectScope, *swarms: str) -> DisconnectRequest:
    return DisconnectRequest(
        version=V11,
        transaction_id="3",
        peer_id=peer,
        scope=scope,
        swarms=tuple(SwarmAction(swarm_id=s) for s in swarms),
    )


def find(peer: str, swarm: str) -> FindRequest:
    return FindRequest(version=V11, transaction_id="4", peer_id=peer, swarm_id=swarm)


def report(peer: str, **kw: object) -> StatReportRequest:
    return StatReportRequest(version=V11, transaction_id="5", peer_id=peer, **kw)  # type: ignore[arg-type]


@pytest.fixture
def tracker(storage: Storage) -> Tracker:
    return Tracker(storage, TrackerConfig(), rng=random.Random(1))


async def victim_registered(tracker: Tracker) -> None:
    """The victim seeds s1 and s2 with statistics and a content map; a leecher is in s1."""
    mine = (PeerAddress(ip=VICTIM[0], port=7000),)
    await tracker.handle(
        connect("victim", ("s1", JOIN, SEED), peer_addresses=mine), observed=VICTIM, now=0.0
    )
    await tracker.handle(join("victim", "s2"), observed=VICTIM, now=1.0)
    await tracker.handle(
        report(
            "victim",
            stream_stats=(StreamStatistics(swarm_id="s1", uploaded_bytes=9),),
            content_maps=(cmap("s2", [1, 2]),),
        ),
        observed=VICTIM,
        now=2.0,
    )
    await tracker.handle(
        connect("leecher", ("s1", JOIN, LEECH)), observed=("192.0.2.50", 1), now=2.0
    )


async def snapshot(tracker: Tracker) -> object:
    """Everything a refused request must leave as it was."""
    storage = tracker.storage
    return (
        await storage.peer_and_memberships("victim"),
        await storage.get_stats("victim"),
        await storage.get_content_map("s2", "victim"),
        sorted((m.peer_id, m.mode.value, m.addresses) for m in await storage.members("s1")),
        sorted((m.peer_id, m.mode.value) for m in await storage.members("s2")),
        await storage.counts(),
        await storage.next_deadline(),
    )


ATTACKS: dict[str, Callable[[], AnyRequest]] = {
    "DISCONNECT nil": lambda: disconnect("victim", DisconnectScope.SYSTEM),
    "DISCONNECT ALL": lambda: disconnect("victim", DisconnectScope.ALL_SWARMS),
    "DISCONNECT s1": lambda: disconnect("victim", DisconnectScope.SWARMS, "s1"),
    "CONNECT LEAVE (moves the entry)": lambda: connect(
        "victim", ("s1", LEAVE, SEED), peer_addresses=(THIRD_PARTY,)
    ),
    "CONNECT LEAVE all (deregisters)": lambda: connect(
        "victim", ("s1", LEAVE, SEED), ("s2", LEAVE, LEECH)
    ),
    "CONNECT switch": lambda: connect("victim", ("s1", LEAVE, SEED), ("s3", JOIN, LEECH)),
    # Not allowed in TRACKING anyway, but it would reset the victim's timer (error condition B).
    "CONNECT again": lambda: connect("victim", peer_addresses=(THIRD_PARTY,)),
    "JOIN": lambda: join("victim", "s3"),
    "STAT_REPORT": lambda: report(
        "victim",
        stream_stats=(StreamStatistics(swarm_id="s1", uploaded_bytes=0),),
        content_maps=(cmap("s2", []),),
    ),
    "FIND": lambda: find("victim", "s1"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_another_host_cannot_act_in_a_peers_name(tracker: Tracker, attack: str) -> None:
    await victim_registered(tracker)
    before = await snapshot(tracker)
    with pytest.raises(Forbidden) as info:
        await tracker.handle(ATTACKS[attack](), observed=ATTACKER, now=5.0)
    assert info.value.http_status == 403 and info.value.code.json_code == 3
    assert info.value.transaction_id is not None
    assert await snapshot(tracker) == before
    # The victim itself still is served, from its host.
    answer = await tracker.handle(find("victim", "s1"), observed=VICTIM, now=6.0)
    assert [p.peer_id for p in answer.peers] == ["leecher"]


async def test_the_same_host_is_one_host_whatever_the_port_or_form(tracker: Tracker) -> None:
    await victim_registered(tracker)
    await tracker.handle(find("victim", "s1"), observed=(VICTIM[0], 1), now=3.0)
    await tracker.handle(find("victim", "s1"), observed=("::ffff:" + VICTIM[0], 2), now=4.0)
    record = await tracker.storage.get_peer("victim")
    assert record is not None and record.addresses[-1].ip == "::ffff:" + VICTIM[0]
    # And the form it was last seen in does not unbind it from the host.
    await tracker.handle(find("victim", "s1"), observed=VICTIM, now=5.0)
    # A neighbour in the same /24 is another host.
    with pytest.raises(Forbidden):
        await tracker.handle(find("victim", "s1"), observed=("198.51.100.8", 40000), now=6.0)


async def test_peers_behind_one_nat_have_their_own_ids(tracker: Tracker) -> None:
    nat = ("198.51.100.99", 0)
    for i, peer in enumerate(("alice", "bob")):
        await tracker.handle(connect(peer, ("s", JOIN, SEED)), observed=(nat[0], 1000 + i), now=0.0)
    answer = await tracker.handle(find("alice", "s"), observed=(nat[0], 1000), now=1.0)
    assert [p.peer_id for p in answer.peers] == ["bob"]
    # Neither can speak for the other... from another host; from the NAT they are one host.
    with pytest.raises(Forbidden):
        await tracker.handle(find("bob", "s"), observed=ATTACKER, now=2.0)


async def test_the_id_is_free_again_once_its_registration_ends(tracker: Tracker) -> None:
    await victim_registered(tracker)
    await tracker.handle(disconnect("victim", DisconnectScope.SYSTEM), observed=VICTIM, now=3.0)
    await tracker.handle(connect("victim", ("s1", JOIN, LEECH)), observed=ATTACKER, now=4.0)
    # Now bound to the new host: the old one is the stranger.
    with pytest.raises(Forbidden):
        await tracker.handle(find("victim", "s1"), observed=VICTIM, now=5.0)
    # The same after expiry.
    assert await tracker.expire(1e6) == 2
    await tracker.handle(connect("victim"), observed=VICTIM, now=1e6 + 1)


# -- credentials (bearer tokens checked by the HTTP layer) ---------------------------------------


@pytest.fixture
def closed(storage: Storage) -> Tracker:
    """A tracker that requires a bearer token with every request."""
    return Tracker(storage, TrackerConfig(require_credentials=True), rng=random.Random(1))


async def test_without_credentials_authentication_is_required(closed: Tracker) -> None:
    with pytest.raises(AuthenticationRequired) as info:
        await closed.handle(connect("p", ("s", JOIN, SEED)), observed=VICTIM, now=0.0)
    assert info.value.http_status == 401 and info.value.code.json_code == 6
    assert info.value.transaction_id == "1"
    assert (await closed.stats()).peers == 0


async def test_a_token_speaks_for_its_subject_only(closed: Tracker) -> None:
    alice = Credentials(subject="alice")
    await closed.handle(
        connect("alice", ("s", JOIN, SEED)), observed=VICTIM, now=0.0, credentials=alice
    )
    before = await closed.storage.peer_and_memberships("alice")
    for request in (
        disconnect("alice", DisconnectScope.SYSTEM),
        connect("bob", ("s", JOIN, SEED)),
    ):
        with pytest.raises(Forbidden):
            await closed.handle(
                request, observed=VICTIM, now=1.0, credentials=Credentials(subject="mallory")
            )
    assert await closed.storage.peer_and_memberships("alice") == before
    assert (await closed.stats()).peers == 1
    # An open tracker checks a token it is handed too.
    with pytest.raises(Forbidden):
        await Tracker(closed.storage).handle(
            find("alice", "s"), observed=VICTIM, now=1.0, credentials=Credentials(subject="bob")
        )


async def test_a_token_names_the_only_swarms_its_peer_may_join(closed: Tracker) -> None:
    token = Credentials(subject="p", swarms=frozenset({"private"}))
    for request in (
        connect("p", ("private", JOIN, LEECH), ("other", JOIN, LEECH)),
        connect("p", ("other", JOIN, SEED)),
    ):
        with pytest.raises(Forbidden, match="other"):
            await closed.handle(request, observed=VICTIM, now=0.0, credentials=token)
        assert (await closed.stats()).peers == 0
    await closed.handle(connect("p"), observed=VICTIM, now=0.0, credentials=token)
    with pytest.raises(Forbidden):
        await closed.handle(
            join("p", "private", "other"), observed=VICTIM, now=1.0, credentials=token
        )
    assert await closed.storage.memberships("p") == {}
    await closed.handle(join("p", "private"), observed=VICTIM, now=2.0, credentials=token)
    assert await closed.storage.memberships("p") == {"private": LEECH}
    # Leaving and switching to a swarm outside the token: a join, refused.
    with pytest.raises(Forbidden):
        await closed.handle(
            connect("p", ("private", LEAVE, LEECH), ("other", JOIN, LEECH)),
            observed=VICTIM,
            now=3.0,
            credentials=token,
        )
    assert await closed.storage.memberships("p") == {"private": LEECH}


async def test_a_peer_with_a_token_may_move(closed: Tracker) -> None:
    token = Credentials(subject="p")
    await closed.handle(
        connect("p", ("s", JOIN, SEED)), observed=VICTIM, now=0.0, credentials=token
    )
    await closed.handle(find("p", "s"), observed=ATTACKER, now=1.0, credentials=token)
    record = await closed.storage.get_peer("p")
    assert record is not None and record.addresses[-1].ip == ATTACKER[0]
    # Still counted for the host that registered it.
    assert await closed.storage.peers_of_host(VICTIM[0]) == 1
    assert await closed.storage.peers_of_host(ATTACKER[0]) == 0
