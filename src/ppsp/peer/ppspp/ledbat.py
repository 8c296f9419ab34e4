"""The sending pace of one channel: a window of DATA in flight, sized by LEDBAT (RFC 6817).

The window counts datagrams of one chunk (LEDBAT's MSS is one DATA datagram here).  Each ACK
brings a one-way delay sample (RFC 7574 section 8.7: the receiver's clock at arrival minus the
DATA's timestamp, in microseconds); the lowest sample of the last minutes is the base delay, the
excess over it the queuing delay, and the window grows while that stays under TARGET and
shrinks above it (RFC 6817 section 2.4.2).  A DATA not acknowledged within the retransmission
timeout (RFC 6298's estimator over the ACKs' round trips) counts as lost: the window halves, at
most once per round trip.  Pure arithmetic: time is an argument.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Ledbat", "LedbatParameters", "signed_delay"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LedbatParameters:
    """LEDBAT's constants (RFC 6817 section 2.5) and the window's bounds, in datagrams."""

    target: float = 0.100
    """TARGET: the queuing delay aimed at, in seconds (RFC 6817: at most 100 ms)."""
    gain: float = 1.0
    """GAIN: how fast the window follows the delay (RFC 6817: at most 1)."""
    base_history: int = 10
    """BASE_HISTORY: minutes of base-delay minima kept."""
    current_filter: int = 4
    """CURRENT_FILTER: delay samples whose minimum is the current delay."""
    init_cwnd: float = 2.0
    """INIT_CWND in datagrams."""
    min_cwnd: float = 2.0
    """MIN_CWND in datagrams."""
    max_cwnd: float = 256.0
    """A bound on the window whatever the delay says (memory and fairness on loopback)."""
    allowed_increase: float = 1.0
    """ALLOWED_INCREASE: the window stays within this many datagrams of what is in flight."""
    initial_rto: float = 1.0
    """The retransmission timeout before a round trip was measured (RFC 6298)."""
    min_rto: float = 0.25
    """The shortest retransmission timeout."""
    max_rto: float = 4.0
    """The longest retransmission timeout."""


_SIGN = 1 << 63
_WRAP = 1 << 64


def signed_delay(sample: int) -> int:
    """An ACK's 64-bit delay field read as a signed number of microseconds (clocks differ)."""
    return sample - _WRAP if sample >= _SIGN else sample


class Ledbat:
    """One channel's congestion window and retransmission timer."""

    __slots__ = (
        "_base",
        "_current",
        "_last_decrease",
        "cwnd",
        "params",
        "rttvar",
        "srtt",
    )

    def __init__(self, params: LedbatParameters | None = None) -> None:
        self.params = params or LedbatParameters()
        self.cwnd = self.params.init_cwnd
        """The congestion window in datagrams."""
        self.srtt: float | None = None
        """Smoothed round trip in seconds (None before the first sample)."""
        self.rttvar = 0.0
        self._base: deque[tuple[int, int]] = deque()  # (minute, lowest delay in it)
        self._current: deque[int] = deque(maxlen=self.params.current_filter)
        self._last_decrease = float("-inf")

    @property
    def rto(self) -> float:
        """The retransmission timeout in seconds."""
        p = self.params
        if self.srtt is None:
            return p.initial_rto
        return min(p.max_rto, max(p.min_rto, self.srtt + 4 * self.rttvar))

    def allows(self, in_flight: int) -> bool:
        """True when one more DATA may leave with ``in_flight`` unacknowledged."""
        return in_flight < int(self.cwnd)

    def on_ack(self, *, now: float, sent_at: float, delay_us: int, in_flight: int) -> None:
        """A DATA sent at ``sent_at`` was acknowledged with one-way delay ``delay_us``.

        ``in_flight`` counts the DATA still unacknowledged after this one.
        """
        self._round_trip(max(0.0, now - sent_at))
        delay = signed_delay(delay_us)
        minute = int(now // 60)
        if self._base and self._base[-1][0] == minute:
            if delay < self._base[-1][1]:
                self._base[-1] = (minute, delay)
        else:
            self._base.append((minute, delay))
            while len(self._base) > self.params.base_history:
                self._base.popleft()
        self._current.append(delay)
        p = self.params
        queuing = (min(self._current) - min(base for _, base in self._base)) / 1e6
        off_target = (p.target - queuing) / p.target
        self.cwnd += p.gain * off_target / self.cwnd
        self.cwnd = min(self.cwnd, in_flight + 1 + p.allowed_increase, p.max_cwnd)
        self.cwnd = max(self.cwnd, p.min_cwnd)

    def on_loss(self, now: float) -> None:
        """A DATA was not acknowledged in time: halve the window, once per round trip."""
        if now - self._last_decrease < (self.srtt if self.srtt is not None else self.rto):
            return
        self._last_decrease = now
        self.cwnd = max(self.params.min_cwnd, self.cwnd / 2)

    def _round_trip(self, sample: float) -> None:
        # RFC 6298 section 2: alpha 1/8, beta 1/4.
        if self.srtt is None:
            self.srtt, self.rttvar = sample, sample / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - sample)
            self.srtt = 0.875 * self.srtt + 0.125 * sample
