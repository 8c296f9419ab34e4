"""PEX (RFC 7574 section 3.10) and CHOKE/UNCHOKE (section 3.9) in the PPSPP engines, sans-I/O.

A seeder answers a PEX_REQ with the addresses of other live peers of the same swarm, bounded
in count and in rate, never the asker's own; a client keeps an answer's addresses only when it
asked, as candidates, bounded.  A seeder chokes a channel asking more than it queues; the
client hands its wanted chunks back (to be asked elsewhere) and asks again once unchoked.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs.ppspp import EncoderProfile, decode_datagram, encode_datagram
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.channel import Event
from ppsp.peer.ppspp.client import TRANSITIONS, ChannelState, ChunkChoked, ChunkVerified
from ppsp.peer.ppspp.leecher import Leecher, LeecherConfig, LeecherState
from ppsp.peer.ppspp.live_server import LIVE_PARAMETERS
from ppsp.peer.ppspp.pex import PexBounds
from ppsp.wire.ppspp import (
    ChannelParameters,
    Choke,
    ChunkAddressing,
    ContentIntegrity,
    Datagram,
    Handshake,
    MerkleHashFunction,
    Message,
    PexReq,
    PexResCert,
    PexResV4,
    PexResV6,
    Request,
    Unchoke,
)

from .test_client import ADDRESS, Pair, client_for, content_of

LIBSWIFT = ChannelParameters.libswift()
CONTENT = SeededContent.from_bytes(random.Random(5).randbytes(8000))
OTHER = SeededContent.from_bytes(random.Random(6).randbytes(8000))
Address = tuple[Any, ...]


def seeder(**config: Any) -> Seeder:
    ids = iter(range(0x5EED0001, 0x5EED0001 + 10_000))
    return Seeder(
        [CONTENT, OTHER],
        config=SeederConfig(**config),
        channel_ids=lambda: next(ids),
        rng=random.Random(1),
    )


def join(engine: Seeder, address: Address, now: float, content: SeededContent = CONTENT) -> int:
    """Open and confirm a channel from ``address``; our channel ID for it."""
    handshake = Handshake(
        source_channel=0x1111,
        version=1,
        min_version=1,
        swarm_id=content.swarm_id,
        content_integrity=ContentIntegrity.MERKLE,
        merkle_hash=MerkleHashFunction.SHA1,
        chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
    )
    opening = Datagram(channel=0, messages=(handshake,))
    engine.datagram_received(encode(opening), address, now)
    ours = next(c.local_id for c in engine.channels if c.address == address)
    engine.datagram_received(encode(Datagram(channel=ours, messages=())), address, now)
    return ours


def encode(datagram: Datagram) -> bytes:
    return encode_datagram(datagram, LIBSWIFT, profile=EncoderProfile.PLAIN)


def ask(engine: Seeder, ours: int, address: Address, now: float, count: int = 1) -> list[Message]:
    """Send ``count`` PEX_REQ in one datagram; the messages sent back to ``address``."""
    engine.datagrams_to_send()
    engine.datagram_received(
        encode(Datagram(channel=ours, messages=(PexReq(),) * count)), address, now
    )
    return [
        message
        for to, data in engine.datagrams_to_send()
        if to == address
        for message in decode_datagram(data, LIBSWIFT).messages
    ]


def named(messages: list[Message]) -> set[tuple[str, int]]:
    return {(str(m.address), m.port) for m in messages if isinstance(m, PexResV4 | PexResV6)}


# --- the seeder's answer --------------------------------------------------------------------


def test_an_answer_names_live_peers_of_the_swarm_and_never_the_asker() -> None:
    engine = seeder()
    asker = ("1.2.3.1", 7000)
    ours = join(engine, asker, 0.0)
    join(engine, ("1.2.3.1", 7001), 50.0)  # same host, another port: a peer
    join(engine, ("5.6.7.2", 7000), 50.0)
    join(engine, ("5.6.7.3", 7000), 0.0)  # heard from 70 s before the request: stale
    join(engine, ("5.6.7.4", 7000), 50.0, OTHER)  # another swarm
    join(engine, ("10.0.0.5", 7000), 50.0)  # private: not told to a public asker
    join(engine, ("2001:db8::7", 7000, 0, 0), 50.0)  # another family
    engine.datagram_received(b"\x00\x00\x00\x00" + b"x", ("5.6.7.9", 1), 50.0)  # junk
    answer = ask(engine, ours, asker, 70.0)
    assert named(answer) == {("1.2.3.1", 7001), ("5.6.7.2", 7000)}
    assert all(isinstance(m, PexResV4) for m in answer)
    # A private asker is told of private peers too (RFC 7574 section 8.13).
    private = ("10.0.0.9", 7000)
    theirs = join(engine, private, 70.0)
    assert ("10.0.0.5", 7000) in named(ask(engine, theirs, private, 70.0))


def test_ipv6_askers_get_pex_resv6() -> None:
    engine = seeder()
    asker = ("2001:db8::1", 7000, 0, 0)
    ours = join(engine, asker, 0.0)
    join(engine, ("2001:db8::2", 7000, 0, 0), 0.0)
    answer = ask(engine, ours, asker, 1.0)
    assert answer == [PexResV6(address=IPv6Address("2001:db8::2"), port=7000)]


def test_nobody_to_name_no_answer_and_a_half_open_asker_gets_nothing() -> None:
    engine = seeder()
    ours = join(engine, ("1.2.3.1", 7000), 0.0)
    assert ask(engine, ours, ("1.2.3.1", 7000), 1.0) == []
    assert engine.stats["pex_req_nobody"] == 1


def test_a_pex_flood_is_answered_once_per_interval() -> None:
    engine = seeder()
    asker = ("1.2.3.1", 7000)
    ours = join(engine, asker, 0.0)
    for host in range(30):
        join(engine, (f"5.6.7.{host + 1}", 7000), 0.0)
    answers = 0
    for tick in range(40):  # 100 PEX_REQ a datagram, every 0.25 s for 10 s
        answer = ask(engine, ours, asker, 1.0 + tick / 4, count=100)
        assert len(answer) <= 8
        answers += bool(answer)
    # One answer per second (pex_min_interval), never more than 8 addresses each.
    assert answers == 10 and engine.stats["pex_req_answered"] == 10
    assert engine.stats["pex_req_limited"] == 40 * 100 - 10
    assert engine.stats["pex_addresses_sent"] == 80
    assert len(engine.channels) == 31  # nobody was closed


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1.2.3.", "5.6.7.", "10.1.0.", "127.0.0."]),
            st.integers(1, 8),
            st.integers(1, 3),
            st.floats(0, 100),
            st.booleans(),
        ),
        max_size=30,
    ),
    st.integers(0, 3),
    st.sampled_from(["1.2.3.200", "10.1.0.200"]),
)
def test_an_answer_is_a_bounded_sample_of_the_eligible_peers(
    peers: list[tuple[str, int, int, float, bool]], bound: int, asker_host: str
) -> None:
    engine = seeder(pex_max_addresses=bound)
    asker = (asker_host, 9000)
    ours = join(engine, asker, 100.0)
    eligible = set()
    for prefix, host, port, heard, same_swarm in peers:
        address = (f"{prefix}{host}", 9000 + port)
        if any(c.address == address for c in engine.channels):
            continue
        join(engine, address, heard, CONTENT if same_swarm else OTHER)
        internal = ip_address(address[0]).is_private
        if same_swarm and heard >= 40.0 and (not internal or asker_host.startswith("10.")):
            eligible.add(address)
    answer = named(ask(engine, ours, asker, 100.0))
    assert answer <= eligible and asker not in answer
    assert len(answer) == min(bound, len(eligible))


def test_unasked_pex_res_and_certificates_are_ignored_by_the_seeder() -> None:
    engine = seeder()
    ours = join(engine, ("1.2.3.1", 7000), 0.0)
    unasked = (PexResV4(address=IPv4Address("1.2.3.99"), port=1), PexResCert(certificate=b"x"))
    engine.datagram_received(
        encode(Datagram(channel=ours, messages=unasked)), ("1.2.3.1", 7000), 1.0
    )
    assert len(engine.channels) == 1
    assert engine.stats["pex_res_unsolicited"] == engine.stats["pex_rescert_ignored"] == 1


# --- the client's side ----------------------------------------------------------------------


def _pex_answer(pair: Pair, *messages: Message) -> None:
    client = pair.client
    datagram = Datagram(channel=client.local_id, messages=messages)
    client.datagram_received(encode_datagram(datagram, client._parameters), pair.now)


def test_the_client_keeps_only_an_answer_it_asked_for_bounded_and_unicast() -> None:
    _, content = content_of(4096, 1024)
    client = client_for(content, pex=PexBounds(max_per_answer=3, max_candidates=4))
    pair = Pair(content, client)
    pair.run(lambda: client.state is ChannelState.OPEN)
    v4 = [PexResV4(address=IPv4Address(f"5.6.7.{i}"), port=7000) for i in range(1, 9)]
    _pex_answer(pair, v4[0])  # unasked
    assert client.take_candidates() == [] and client.stats["pex_res_unsolicited"] == 1
    assert client.request_peers(pair.now)
    assert not client.request_peers(pair.now)  # one outstanding, and a rate
    junk: list[Message] = [
        PexResV4(address=IPv4Address("224.0.0.1"), port=7000),  # multicast
        PexResV4(address=IPv4Address("0.0.0.0"), port=7000),
        PexResV4(address=IPv4Address("5.6.7.1"), port=0),
        PexResV6(address=IPv6Address("::ffff:5.6.7.1"), port=7000),  # mapped
    ]
    _pex_answer(pair, *junk, *v4[:5])
    assert client.take_candidates() == [
        ("5.6.7.1", 7000),
        ("5.6.7.2", 7000),
        ("5.6.7.3", 7000),
    ]
    assert client.stats["pex_res_unusable"] == 4 and client.stats["pex_res_over_bound"] == 2
    _pex_answer(pair, v4[6])  # a second answer to the same request: unasked
    assert client.take_candidates() == [] and client.stats["pex_res_unsolicited"] == 2
    pair.now += client.config.pex.interval
    assert client.request_peers(pair.now)
    _pex_answer(pair, *v4[3:])
    assert client.take_candidates() == [("5.6.7.4", 7000)]  # the channel's bound: 4
    pair.now += client.config.pex.interval
    assert not client.request_peers(pair.now)  # nothing more will be kept


def test_a_client_learns_the_seeders_other_peers_end_to_end() -> None:
    _, content = content_of(4096, 1024)
    client = client_for(content)
    pair = Pair(content, client)
    for host in range(3):  # other peers of the swarm, as the seeder sees them
        handshake = Handshake(
            source_channel=0x2222,
            version=1,
            min_version=1,
            swarm_id=content.swarm_id,
            content_integrity=ContentIntegrity.MERKLE,
            merkle_hash=MerkleHashFunction.SHA256,
            chunk_addressing=ChunkAddressing.CHUNK_RANGE_32,
        )
        other = (f"127.0.0.{10 + host}", 7000)
        pair.seeder.datagram_received(
            encode(Datagram(channel=0, messages=(handshake,))), other, 0.0
        )
        ours = next(c.local_id for c in pair.seeder.channels if c.address == other)
        pair.seeder.datagram_received(encode(Datagram(channel=ours, messages=())), other, 0.0)
    pair.seeder.datagrams_to_send()
    pair.run(lambda: client.state is ChannelState.OPEN)
    assert client.request_peers(pair.now)
    pair.run(lambda: client.stats["pex_answers"] > 0, limit=5.0)
    assert sorted(client.take_candidates()) == [(f"127.0.0.{10 + h}", 7000) for h in range(3)]
    assert ADDRESS not in client.take_candidates()


# --- choking ---------------------------------------------------------------------------------


def test_choke_hands_chunks_back_and_unchoke_resumes() -> None:
    _, content = content_of(16 * 1024, 1024)
    client = client_for(content)
    pair = Pair(content, client)
    pair.seeder = Seeder(content, config=SeederConfig(max_request_ranges=2))
    pair.run(lambda: client.state is ChannelState.OPEN)
    client.request_many([0, 2, 4, 6], pair.now)  # four ranges: over the seeder's bound of 2
    pair.run(lambda: client.choked, limit=pair.now + 1)
    assert pair.seeder.stats["chokes_sent"] == 1
    # Every chunk wanted is handed back, to be asked elsewhere; none is asked again here.
    assert sorted(r.index for r in pair.results if isinstance(r, ChunkChoked)) == [0, 2, 4, 6]
    assert client.wanted == frozenset()
    client.request(8, pair.now)  # asked while choked: handed back at once
    assert client.take_results() == [ChunkChoked(8)]
    assert all(
        not isinstance(m, Request)
        for data in client.datagrams_to_send()
        for m in decode_datagram(data, client._parameters).messages
    )
    pair.results.clear()
    pair.run(lambda: client.state is ChannelState.OPEN, limit=pair.now + 5)
    assert pair.seeder.stats["unchokes_sent"] == 1 and client.stats["unchoked"] == 1
    client.request_many([0, 2], pair.now)
    pair.run(lambda: len(pair.verified()) == 2, limit=pair.now + 5)
    assert sorted(pair.verified()) == [0, 2]
    assert all(isinstance(r, ChunkVerified) for r in pair.results)


def test_the_client_state_table() -> None:
    opened, choked = ChannelState.OPEN, ChannelState.CHOKED
    assert TRANSITIONS[(opened, Event.CHOKE)] is choked
    assert TRANSITIONS[(choked, Event.UNCHOKE)] is opened
    assert TRANSITIONS[(choked, Event.DATA)] is choked  # in flight before the CHOKE
    assert TRANSITIONS[(choked, Event.CLOSE)] is ChannelState.CLOSED
    # Live signatures on a stored content's channel: a protocol error (the codec already
    # refuses them without the live options).
    assert (opened, Event.SIGNED_INTEGRITY) not in TRANSITIONS


def test_the_leecher_requests_nothing_while_choked_and_resumes_retries_first() -> None:
    content = SeededContent.from_bytes(random.Random(3).randbytes(64 * 1024))
    engine = Seeder(content)
    leecher = Leecher(content.swarm_id, 0.0, LeecherConfig())
    now = 0.0
    for data in leecher.datagrams_to_send():
        engine.datagram_received(data, ADDRESS, now)
    for _, data in engine.datagrams_to_send():
        leecher.datagram_received(data, now)  # the answer: the first requests go out
    requests = leecher.datagrams_to_send()
    assert requests and leecher.state is LeecherState.DOWNLOADING

    def tell(*messages: Message) -> list[Message]:
        datagram = Datagram(channel=leecher.local_id, messages=messages)
        leecher.datagram_received(encode_datagram(datagram, leecher._parameters), now)
        return [
            m
            for data in leecher.datagrams_to_send()
            for m in decode_datagram(data, leecher._parameters).messages
        ]

    asked = [m for m in decode_datagram(requests[-1], leecher._parameters).messages]
    window = leecher._window
    assert tell(Choke()) == []
    now = 10.0  # past every request timeout: nothing is asked again while choked
    leecher.handle_timer(now)
    sent = [
        m
        for d in leecher.datagrams_to_send()
        for m in decode_datagram(d, leecher._parameters).messages
    ]
    assert not any(isinstance(m, Request) for m in sent)
    again = [m for m in tell(Unchoke()) if isinstance(m, Request)]
    assert again[: len(asked)] == [m for m in asked if isinstance(m, Request)]
    assert leecher.stats["choked"] == leecher.stats["unchoked"] == 1
    assert leecher._window == window  # a CHOKE is no loss: the window is not shrunk


def test_a_choked_live_receiver_asks_again_on_unchoke_and_servers_ignore_pex() -> None:
    from .test_live import NOW, exchange, payload, source
    from .test_live import connected as live_connected

    server = source()
    server.append(0, payload(0, 100), NOW)
    receiver = live_connected(server)

    def tell(*messages: Message) -> None:
        assert receiver.remote_id is not None
        datagram = Datagram(channel=receiver.local_id, messages=messages)
        receiver.datagram_received(encode_datagram(datagram, LIVE_PARAMETERS), NOW)

    tell(Choke())
    receiver.request(0, NOW)
    receiver.handle_timer(NOW + 10)  # past the request timeout: still nothing asked
    sent = receiver.datagrams_to_send()
    assert not any(
        isinstance(m, Request) for d in sent for m in decode_datagram(d, LIVE_PARAMETERS).messages
    )
    tell(Unchoke(), PexResV4(address=IPv4Address("1.2.3.4"), port=1))
    exchange(server, receiver)
    assert [r.data for r in receiver.take_completed()] == [payload(0, 100)]
    assert receiver.stats["unchoked"] == receiver.stats["pex_res_unsolicited"] == 1
    channel = next(iter(server._channels))
    server.datagram_received(
        encode_datagram(Datagram(channel=channel, messages=(PexReq(),)), LIVE_PARAMETERS),
        ("127.0.0.1", 4000),
        NOW,
    )
    assert server.datagrams_to_send() == [] and server.stats["pex_req_ignored"] == 1


def test_the_transports_candidates_are_filtered_bounded_and_handed_on() -> None:
    from ppsp.peer.ppspp.pex import MAX_PEX_CANDIDATES, PexCandidates

    open_channels = [1]
    pex = PexCandidates(lambda: open_channels[0])
    handed: list[tuple[str, int]] = []
    pex.on_candidates = handed.extend
    assert pex.wanted
    source = ("1.2.3.4", 7000)
    pex.learned(source, [source, ("10.0.0.1", 7000), ("::1", 7000), ("5.6.7.8", 7000)])
    # Not the answering peer itself, no private address from a public peer, one family.
    assert handed == [("5.6.7.8", 7000)]
    pex.learned(("10.0.0.9", 7000), [("10.0.0.1", 7000), ("5.6.7.8", 7000)])
    assert handed == [("5.6.7.8", 7000), ("10.0.0.1", 7000)]  # each once
    pex.learned(source, [(f"9.9.{i // 250}.{i % 250 + 1}", 7000) for i in range(100)])
    assert len(pex.candidates) == len(handed) == MAX_PEX_CANDIDATES
    assert not pex.wanted
    open_channels[0] = 4
    pex.candidates.clear()
    assert not pex.wanted  # enough channels open: nobody is asked
