"""The seeder's DATA under an upload cap (``--upload-rate``), sans-I/O, on a simulated clock.

Several leechers download from one seeder whose :class:`UploadPacer` draws on a token bucket;
an HTTP upload (reserving 16 KiB pieces from the same bucket, as ``RateLimiter.consume`` does)
may share it.  The engine waits for the pacer's deadline (``next_deadline``), never polls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ppsp.core.ratelimit import TokenBucket
from ppsp.peer.ppspp import SeededContent, Seeder
from ppsp.peer.ppspp.leecher import Leecher, LeecherConfig
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.ppspp import MerkleHashFunction

RATE = 100_000.0
"""Bytes per second of the cap."""
PIECE = 16384
"""An HTTP upload's piece (``endpoint.UPLOAD_PIECE``)."""


@dataclass
class _Run:
    received: dict[tuple[str, int], int] = field(default_factory=dict)
    http_bytes: int = 0
    timer_calls: int = 0


def run(
    addresses: list[tuple[str, int]],
    *,
    until: float,
    http: bool = False,
    size: int = 1 << 20,
) -> tuple[_Run, Seeder]:
    """Leechers at ``addresses`` download ``size`` bytes each from a capped seeder until
    ``until`` (simulated seconds); with ``http``, an HTTP upload draws on the bucket too."""
    data = random.Random(size).randbytes(size)
    content = SeededContent.from_bytes(data, merkle_hash=MerkleHashFunction.SHA1)
    bucket = TokenBucket(RATE, now=0.0)
    seeder = Seeder(content, pacer=UploadPacer(bucket))
    now = 0.0
    leechers = {a: Leecher(content.swarm_id, now, LeecherConfig()) for a in addresses}
    result = _Run(received=dict.fromkeys(addresses, 0))
    http_ready = 0.0  # when the HTTP upload's reserved piece is paid for
    while now < until:
        moved = False
        for address, leecher in leechers.items():
            for datagram in leecher.datagrams_to_send():
                seeder.datagram_received(datagram, address, now)
                moved = True
        for address, datagram in seeder.datagrams_to_send():
            leechers[address].datagram_received(datagram, now)
            moved = True
        for address, leecher in leechers.items():
            for _, chunk in leecher.take_chunks():
                result.received[address] += len(chunk)
        if moved:
            continue
        deadlines = [t for t in (seeder.next_deadline(),) if t is not None]
        deadlines += [t for leecher in leechers.values() if (t := leecher.next_deadline())]
        if http:
            deadlines.append(http_ready)
        now = max(now, min(deadlines))
        if http and now >= http_ready:
            # RateLimiter.consume: reserve a piece, wait until it is paid for, send it.
            http_ready = now + bucket.reserve(PIECE, now)
            result.http_bytes += PIECE
        for leecher in leechers.values():
            leecher.handle_timer(now)
        result.timer_calls += 1
        seeder.handle_timer(now)
    return result, seeder


def test_ppspp_uploads_keep_to_the_cap() -> None:
    result, seeder = run([("127.0.0.3", 4000)], until=3.0)
    sent = sum(result.received.values())
    # The bucket's burst (16 KiB) and one datagram beyond the rate, never more; the DATA's
    # headers and hashes count too, so a little less of the chunks' bytes.
    assert 0.85 * RATE * 3.0 <= sent <= RATE * 3.0 + 16384 + 2048, sent
    # Waiting for the bucket is a deadline: about one wake-up per DATA, not a busy loop.
    assert result.timer_calls <= 2 * seeder.stats["data_sent"] + 50, result.timer_calls
    assert seeder.stats["paced_waits"] > 0


def test_without_a_pacer_nothing_waits() -> None:
    data = random.Random(1).randbytes(200_000)
    content = SeededContent.from_bytes(data, merkle_hash=MerkleHashFunction.SHA1)
    seeder = Seeder(content)
    leecher = Leecher(content.swarm_id, 0.0, LeecherConfig())
    address = ("127.0.0.3", 4000)
    for _ in range(10_000):
        if leecher.done:
            break
        for datagram in leecher.datagrams_to_send():
            seeder.datagram_received(datagram, address, 0.0)
        for _, datagram in seeder.datagrams_to_send():
            leecher.datagram_received(datagram, 0.0)
    assert leecher.done  # all of it at time 0: no cap
    assert seeder.stats["paced_waits"] == 0


def test_hosts_take_turns_however_many_channels_one_opens() -> None:
    a1, a2, b = ("127.0.0.3", 4000), ("127.0.0.3", 4001), ("127.0.0.4", 4000)
    result, _ = run([a1, a2, b], until=3.0)
    host_a = result.received[a1] + result.received[a2]
    host_b = result.received[b]
    assert 0.8 <= host_a / host_b <= 1.25, result.received
    total = host_a + host_b
    assert total <= RATE * 3.0 + 16384 + 2048, total


def test_http_and_ppspp_share_one_budget() -> None:
    result, _ = run([("127.0.0.3", 4000)], until=3.0, http=True)
    ppspp = sum(result.received.values())
    # Together within the cap (the HTTP piece reserved last may be unpaid yet)...
    assert ppspp + result.http_bytes <= RATE * 3.0 + 16384 + PIECE + 2048
    # ...and each gets a fair part of it.
    assert ppspp >= 0.25 * RATE * 3.0, (ppspp, result.http_bytes)
    assert result.http_bytes >= 0.25 * RATE * 3.0, (ppspp, result.http_bytes)


def test_each_data_is_told_with_its_content_address_and_bytes() -> None:
    # The hook the I/O layer attributes uploads with (peer/net/ppspp_uploads.py).
    data = random.Random(2).randbytes(5000)
    content = SeededContent.from_bytes(data, merkle_hash=MerkleHashFunction.SHA1)
    seeder = Seeder(content)
    told: list[tuple[bytes, tuple[str, int], int]] = []
    seeder.on_data = lambda root, address, nbytes: told.append((root, address, nbytes))
    leecher = Leecher(content.swarm_id, 0.0, LeecherConfig())
    address = ("127.0.0.3", 4000)
    for _ in range(1000):
        if leecher.done:
            break
        for datagram in leecher.datagrams_to_send():
            seeder.datagram_received(datagram, address, 0.0)
        for _, datagram in seeder.datagrams_to_send():
            leecher.datagram_received(datagram, 0.0)
    assert leecher.done
    assert {(root, where) for root, where, _ in told} == {(content.swarm_id, address)}
    assert sum(nbytes for _, _, nbytes in told) == len(data)  # 4 chunks of 1024, one of 904
