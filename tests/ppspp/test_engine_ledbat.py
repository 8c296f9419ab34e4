"""The seeder's sending pace (``peer/ppspp/ledbat.py``): LEDBAT's window (RFC 6817) and the
retransmission timeout, as pure arithmetic over given times and delay samples."""

from __future__ import annotations

from ppsp.peer.ppspp.ledbat import Ledbat, LedbatParameters, signed_delay


def feed(ledbat: Ledbat, delays_us: list[int], *, start: float = 0.0, rtt: float = 0.01) -> float:
    """ACK one DATA per delay sample, each a round trip after it was sent, the window full."""
    now = start
    for delay in delays_us:
        now += rtt
        ledbat.on_ack(now=now, sent_at=now - rtt, delay_us=delay, in_flight=int(ledbat.cwnd))
    return now


def test_the_window_grows_while_there_is_no_queuing_delay() -> None:
    ledbat = Ledbat()
    assert ledbat.cwnd == 2.0 and ledbat.allows(1) and not ledbat.allows(2)
    feed(ledbat, [5_000] * 200)
    assert ledbat.cwnd > 15  # about one datagram more per window acknowledged


def test_the_window_shrinks_when_queuing_delay_passes_the_target() -> None:
    ledbat = Ledbat()
    now = feed(ledbat, [5_000] * 300)
    grown = ledbat.cwnd
    # The one-way delay rises 200 ms over its base, twice TARGET: the window shrinks by
    # about one datagram per window acknowledged, down to its minimum.
    now = feed(ledbat, [205_000] * 100, start=now)
    assert ledbat.cwnd < grown - 3
    feed(ledbat, [205_000] * 1000, start=now)
    assert ledbat.cwnd == LedbatParameters().min_cwnd


def test_the_window_never_runs_ahead_of_what_is_in_flight() -> None:
    ledbat = Ledbat()
    for step in range(500):  # an application that keeps only one DATA in flight
        ledbat.on_ack(now=step * 0.01, sent_at=step * 0.01 - 0.005, delay_us=100, in_flight=0)
    assert ledbat.cwnd <= 2.0 + LedbatParameters().allowed_increase


def test_loss_halves_the_window_once_per_round_trip() -> None:
    ledbat = Ledbat()
    now = feed(ledbat, [1_000] * 300)
    before = ledbat.cwnd
    ledbat.on_loss(now)
    ledbat.on_loss(now + 0.001)  # the same round trip's other losses
    assert ledbat.cwnd == before / 2
    ledbat.on_loss(now + 1.0)
    assert ledbat.cwnd == before / 4


def test_the_retransmission_timeout_follows_the_round_trip_within_bounds() -> None:
    params = LedbatParameters()
    ledbat = Ledbat(params)
    assert ledbat.rto == params.initial_rto
    feed(ledbat, [1_000] * 50, rtt=0.001)
    assert ledbat.rto == params.min_rto
    feed(ledbat, [1_000] * 50, rtt=30.0)
    assert ledbat.rto == params.max_rto


def test_delay_samples_are_signed() -> None:
    # A receiver whose clock is behind ours reports a "negative" delay, two's complement.
    assert signed_delay((1 << 64) - 5) == -5 and signed_delay(7) == 7
    ledbat = Ledbat()
    feed(ledbat, [(1 << 64) - 3_000] * 50)
    assert ledbat.cwnd > 2.0
