"""Learning a socket's reflexive address and keeping its NAT binding alive, sans-I/O.

A peer behind a NAT asks a STUN server for the reflexive address of the one UDP socket it
serves PPSPP on, then asks again every :data:`REFRESH_INTERVAL` seconds: each Binding request
refreshes the NAT's mapping of that socket (a masquerading router forgets an idle UDP mapping
after 30 s; RFC 4787 REQ-5 asks for no less than 2 minutes, many routers do less), and a new
answer tells when the mapping changed.  The I/O layer sends what :meth:`BindingKeeper.timer`
returns to the server, hands it every STUN datagram that came from the server
(:meth:`BindingKeeper.receive`) and calls :meth:`BindingKeeper.timer` at
:meth:`BindingKeeper.next_deadline`, with a fresh random transaction ID each time (used only
when a new Binding starts): the core draws nothing and reads no clock.
"""

from __future__ import annotations

from ppsp.errors import StunError
from ppsp.peer.nat.binding import QUICK, BindingTransaction, Retransmission

__all__ = ["REFRESH_INTERVAL", "BindingKeeper"]

REFRESH_INTERVAL = 20.0
"""Seconds between Bindings: inside the 25 s a NAT binding is assumed to live."""


class BindingKeeper:
    """One Binding after another to the same server, ``interval`` seconds apart.

    :attr:`mapped` is the last reflexive address learnt (None before the first answer);
    :attr:`error` the last failure (cleared by the next success).  A failed Binding is tried
    again ``interval`` after it started too: the server may come back, and the requests still
    keep the mapping alive.
    """

    def __init__(
        self,
        now: float,
        *,
        interval: float = REFRESH_INTERVAL,
        retransmission: Retransmission = QUICK,
        software: str | None = "ppsp",
    ) -> None:
        if interval <= 0:
            raise ValueError("the refresh interval must be positive")
        self.interval = interval
        self.retransmission = retransmission
        self.software = software
        self.mapped: tuple[str, int] | None = None
        self.error: StunError | None = None
        self.bindings = 0
        """Binding transactions started."""
        self.answers = 0
        """Binding transactions answered with an address."""
        self.changes = 0
        """Times the reflexive address changed after the first answer (the NAT remapped)."""
        self._current: BindingTransaction | None = None
        self._next_start = now

    def next_deadline(self) -> float:
        """When :meth:`timer` must be called next."""
        if self._current is not None:
            deadline = self._current.next_deadline()
            if deadline is not None:
                return deadline
        return self._next_start

    def timer(self, now: float, transaction_id: bytes) -> bytes | None:
        """The deadline passed: the datagram to send to the server (a new Binding request,
        using ``transaction_id``, or a retransmission), or None."""
        current = self._current
        if current is not None:
            again = current.timer(now)
            if not current.done:
                return again
            # Given up: no answer within the retransmissions.  The next Binding keeps the
            # cadence (``interval`` after this one started), not ``interval`` after giving up.
            self.error = current.error
            self._current = None
        if now < self._next_start:
            return None
        self._current = BindingTransaction(
            transaction_id, now, retransmission=self.retransmission, software=self.software
        )
        self.bindings += 1
        self._next_start = now + self.interval
        return self._current.request()

    def receive(self, data: bytes, now: float) -> bool:
        """A STUN datagram from the server; True when it gave a reflexive address that is
        new (the first one, or a change).  Anything else is dropped and counted."""
        current = self._current
        if current is None:
            return False  # a late or duplicate answer
        if not current.receive(data):
            return False
        self._current = None
        self._next_start = now + self.interval
        if current.mapped is None:
            self.error = current.error
            return False
        self.error = None
        self.answers += 1
        previous, self.mapped = self.mapped, current.mapped
        if previous is not None and previous != self.mapped:
            self.changes += 1
        return previous != self.mapped
