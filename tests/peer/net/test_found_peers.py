"""What a download takes from other peers' FIND answers (peer/net/node.py ``find_via_peers``).

A connected peer answers every FIND with 1000 invented peers, all at one victim address (the
flood a liar sends downloaders to), or each at a host of its own.  Without a bound, the
download would remember every one of them, connect to each, and pass them on in its own FIND
answers.  The exchange is the liar's answer itself (no sockets: the I/O of FIND is as before).
"""

from __future__ import annotations

import pytest

from ppsp.peer.download.peers import MAX_FOUND_PEERS, MAX_FOUND_PER_HOST
from ppsp.peer.net.node import PEER_PROTOCOL, PeerNode
from ppsp.peer.net.session import RemotePeer, SwarmSession
from ppsp.peer.protocol.handler import DEFAULT_MAX_PEERS
from ppsp.wire.peer import HTTP, FindResponse, PeerRequest, PeerResponse, TransportOffer
from ppsp.wire.tracker import AddressFamily, PeerAddress, PeerInfo, PeerMode

SWARM = "ab" * 32
LIAR_ID = "11a7" * 4


def _listed(peer_id: str, host: str, port: int) -> PeerInfo:
    address = PeerAddress(
        ip=host, port=port, family=AddressFamily.IPV4, peer_protocol=PEER_PROTOCOL
    )
    return PeerInfo(peer_id=peer_id, addresses=(address,))


def _swarm(monkeypatch: pytest.MonkeyPatch, invent: str) -> tuple[PeerNode, SwarmSession]:
    """A download connected to the liar, whose FIND answers are ``invent``ed peers: all at
    one address (``"victim"``) or each at a host of its own (``"hosts"``)."""
    node = PeerNode(tracker_url="http://127.0.0.1:9/", host="127.0.4.4")
    session = SwarmSession(swarm_id=SWARM, description=None, store=None, mode=PeerMode.LEECH)
    node.sessions[SWARM] = session
    (liar,) = node.add_peers(session, [_listed(LIAR_ID, "127.0.5.5", 7000)])
    liar.offer = TransportOffer(type=HTTP, uri="http://127.0.5.5:7000/c/{chunk}")
    answers = 0

    async def exchange(remote: RemotePeer, request: PeerRequest) -> PeerResponse:
        nonlocal answers
        answers += 1
        peers = tuple(
            _listed(f"{answers:04x}{n:012x}", "127.0.8.8", 1 + n)
            if invent == "victim"
            else _listed(f"{answers:04x}{n:012x}", f"10.{answers}.{n // 256}.{n % 256}", 7000)
            for n in range(1000)
        )
        return FindResponse(transaction_id=request.transaction_id, swarm_id=SWARM, peers=peers)

    monkeypatch.setattr(node, "exchange", exchange)
    return node, session


async def test_invented_peers_at_one_address_are_taken_a_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node, session = _swarm(monkeypatch, "victim")
    for _ in range(20):
        await node.find_via_peers(session)
    at_victim = [r for r in session.remotes.values() if r.base_url.startswith("http://127.0.8.8:")]
    assert len(at_victim) == MAX_FOUND_PER_HOST
    # Nobody we never reached is passed on in our own FIND answers.
    assert [known.info.peer_id for known in node.known_peers(SWARM)] == [LIAR_ID]
    at_victim[0].offer = TransportOffer(type=HTTP, uri=at_victim[0].base_url + "/c/{chunk}")
    assert len(node.known_peers(SWARM)) == 2  # once reached, it is a peer like the others


async def test_invented_peers_everywhere_are_bounded_per_answer_and_in_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node, session = _swarm(monkeypatch, "hosts")
    assert len(await node.find_via_peers(session)) == DEFAULT_MAX_PEERS
    for _ in range(20):
        await node.find_via_peers(session)
    assert len(session.remotes) == 1 + MAX_FOUND_PEERS
    assert len(session.report(node.peer_id)["peers"]) == 1 + MAX_FOUND_PEERS  # type: ignore[arg-type]
    # The tracker's lists are not bounded so: what it lists, it observed.
    listed = [_listed(f"{n:016x}", f"10.200.{n // 256}.{n % 256}", 7000) for n in range(300)]
    assert len(node.add_peers(session, listed)) == 300
