"""One upload rate over datagrams: PPSPP's DATA under the peer's ``--upload-rate``, hosts in turn.

The peer's upload cap is one token bucket (:class:`~ppsp.core.ratelimit.TokenBucket`) shared
by every transport: HTTP bodies reserve from it piece by piece
(:class:`~ppsp.peer.net.limiter.RateLimiter`), and a PPSPP engine asks :class:`UploadPacer`
before each DATA it sends.  The pacer decides, sans-I/O (time passed in):

- **When.**  Each host buys its DATA's bytes from the bucket ahead, :data:`QUANTUM` bytes at
  a time (what an HTTP upload reserves per piece): it reserves them when it has spent what it
  bought, and the DATA they cover go once the reservation is paid for (at once while the
  bucket holds tokens).  Until then the engine waits for :meth:`UploadPacer.ready_at`: a
  deadline on its one timer, never polling.  Reservations queue in the bucket in the order
  they were made, HTTP's and each host's alike (the bucket's debt is the queue), so an HTTP
  upload and each host downloading over PPSPP take turns, a piece each, instead of one of them
  starving the others.  A DATA larger than what is left of a reservation still goes (the next
  reservation pays the difference); what is left when the host's channels have nothing to
  send waits for their next DATA (it is lost when the host's last channel closes), so the
  rate may be overdrawn by at most the bucket's burst and a quantum per host.
- **Whose.**  Senders (a PPSPP channel each) are grouped by host
  (:func:`~ppsp.peer.upload.fair.requester_host` of their UDP address, as HTTP's fair serving
  groups requests); the hosts whose reservation is paid take turns, one DATA each, and within
  a host its senders take turns.  As each host pays for its own bytes, in turn with the
  others, two hosts downloading at once get half the rate each however many channels either
  opens (the share :class:`~ppsp.peer.upload.fair.FairUploads` gives one host under a cap:
  one of its two slots), and whichever channel's ACK comes first cannot spend another host's
  bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from ppsp.core.ratelimit import TokenBucket
from ppsp.peer.upload.fair import requester_host

__all__ = ["QUANTUM", "UploadPacer"]

QUANTUM = 16384
"""Bytes a host reserves from the bucket at a time (an HTTP upload's piece,
``peer/net/endpoint.py``'s ``UPLOAD_PIECE``)."""

_EPSILON = 1e-9
"""Seconds of float error tolerated at a reservation's deadline."""


class _Host:
    """A host's senders and what it reserved."""

    __slots__ = ("credit", "members", "paid_at", "wanting")

    def __init__(self) -> None:
        self.members: set[Hashable] = set()
        self.wanting: OrderedDict[Hashable, None] = OrderedDict()
        self.credit = 0
        """Bytes reserved and not yet sent (negative: sent beyond the last reservation)."""
        self.paid_at = 0.0
        """When the last reservation is paid for."""


class UploadPacer:
    """Which sender may send its next DATA now, under one shared token bucket (module doc).

    The engine calls :meth:`want` when a sender has something to send, :meth:`next_sender`
    for whose turn it is, :meth:`spent` after each DATA, :meth:`drop` when a sender has
    nothing it may send, :meth:`forget` when it is gone, and waits for :meth:`ready_at`.
    """

    def __init__(self, bucket: TokenBucket, *, quantum: int = QUANTUM) -> None:
        if quantum < 1:
            raise ValueError("the quantum must be at least a byte")
        self.bucket = bucket
        self.quantum = quantum
        self._hosts: dict[str, _Host] = {}
        """Hosts with senders, each with what it reserved."""
        self._turns: OrderedDict[str, _Host] = OrderedDict()
        """Hosts with senders that want to send, in turn order."""
        self._host_of: dict[Hashable, str] = {}
        self.sent_bytes = 0
        """Bytes sent through this pacer."""
        self.reservations = 0
        """Reservations made (each of about :attr:`quantum` bytes)."""

    @property
    def wanting(self) -> int:
        """Senders that want to send."""
        return sum(len(host.wanting) for host in self._turns.values())

    def want(self, sender: Hashable, address: str) -> None:
        """``sender`` (at UDP source ``address``, an IP address) has something to send; a
        sender already waiting keeps its place."""
        key = self._host_of.get(sender)
        if key is None:
            key = self._host_of[sender] = requester_host(address)
            self._hosts.setdefault(key, _Host()).members.add(sender)
        host = self._hosts[key]
        if sender not in host.wanting:
            host.wanting[sender] = None
            if key not in self._turns:
                self._turns[key] = host

    def drop(self, sender: Hashable) -> None:
        """``sender`` has nothing it may send now (its window is full, its queue empty);
        :meth:`want` brings it back.  Its host keeps what it reserved."""
        key = self._host_of.get(sender)
        if key is None:
            return
        host = self._hosts[key]
        host.wanting.pop(sender, None)
        if not host.wanting:
            self._turns.pop(key, None)

    def forget(self, sender: Hashable) -> None:
        """``sender`` is gone (its channel closed); with its host's last sender, the host's
        reservation goes too."""
        self.drop(sender)
        key = self._host_of.pop(sender, None)
        if key is None:
            return
        host = self._hosts[key]
        host.members.discard(sender)
        if not host.members:
            del self._hosts[key]

    def next_sender(self, now: float) -> Hashable | None:
        """The sender whose turn it is at ``now``: the first wanting one of the first host in
        turn whose reservation is paid for.  A host that spent what it reserved reserves
        :attr:`quantum` more (in the bucket's queue).  None when nobody may send now (then wait
        for :meth:`ready_at`)."""
        for host in self._turns.values():
            if host.credit <= 0:
                need = self.quantum - host.credit
                host.paid_at = now + self.bucket.reserve(need, now)
                host.credit += need
                self.reservations += 1
            if now + _EPSILON >= host.paid_at:
                return next(iter(host.wanting))
        return None

    def spent(self, sender: Hashable, nbytes: int, now: float) -> None:
        """``sender`` sent ``nbytes`` at ``now``, out of its host's reservation: the sender and
        its host go to the end of their turns (it still wants to send)."""
        self.sent_bytes += nbytes
        key = self._host_of.get(sender)
        if key is None:
            return
        host = self._hosts[key]
        host.credit -= nbytes
        if sender in host.wanting:
            host.wanting.move_to_end(sender)
        if key in self._turns:
            self._turns.move_to_end(key)

    def ready_at(self) -> float | None:
        """When the first waiting host's reservation is paid for; None when nobody wants to
        send."""
        return min((host.paid_at for host in self._turns.values()), default=None)
