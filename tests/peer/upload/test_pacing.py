"""The upload pacer of PPSPP's DATA: reservations from the shared bucket, hosts in turn."""

from __future__ import annotations

import pytest

from ppsp.core.ratelimit import TokenBucket
from ppsp.peer.upload.pacing import UploadPacer


def pacer(rate: float = 10_000.0, quantum: int = 1000) -> UploadPacer:
    return UploadPacer(TokenBucket(rate, burst=1000.0, now=0.0), quantum=quantum)


def test_nobody_wanting_means_no_turn_and_no_deadline() -> None:
    p = pacer()
    assert p.next_sender(0.0) is None
    assert p.ready_at() is None
    assert p.reservations == 0


def test_a_host_spends_its_reservation_then_waits_for_the_next() -> None:
    p = pacer()
    p.want("a", "10.0.0.1")
    assert p.next_sender(0.0) == "a"  # the burst pays the first quantum at once
    p.spent("a", 1000, 0.0)
    assert p.next_sender(0.0) is None  # the next 1000 bytes are paid at 0.1 s
    assert p.ready_at() == pytest.approx(0.1)
    assert p.next_sender(0.05) is None
    assert p.next_sender(0.1) == "a"
    assert p.reservations == 2


def test_a_datagram_beyond_the_reservation_is_paid_by_the_next() -> None:
    p = pacer()
    p.want("a", "10.0.0.1")
    assert p.next_sender(0.0) == "a"
    p.spent("a", 2500, 0.0)  # 1500 beyond
    assert p.next_sender(0.0) is None
    # The next reservation covers the debt and a quantum: 2500 bytes at 10 kB/s.
    assert p.ready_at() == pytest.approx(0.25)


def test_hosts_take_turns_and_their_senders_too() -> None:
    p = UploadPacer(TokenBucket(1e6, burst=1e6, now=0.0), quantum=10_000)  # room for all
    p.want("a1", "10.0.0.1")
    p.want("a2", "10.0.0.1")
    p.want("b", "10.0.0.2")
    order = []
    for _ in range(6):
        sender = p.next_sender(10.0)
        assert sender is not None
        order.append(sender)
        p.spent(sender, 100, 10.0)
    assert order == ["a1", "b", "a2", "b", "a1", "b"]


def test_another_hosts_reservation_comes_first_in_the_bucket() -> None:
    # Host a's first reservation takes the burst; host b's queues behind it: a cannot spend
    # b's bytes however soon its channel asks again.
    p = pacer()
    p.want("a", "10.0.0.1")
    p.want("b", "10.0.0.2")
    assert p.next_sender(0.0) == "a"
    p.spent("a", 1000, 0.0)
    p.drop("a")  # its window is full
    assert p.next_sender(0.0) is None  # b's reservation is paid at 0.1 s
    p.want("a", "10.0.0.1")  # its ACK came
    assert p.next_sender(0.0) is None  # a's next is queued behind b's: 0.2 s
    assert p.next_sender(0.1) == "b"
    p.spent("b", 1000, 0.1)
    assert p.next_sender(0.15) is None
    assert p.next_sender(0.2) == "a"


def test_dropped_and_forgotten_senders_leave_the_turns() -> None:
    p = pacer()
    p.want("a", "10.0.0.1")
    p.drop("a")
    assert p.next_sender(0.0) is None and p.ready_at() is None
    p.want("a", "10.0.0.1")
    p.forget("a")
    assert p.wanting == 0 and p.next_sender(0.0) is None
    p.forget("a")  # twice changes nothing
    p.drop("unknown")
