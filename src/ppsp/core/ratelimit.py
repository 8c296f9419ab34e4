"""Rate limits as token buckets, and the parsing of rates users type (``2MiB``, ``8Mbit``).

Sans-I/O: a bucket is told the time and answers how long to wait before sending; the I/O layer
does the waiting (:class:`AsyncRateLimiter` in :mod:`ppsp.peer.net.node`'s transport).
"""

from __future__ import annotations

import re

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/]*)\s*$")

_UNITS: dict[str, float] = {
    "": 1.0,
    "b": 1.0,
    "B": 1.0,
    "K": 1000.0,
    "KB": 1000.0,
    "k": 1000.0,
    "kB": 1000.0,
    "KiB": 1024.0,
    "M": 1000.0**2,
    "MB": 1000.0**2,
    "MiB": 1024.0**2,
    "G": 1000.0**3,
    "GB": 1000.0**3,
    "GiB": 1024.0**3,
    "bit": 1 / 8,
    "kbit": 1000 / 8,
    "Kbit": 1000 / 8,
    "Mbit": 1000.0**2 / 8,
    "Gbit": 1000.0**3 / 8,
    "kbps": 1000 / 8,
    "Kbps": 1000 / 8,
    "Mbps": 1000.0**2 / 8,
    "Gbps": 1000.0**3 / 8,
}


def parse_rate(text: str) -> float:
    """Bytes per second of a rate such as ``2MiB``, ``500KB``, ``8Mbit`` or ``1000000``.

    Byte units may end in ``/s``; bit units are ``bit``, ``kbit``, ``Mbit``, ``Gbit`` (or
    ``kbps``, ``Mbps``, ``Gbps``).  Raises ValueError for anything else or a rate of zero.
    """
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"not a rate: {text!r}")
    number, unit = match.groups()
    unit = unit.removesuffix("/s")
    if unit not in _UNITS:
        raise ValueError(f"unknown rate unit {unit!r} in {text!r}")
    rate = float(number) * _UNITS[unit]
    if rate <= 0:
        raise ValueError(f"a rate must be positive: {text!r}")
    return rate


class TokenBucket:
    """A token bucket of ``rate`` bytes per second holding at most ``burst`` bytes.

    :meth:`reserve` takes tokens even when there are not enough (the balance goes negative) and
    returns how long the caller must wait before sending, so concurrent senders queue fairly
    in the order they asked.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, *, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A burst of a tenth of a second (at least 16 KiB) keeps transfers smooth without
        # letting a peer exceed its rate noticeably over any second.
        self.burst = burst if burst is not None else max(16384.0, rate / 10)
        self._tokens = self.burst
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def reserve(self, nbytes: int, now: float) -> float:
        """Take ``nbytes`` tokens; returns the seconds to wait before sending them."""
        self._refill(now)
        self._tokens -= nbytes
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate

    def available(self, now: float) -> float:
        """Tokens available at ``now`` (negative while reservations are outstanding)."""
        self._refill(now)
        return self._tokens
